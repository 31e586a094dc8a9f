"""A hostile Conduit server on 127.0.0.1 for tests: a proxy in front of the sandbox that can
redirect, trickle, send a huge or broken body, an HTML 502, or rewrite one method's answer.

Every loop is bounded in count and time: a trickle sends at most ``TRICKLE_MAX`` bytes, a huge
body at most ``size`` bytes, and both stop as soon as the client hangs up.

    with HostileServer(upstream=sb.url) as hs:
        hs.behave("maniphest.search", Mutate(lambda result: ...))
        ... point clinicbot at hs.url ...
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

TRICKLE_MAX = 400  # bytes; at the interval below, far longer than any timeout a test sets
HUGE_CHUNK = 64 * 1024


@dataclass
class Redirect:
    status: int
    location: str


@dataclass
class Trickle:
    interval: float = 0.05  # seconds between bytes
    in_headers: bool = False  # trickle the status line and headers instead of the body


@dataclass
class Huge:
    size: int  # bytes sent at most
    declare_length: bool = False  # send Content-Length (then the client can refuse before reading)


@dataclass
class Raw:
    status: int
    body: bytes
    content_type: str = "text/html"


@dataclass
class Mutate:
    """Forward to the upstream and rewrite the JSON envelope's ``result`` with ``change``
    (which may change it in place and return None, or return a new value)."""

    change: Callable[[Any], Any]


@dataclass
class Envelope:
    """Answer with this whole envelope (e.g. an error_code whose error_info echoes the token)."""

    make: Callable[[dict[str, Any]], dict[str, Any]]  # the request's params -> the envelope


Behaviour = Redirect | Trickle | Huge | Raw | Mutate | Envelope


@dataclass
class Log:
    methods: list[str] = field(default_factory=list)
    redirected_hits: int = 0  # requests that arrived on the redirect target


class HostileServer:
    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/") + "/"
        self.behaviours: dict[str, Behaviour] = {}
        self.log = Log()
        self._stop = threading.Event()
        handler = self._handler()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        # A second listener: where redirects point. It must never see a request (the token).
        self.target = ThreadingHTTPServer(("127.0.0.1", 0), self._target_handler())
        self.target.daemon_threads = True
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    @property
    def target_url(self) -> str:
        return f"http://127.0.0.1:{self.target.server_address[1]}/"

    def behave(self, method: str, behaviour: Behaviour) -> None:
        """``method`` is a Conduit method name, or ``*`` for every method."""
        self.behaviours[method] = behaviour

    def __enter__(self) -> "HostileServer":
        for server in (self.httpd, self.target):
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for server in (self.httpd, self.target):
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    # -- handlers ------------------------------------------------------------------------------
    def _target_handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Target(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                outer.log.redirected_hits += 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b'{"result": null, "error_code": null, "error_info": null}')

            do_GET = do_POST

        return Target

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                method = self.path.rstrip("/").rsplit("/", 1)[-1]
                outer.log.methods.append(method)
                behaviour = outer.behaviours.get(method) or outer.behaviours.get("*")
                try:
                    self._answer(method, body, behaviour)
                except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
                    pass  # the client gave up: that is what the tests want

            def _send(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _upstream(self, body: bytes, method: str) -> dict[str, Any]:
                req = urllib.request.Request(outer.upstream + "api/" + method, data=body, method="POST",
                                             headers={"Content-Type": "application/x-www-form-urlencoded"})
                with urllib.request.urlopen(req, timeout=30) as resp:
                    return json.loads(resp.read().decode("utf-8"))

            def _answer(self, method: str, body: bytes, behaviour: Behaviour | None) -> None:
                if isinstance(behaviour, Redirect):
                    self.send_response(behaviour.status)
                    self.send_header("Location", behaviour.location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif isinstance(behaviour, Trickle):
                    self._trickle(behaviour)
                elif isinstance(behaviour, Huge):
                    self._huge(behaviour)
                elif isinstance(behaviour, Raw):
                    self._send(behaviour.status, behaviour.body, behaviour.content_type)
                elif isinstance(behaviour, Envelope):
                    form = urllib.parse.parse_qs(body.decode("utf-8"))
                    params = json.loads(form.get("params", ["{}"])[0])
                    self._send(200, json.dumps(behaviour.make(params)).encode())
                else:
                    envelope = self._upstream(body, method)
                    if isinstance(behaviour, Mutate) and envelope.get("error_code") is None:
                        changed = behaviour.change(envelope["result"])
                        if changed is not None:
                            envelope["result"] = changed
                    self._send(200, json.dumps(envelope).encode())

            def _trickle(self, how: Trickle) -> None:
                payload = b'{"result": {"data": [], "cursor": {"after": null}}, "error_code": null, "error_info": null}'
                head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        + f"Content-Length: {TRICKLE_MAX}\r\n\r\n".encode())
                if not how.in_headers:
                    self.wfile.write(head)
                    self.wfile.flush()
                    data = (payload + b" " * TRICKLE_MAX)[:TRICKLE_MAX]
                else:
                    data = head + (payload + b" " * TRICKLE_MAX)[:TRICKLE_MAX]
                for i in range(len(data)):  # bounded: at most TRICKLE_MAX + a header's bytes
                    if outer._stop.is_set():
                        return
                    self.wfile.write(data[i:i + 1])
                    self.wfile.flush()
                    time.sleep(how.interval)
                self.close_connection = True

            def _huge(self, how: Huge) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if how.declare_length:
                    self.send_header("Content-Length", str(how.size))
                else:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                self.wfile.write(b'{"result": {"data": [], "padding": "')
                sent = 0
                chunk = b"x" * HUGE_CHUNK
                while sent < how.size and not outer._stop.is_set():  # bounded by size
                    self.wfile.write(chunk)
                    sent += len(chunk)

        return Handler
