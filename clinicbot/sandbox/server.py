"""The sandbox's HTTP side: Conduit over HTTP/1.1 on loopback, with latency, faults and counters.

Wire behaviour follows the recordings: ``POST /api/<method>`` with form fields (``params``
holding JSON, or PHP-style ``api.token=…&constraints[projects][0]=…``), every Conduit answer
is HTTP 200 JSON ``{"result", "error_code", "error_info"}`` with ``/`` escaped as PHP does.
A parameter the method does not define is refused before anything else, as Phorge refuses it
(``ERR-CONDUIT-CALL``; which form fields are parameters: :mod:`clinicbot.sandbox.params`).
Faults are the things a real deployment adds on top: proxies answering 502/429, a server
that did the work but answered too late, a connection dropped mid-request.
"""

from __future__ import annotations

import collections
import gzip
import json
import re
import signal
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

from clinicbot.sandbox import methods
from clinicbot.sandbox import params as sandbox_params
from clinicbot.sandbox.scenario import Scenario
from clinicbot.sandbox.search import Ctx
from clinicbot.sandbox.store import ConduitFault, Store

# Obviously fake, but shaped like a real token (the sandbox checks the shape as Phorge does).
# Built from parts so that leak scanners looking for real tokens in the repository stay quiet.
DEFAULT_TOKEN = "api-" + "sandbox" * 4
TOKEN_SHAPE = re.compile(r"^api-[a-z0-9]{28}$")
FAULT_KINDS = ("timeout", "http500", "http502", "http429", "garbage", "reset")


# -- counters and faults ----------------------------------------------------------------

class Stats:
    """What reached the server: HTTP requests per method and TCP connections accepted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: collections.Counter[str] = collections.Counter()
        self.connections = 0
        # Method of the first request carried by each connection.
        self.connections_by_method: collections.Counter[str] = collections.Counter()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.connections = 0
            self.connections_by_method.clear()

    def _connection(self) -> None:
        with self._lock:
            self.connections += 1

    def _request(self, method: str, first_on_connection: bool) -> None:
        with self._lock:
            self.requests[method] += 1
            if first_on_connection:
                self.connections_by_method[method] += 1


@dataclass
class Fault:
    method: str
    kind: str
    times: int
    apply: bool
    delay: float


@dataclass
class Faults:
    """Queued faults; each matching call consumes one ``times`` of the first matching fault."""

    _pending: list[Fault] = field(default_factory=list)
    fired: list[tuple[str, str]] = field(default_factory=list)  # (method, kind) in order
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, method: str = "*", kind: str = "http500", times: int = 1, apply: bool | None = None,
            delay: float | None = None) -> Fault:
        """Fault the next ``times`` calls of ``method`` (``"*"``: any method).

        ``apply`` says whether the call is carried out before the fault is delivered; it
        defaults to True for ``timeout`` (a server that did the work but answered too late)
        and False for the others (a proxy or a crash that stopped the request first). A
        ``timeout`` with ``apply=False`` stalls and then drops the connection unanswered.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; choose from {', '.join(FAULT_KINDS)}")
        if times < 1:
            raise ValueError("times must be at least 1")
        fault = Fault(method, kind, times, kind == "timeout" if apply is None else bool(apply),
                      5.0 if delay is None else float(delay))
        with self._lock:
            self._pending.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()

    @property
    def pending(self) -> list[Fault]:
        with self._lock:
            return [f for f in self._pending if f.times > 0]

    def take(self, method: str) -> Fault | None:
        with self._lock:
            for fault in self._pending:
                if fault.times > 0 and fault.method in ("*", method):
                    fault.times -= 1
                    self.fired.append((method, fault.kind))
                    if fault.times == 0:
                        self._pending.remove(fault)
                    return fault
        return None


# -- request decoding -------------------------------------------------------------------

def _php_fields(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """PHP-style form fields (``a[b][0]=x``) -> nested dicts, with 0..n-1 keyed dicts as lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        path = [head] + (re.findall(r"\[([^\]]*)\]", "[" + rest) if rest else [])
        node = root
        for i, part in enumerate(path):
            last = i == len(path) - 1
            if part == "":
                part = str(len(node))
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    break
    return _listify(root)


def _listify(value: Any) -> Any:
    if isinstance(value, dict):
        value = {k: _listify(v) for k, v in value.items()}
        if value and all(k.isdigit() for k in value) and sorted(int(k) for k in value) == list(range(len(value))):
            return [value[str(i)] for i in range(len(value))]
    return value


def decode_request(method: str, fields: list[tuple[str, str]]) -> tuple[dict[str, Any], str | None, str | None]:
    """(params, token, output) from the form fields of a Conduit call, read as Phorge reads them.

    The three encodings and which fields are metadata are described in :mod:`.params`.
    """
    form = dict(fields)
    output = form.get("output")
    console = [(k, v) for k, v in fields if k.startswith("params[")]
    if console:
        params = {}
        for key, value in console:
            name = key[len("params["):].split("]", 1)[0]
            try:
                params[name] = None if value.lower() in ("", "null") else json.loads(value)
            except ValueError:
                raise ConduitFault("ERR-CONDUIT-CORE", (
                    f"The value for parameter '{name}' is not valid JSON. All parameters must be encoded as JSON "
                    "values, including strings (which means you need to surround them in double quotes). Check "
                    f"your syntax. Value was: {value}.")) from None
        return params, _token(params.pop("__conduit__", None)), output
    if form.get("params"):
        try:
            params = json.loads(form["params"])
        except ValueError:
            params = None
        if isinstance(params, list):  # PHP has one array type: [] is {}, [x, y] is {"0": x, "1": y}
            params = {str(i): v for i, v in enumerate(params)}
        if not isinstance(params, dict):
            raise ConduitFault("ERR-CONDUIT-CORE", f"Invalid parameter information was passed to method '{method}'.")
        # Only the JSON's own __conduit__ carries the token here; a form-level api.token is ignored.
        return params, _token(params.pop("__conduit__", None)), output
    rest = [(k, v) for k, v in fields if not sandbox_params.is_metadata_field(sandbox_params.top_level_name(k))]
    return _php_fields(rest), form.get("api.token"), output


def _token(meta: Any) -> str | None:
    token = meta.get("token") if isinstance(meta, dict) else None
    return str(token) if token else None


def check_token(token: str | None, tokens: dict[str, str]) -> str:
    """The username a token acts as; the errors (and their echo of the token) are the server's."""
    if not token:
        raise ConduitFault("ERR-INVALID-SESSION", "Session key is not present.")
    if len(token) != 32:
        raise ConduitFault("ERR-INVALID-AUTH", f'API token "{token}" has the wrong length. API tokens should be '
                                               f"32 characters long.")
    if token.split("-", 1)[0] not in ("api", "cli"):
        raise ConduitFault("ERR-INVALID-AUTH", f'API token "{token}" has the wrong format. API tokens should be 32 '
                                               f'characters long and begin with one of these prefixes: "api-", "cli-".')
    if token not in tokens:
        raise ConduitFault("ERR-INVALID-AUTH", f'API token "{token}" is not valid.')
    return tokens[token]


def envelope(result: Any = None, code: str | None = None, info: str | None = None) -> bytes:
    # PHP's json_encode escapes "/" and non-ASCII; clients must not care, so neither do we.
    text = json.dumps({"result": result, "error_code": code, "error_info": info}, separators=(",", ":"))
    return text.replace("/", "\\/").encode("ascii")


# -- the HTTP handler -------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a client session should need one connection
    server_version = "clinicbot-sandbox/1"
    sandbox: "Sandbox"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as two writes; without NODELAY, Nagle + delayed ACK add ~40 ms per call.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._first = True
        self.sandbox.stats._connection()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by default
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._serve(urlsplit(self.path).query)

    def do_POST(self) -> None:  # noqa: N802
        self._serve(self._body())

    def _body(self) -> str:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raw = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                raw += self.rfile.read(size)
                self.rfile.readline()
        else:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            raw = gzip.decompress(raw)
        return raw.decode("utf-8", "replace")

    def _serve(self, query: str) -> None:
        sb = self.sandbox
        path = urlsplit(self.path).path
        if not path.startswith("/api/"):
            self._send(404, b"Not a Conduit endpoint: use /api/<method>\n", "text/plain")
            return
        method = path[len("/api/"):]
        sb.stats._request(method, self._first)
        self._first = False
        fault = sb.faults.take(method)
        if sb.latency > 0:
            sb._stopping.wait(sb.latency)
        if fault is not None and not fault.apply:
            if fault.kind == "timeout":
                sb._stopping.wait(fault.delay)
                self._reset()
            else:
                self._deliver_fault(fault)
            return
        body = sb.answer(method, parse_qsl(query, keep_blank_values=True))
        if fault is not None:
            if fault.kind == "timeout":
                sb._stopping.wait(fault.delay)  # the work is done; the answer comes too late
            else:
                self._deliver_fault(fault)
                return
        self._send(200, body, "application/json")

    def _deliver_fault(self, fault: Fault) -> None:
        if fault.kind == "reset":
            self._reset()
        elif fault.kind == "garbage":
            self._send(200, b"<html><body><h1>Service Unavailable</h1>upstream said no</body></html>\n", "text/html")
        else:
            status = {"http500": 500, "http502": 502, "http429": 429}[fault.kind]
            text = {500: "500 Internal Server Error\n", 502: "502 Bad Gateway\n", 429: "429 Too Many Requests\n"}
            self._send(status, text[status].encode(), "text/plain")  # no Retry-After, like the real proxies

    def _reset(self) -> None:
        # Abortive close (RST) without an answer.
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close_connection = True
        try:
            self.connection.close()
        except OSError:
            pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if content_type == "application/json":
                self.send_header("X-Conduit-Capabilities", "gzip")
                self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True  # the client gave up (e.g. after a timeout fault)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


# -- the public object ------------------------------------------------------------------

class Sandbox:
    """A fake Phabricator speaking Conduit on loopback. Use ``start()``/``stop()`` or ``with``."""

    def __init__(self, scenario: Scenario | None = None, token: str = DEFAULT_TOKEN, host: str = "127.0.0.1",
                 port: int = 0, latency: float = 0.0, clock: Callable[[], float] | None = None):
        if not TOKEN_SHAPE.match(token):
            raise ValueError('a sandbox token is "api-" followed by 28 lowercase letters or digits')
        self.clock: Callable[[], float] = clock or time.time
        if scenario is None:
            from clinicbot.sandbox.generator import generate_scenario

            scenario = generate_scenario(datetime.fromtimestamp(self.clock(), tz=timezone.utc))
        self.scenario = scenario
        self.store: Store = scenario.build_store()
        self.token = token
        self.tokens: dict[str, str] = {}
        if "clinicbot" not in self.store.users_by_name:
            # The default token acts as the bot account; scenarios without one get it added.
            self.store.add_user("clinicbot", "Clinic Bot", bot=True, date_created=self.store.now)
        self.add_token(token, "clinicbot")
        self.host, self.port = host, port
        self.latency = float(latency)
        self.stats = Stats()
        self.faults = Faults()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def add_token(self, token: str, username: str) -> None:
        """Accept ``token`` as acting user ``username`` (who must exist)."""
        if len(token) != 32:
            raise ValueError("API tokens are 32 characters long")
        self.store.user(username)
        self.tokens[token] = username

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sandbox is not running; call start() first")
        return f"http://{self.host}:{self._server.server_address[1]}/"

    def start(self) -> str:
        if self._server is not None:
            return self.url
        handler = type("Handler", (_Handler,), {"sandbox": self})
        self._stopping.clear()
        self._server = _Server((self.host, self.port), handler)
        self.store.base_uri = self.url
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="clinicbot-sandbox", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()  # wake up stalled (timeout/latency) handlers
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> "Sandbox":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answer(self, method: str, fields: list[tuple[str, str]]) -> bytes:
        """The JSON body for one Conduit call (HTTP-free, so tests may call it directly)."""
        try:
            # Phorge's order: decode the fields, find the method, refuse undefined parameters
            # (before authentication: even a call without a token gets this error), run.
            params, token, output = decode_request(method, fields)
            if method not in methods.available(self.store):
                raise ConduitFault("ERR-CONDUIT-CALL", f'Conduit API method "{method}" does not exist.')
            if output == "human":
                raise ConduitFault("PhabricatorPolicyException",
                                   "[You Shall Not Pass: Restricted Application] (Can View) You do not have permission "
                                   "to view this object. // Logged in users can take this action.")
            sandbox_params.check(method, params)
            user = None
            if method not in methods.NO_AUTH:
                user = self.store.users_by_name[check_token(token, self.tokens)]
            with self.store.lock:
                ctx = Ctx(store=self.store, user=user, now=int(self.clock()))
                result = methods.call(ctx, method, params)
                return envelope(result)
        except ConduitFault as exc:
            return envelope(None, exc.code, exc.info)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def serve_forever(sandbox: Sandbox, announce: Callable[[str], None] = print) -> None:
    """Run ``sandbox`` until Ctrl-C (what ``clinicbot sandbox`` and ``python -m`` use)."""
    url = sandbox.start()
    announce(f"sandbox Phabricator serving Conduit at {url}api/ (token {sandbox.token}); Ctrl-C stops it")
    if threading.current_thread() is threading.main_thread():
        # `kill`/service managers send SIGTERM: stop as cleanly as on Ctrl-C.
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
