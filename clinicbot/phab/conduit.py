"""The Conduit client: the only module that knows HTTP.

One object with one network method (:class:`Transport.post`) so tests can swap the network;
HTTP-library exceptions are translated into clinicbot's exception tree in exactly one place
(:meth:`RequestsTransport.post`).

Why not the PyPI ``phabricator`` package: it re-POSTs ``maniphest.edit`` up to 4 times on a
read timeout (duplicate comments), opens a new HTTP session per call, and sends methods
missing from its bundled interface list to wrong URLs. None of our traffic goes through it.

Retries: reads (``*.search``, ``*.query``, …) are retried with exponential backoff and full
jitter on connection errors, timeouts, HTTP 5xx and 429 (Phabricator sends no Retry-After).
Writes are never retried blindly: a write that timed out or got a 5xx may have been applied,
so it raises :class:`ConduitWriteUncertain` and the caller checks before trying again. The
only write retried is one the server *refused before doing anything*: HTTP 429, or a
connection that could not be established at all.

Hostile or broken servers: redirects are never followed (the POST body holds the token; a 3xx
is :class:`ConduitRedirectError`); an answer is read in chunks and reading stops past
``max_answer_bytes`` (:class:`ConduitAnswerTooLarge`, not retried); each attempt has a total
deadline of ``timeout`` seconds from sending to the last byte, enforced by a watchdog that shuts
the socket down (requests' own timeouts are per socket operation, so a server trickling one
byte at a time would never trip them). The worst case for a read is therefore
``(retries + 1) * timeout`` plus the backoff sleeps (each at most ``backoff_max``).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import random
import re
import socket
import sys
import threading
import time
import types
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol


class _DeferredCharsetDetection(types.ModuleType):
    """Stands in for ``charset_normalizer`` while requests is imported. requests imports it eagerly
    (about 20 ms of every run: it looks up every codec Python has) to guess the encoding of an
    answer that declares none (``Response.text``, ``apparent_encoding``); this client decodes the
    bytes itself (the declared charset, else UTF-8), so it never needs it. Only its version is
    here (requests checks it); anything else imports the real module in its place."""

    def __init__(self, version: str):
        super().__init__("charset_normalizer")
        self.__version__ = version

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # asked by the import system (``__path__``...): a plain module
            raise AttributeError(name)
        if sys.modules.get("charset_normalizer") is self:
            del sys.modules["charset_normalizer"]
        return getattr(importlib.import_module("charset_normalizer"), name)


def _defer_charset_detection() -> None:
    """Put :class:`_DeferredCharsetDetection` in place before requests is first imported (not when
    requests, charset_normalizer or chardet is already there, or the version cannot be read)."""
    if any(name in sys.modules for name in ("requests", "charset_normalizer", "chardet")):
        return
    try:
        spec = importlib.util.find_spec("charset_normalizer")
        folder = (spec.submodule_search_locations or [None])[0] if spec is not None else None
        with open(f"{folder}/version.py", encoding="utf-8") as file:
            found = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", file.read(), re.M)
    except (OSError, ImportError, ValueError, TypeError):
        return
    if found is not None:
        sys.modules["charset_normalizer"] = _DeferredCharsetDetection(found.group(1))


_defer_charset_detection()

import requests  # noqa: E402  (after the deferral above)
from requests.adapters import HTTPAdapter  # noqa: E402
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from clinicbot.model import Closing
from clinicbot.errors import (
    TOKEN_RE,
    ConduitAnswerTooLarge,
    ConduitAPIError,
    ConduitCapabilityError,
    ConduitProtocolError,
    ConduitRedirectError,
    ConduitTransportError,
    ConduitWriteUncertain,
    Secret,
    redact,
)

__all__ = ["TOKEN_RE", "redact", "ConduitClient", "Secret", "HTTPAnswer", "TransportFailure", "RequestsTransport"]

log = logging.getLogger(__name__)

PAGE_LIMIT = 100  # the server's maximum; more gives ERR-INVALID-PAGE-SIZE
DEFAULT_MAX_ANSWER_BYTES = 64 * 2**20  # phabricator.max_answer_mb
_CHUNK = 64 * 1024

# Methods that change something on the server. Everything else is a read and safe to retry.
WRITE_SUFFIXES = (".edit", ".create", ".delete", ".close", ".update", ".createtask", ".createcomment")

# What clinicbot calls. Checked against conduit.query on first use (see require()).
REQUIRED_METHODS = (
    "user.whoami",
    "user.search",
    "project.search",
    "project.column.search",
    "maniphest.search",
    "maniphest.status.search",
    "maniphest.priority.search",
    "transaction.search",
)
# ``*.search`` methods that define no parameters at all (``conduit.query`` lists none): Phorge
# refuses any parameter with ERR-CONDUIT-CALL, so the only valid call is ``{}``, and the answer is
# ``{"data": [...]}`` with no cursor: nothing to page (recordings ``*--no-params.json``).
UNPAGED_SEARCHES = frozenset({"maniphest.status.search", "maniphest.priority.search"})
OPTIONAL_METHODS = ("maniphest.gettasktransactions", "maniphest.edit", "phriction.edit", "phriction.create",
                    "phriction.document.search")


def is_write(method: str) -> bool:
    return method.endswith(WRITE_SUFFIXES)


# --------------------------------------------------------------------------------------------
# Transport: the network behind one object with one method.


@dataclass
class HTTPAnswer:
    status: int
    text: str
    location: str | None = None  # the Location header of a 3xx


class TransportFailure(Exception):
    """Raised by a transport. ``sent`` says whether the request may have reached the server;
    ``retryable`` is False when trying again cannot help (the answer was too large)."""

    def __init__(self, reason: str, *, sent: bool, retryable: bool = True, too_large: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.sent = sent
        self.retryable = retryable
        self.too_large = too_large  # the cap in bytes, when the answer passed it


class Transport(Protocol):
    def post(self, url: str, data: dict[str, str], timeout: float) -> HTTPAnswer: ...

    def close(self) -> None: ...


# The watchdog: requests' timeouts are per socket operation, so a server sending one byte per
# second never trips them. Each attempt registers a _Watch in a thread-local; the connection
# classes below hand it their socket as they send, and a timer shuts that socket down at the
# deadline, which ends any read blocked on it (status line, headers or body).
_current = threading.local()


class _Watch:
    def __init__(self) -> None:
        self.conn: Any = None
        self.fired = False
        self._lock = threading.Lock()

    def attach(self, conn: Any) -> None:
        with self._lock:
            self.conn = conn
            fired = self.fired
        if fired:
            self._shutdown()

    def fire(self) -> None:
        with self._lock:
            self.fired = True
        self._shutdown()

    def _shutdown(self) -> None:
        sock = getattr(self.conn, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _WatchedMixin:
    def request(self, *args: Any, **kwargs: Any) -> Any:
        watch = getattr(_current, "watch", None)
        if watch is not None:
            watch.attach(self)
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        watch = getattr(_current, "watch", None)
        if watch is not None:
            watch.attach(self)


class _WatchedHTTPConnection(_WatchedMixin, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedMixin, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class RequestsTransport:
    """One ``requests.Session`` for the life of the client, so connections are reused.

    Redirects are never followed; the body is streamed and reading stops past
    ``max_answer_bytes``; each post has a total deadline of ``timeout`` seconds.
    """

    def __init__(self, session: requests.Session | None = None, user_agent: str = "clinicbot",
                 max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES):
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = user_agent
        if session is None:
            adapter = _WatchedAdapter()
            self.session.mount("http://", adapter)
            self.session.mount("https://", adapter)
        self.max_answer_bytes = max_answer_bytes

    def post(self, url: str, data: dict[str, str], timeout: float) -> HTTPAnswer:
        watch = _Watch()
        timer = threading.Timer(timeout, watch.fire)
        timer.daemon = True
        _current.watch = watch
        started = time.monotonic()
        timer.start()
        try:
            return self._post(url, data, timeout, watch, started)
        finally:
            timer.cancel()
            _current.watch = None

    def _post(self, url: str, data: dict[str, str], timeout: float, watch: _Watch, started: float) -> HTTPAnswer:
        # The one place where requests' exceptions become ours. Messages are built from the
        # exception *class* and URL only: requests can quote the request body, which holds the token.
        def late() -> TransportFailure:
            return TransportFailure(f"the answer from {url} took longer than {timeout:g} s in total "
                                    "(the server is slow or trickling its answer)", sent=True)
        try:
            resp = self.session.post(url, data=data, timeout=timeout, allow_redirects=False, stream=True)
        except requests.exceptions.ConnectTimeout:
            raise TransportFailure(f"could not connect to {url} within {timeout:g} s", sent=False) from None
        except requests.exceptions.ReadTimeout:
            if watch.fired:
                raise late() from None
            raise TransportFailure(f"no answer from {url} within {timeout:g} s", sent=True) from None
        except requests.exceptions.ConnectionError as exc:
            if watch.fired:
                raise late() from None
            # A refused/unresolvable connection never carried the request; a reset one may have.
            text = str(exc)
            never_sent = any(s in text for s in ("NewConnectionError", "Name or service", "Failed to resolve",
                                                  "Connection refused", "nodename nor servname"))
            kind = "connection refused or host unknown" if never_sent else "connection dropped"
            raise TransportFailure(f"{kind} ({url})", sent=not never_sent) from None
        except requests.exceptions.RequestException as exc:
            if watch.fired:
                raise late() from None
            raise TransportFailure(f"{type(exc).__name__} talking to {url}", sent=True) from None
        try:
            if 300 <= resp.status_code < 400:
                return HTTPAnswer(resp.status_code, "", location=resp.headers.get("Location"))
            body = self._read_body(resp, url, watch, started, timeout)
        except TransportFailure:
            raise
        except (requests.exceptions.RequestException, OSError, ValueError) as exc:
            if watch.fired or time.monotonic() - started >= timeout:
                raise late() from None
            raise TransportFailure(f"{type(exc).__name__} reading the answer from {url}", sent=True) from None
        finally:
            resp.close()
        if watch.fired:
            raise late()
        encoding = resp.encoding or "utf-8"
        try:
            text = body.decode(encoding, errors="replace")
        except LookupError:  # a charset Python does not know
            text = body.decode("utf-8", errors="replace")
        return HTTPAnswer(resp.status_code, text)

    def _read_body(self, resp: requests.Response, url: str, watch: _Watch, started: float, timeout: float) -> bytes:
        cap = self.max_answer_bytes

        def too_large() -> TransportFailure:
            return TransportFailure(f"the answer from {url} is larger than {cap} bytes", sent=True,
                                    retryable=False, too_large=cap)
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap:
            raise too_large()
        chunks: list[bytes] = []
        size = 0
        for chunk in resp.iter_content(_CHUNK):
            size += len(chunk)
            if size > cap:
                raise too_large()
            chunks.append(chunk)
            if watch.fired or time.monotonic() - started > timeout:
                raise TransportFailure(f"the answer from {url} took longer than {timeout:g} s in total "
                                       "(the server is slow or trickling its answer)", sent=True)
        return b"".join(chunks)

    def close(self) -> None:
        self.session.close()


# --------------------------------------------------------------------------------------------


@dataclass
class CallStats:
    """Per-method counters. Histories are fetched from several threads, hence the lock."""

    calls: Counter = field(default_factory=Counter)  # method -> successful answers
    attempts: Counter = field(default_factory=Counter)  # method -> HTTP requests sent
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def attempt(self, method: str) -> None:
        with self._lock:
            self.attempts[method] += 1

    def answered(self, method: str, seconds: float) -> None:
        with self._lock:
            self.calls[method] += 1
            self.seconds += seconds

    def waited(self, seconds: float) -> None:
        with self._lock:
            self.seconds += seconds

    @property
    def total(self) -> int:
        return sum(self.attempts.values())


class ConduitClient(Closing):
    """Speaks Conduit to one Phabricator/Phorge server.

    >>> client = ConduitClient("https://phab.example.org/", token)    # doctest: +SKIP
    >>> client.call("user.whoami")["userName"]                        # doctest: +SKIP
    >>> for task in client.search("maniphest.search", constraints={"projects": [phid]}): ...
    """

    def __init__(
        self,
        url: str,
        token: str | Secret,
        *,
        transport: Transport | None = None,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 0.5,
        backoff_max: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ):
        if not url.endswith("/"):
            url += "/"
        self.url = url
        self._token = token if isinstance(token, Secret) else Secret(token)
        self.transport = transport or RequestsTransport(max_answer_bytes=max_answer_bytes)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.stats = CallStats()
        self._methods: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"ConduitClient({self.url!r})"

    def close(self) -> None:
        self.transport.close()

    # -- the wire ----------------------------------------------------------------------------
    def call(self, method: str, **params: Any) -> Any:
        """Call one Conduit method and return its ``result``; raise a ConduitError otherwise."""
        body = dict(params)
        body["__conduit__"] = {"token": self._token.reveal()}
        data = {"params": json.dumps(body, separators=(",", ":")), "output": "json", "__conduit__": "1"}
        url = f"{self.url}api/{method}"
        write = is_write(method)
        attempt = 0
        while True:
            attempt += 1
            self.stats.attempt(method)
            started = time.monotonic()
            try:
                answer = self.transport.post(url, data, self.timeout)
            except TransportFailure as fail:
                self.stats.waited(time.monotonic() - started)
                reason = redact(fail.reason, self._token.reveal())
                if write and fail.sent:
                    raise ConduitWriteUncertain(method, reason) from None
                if fail.too_large is not None:
                    raise ConduitAnswerTooLarge(method, url, fail.too_large) from None
                if not fail.retryable:
                    raise ConduitTransportError(method, reason, attempts=attempt) from None
                if attempt > self.retries:
                    raise ConduitTransportError(method, reason, attempts=attempt) from None
                self._wait(method, attempt, reason)
                continue
            elapsed = time.monotonic() - started

            if 300 <= answer.status < 400:
                # Never followed: the body (token included) would go wherever Location points.
                # A redirect is answered before anything runs, so even a write was not applied.
                self.stats.waited(elapsed)
                raise ConduitRedirectError(method, answer.status, url, answer.location)
            if answer.status != 200:
                self.stats.waited(elapsed)
                reason = f"HTTP {answer.status}"
                snippet = " ".join(redact(redact(answer.text[:2000], self._token.reveal())[:120]).split())
                if snippet:
                    reason += f" ({snippet})"
                retryable = answer.status == 429 or answer.status >= 500
                # A 429 was refused before the server did anything, so even a write may go again;
                # a 5xx on a write may have happened after the write was applied.
                if write and answer.status != 429:
                    raise ConduitWriteUncertain(method, reason)
                if not retryable or attempt > self.retries:
                    raise ConduitTransportError(method, reason, status=answer.status, attempts=attempt)
                self._wait(method, attempt, reason)
                continue

            try:
                envelope = self._decode(method, answer.text)
            except ConduitProtocolError as exc:
                # A proxy's HTML error page with status 200, a truncated body: transient for a
                # read; for a write we cannot know whether the server applied it.
                if write:
                    raise ConduitWriteUncertain(method, exc.detail) from None
                if attempt > self.retries:
                    raise
                self._wait(method, attempt, exc.detail)
                continue
            if envelope.get("error_code"):
                raise ConduitAPIError(method, str(envelope["error_code"]),
                                      redact(str(envelope.get("error_info") or ""), self._token.reveal()))
            self.stats.answered(method, elapsed)
            return envelope.get("result")

    def _decode(self, method: str, text: str) -> dict[str, Any]:
        try:
            envelope = json.loads(text)
        except ValueError:
            snippet = " ".join(redact(redact(text[:2000], self._token.reveal())[:60]).split())
            raise ConduitProtocolError(method, f"body is not JSON ({snippet!r})") from None
        if not isinstance(envelope, dict) or "result" not in envelope:
            raise ConduitProtocolError(method, "JSON without a 'result' key")
        return envelope

    def _wait(self, method: str, attempt: int, reason: str) -> None:
        # Exponential backoff with full jitter: spreads retries of several clients apart.
        delay = self._rng.uniform(0, min(self.backoff_max, self.backoff * (2 ** (attempt - 1))))
        log.warning("conduit %s: %s; retry %d/%d in %.1f s", method, reason, attempt, self.retries, delay)
        self._sleep(delay)

    # -- paging ------------------------------------------------------------------------------
    def search_pages(
        self,
        method: str,
        *,
        constraints: dict[str, Any] | None = None,
        attachments: dict[str, bool] | None = None,
        order: str | list[str] | None = None,
        limit: int | None = None,
        **extra: Any,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield each page of a ``*.search`` method, following ``cursor.after`` to the end.

        The methods in :data:`UNPAGED_SEARCHES` take no parameters: they are called with none
        and yield their one ``data`` list.
        """
        if method in UNPAGED_SEARCHES:
            given = [k for k, v in (("constraints", constraints), ("attachments", attachments), ("order", order),
                                    ("limit", limit)) if v is not None] + list(extra)
            if given:
                raise TypeError(f"{method} takes no parameters (got {', '.join(given)})")
            yield self._data(method, self.call(method))
            return
        params: dict[str, Any] = dict(extra)
        if constraints:
            params["constraints"] = constraints
        if attachments:
            params["attachments"] = attachments
        if order is not None:
            params["order"] = order
        params["limit"] = min(limit if limit is not None else PAGE_LIMIT, PAGE_LIMIT)
        after: str | None = None
        seen: set[str] = set()
        while True:
            if after is not None:
                params["after"] = after
            result = self.call(method, **params)
            yield self._data(method, result)
            cursor = result.get("cursor") or {}
            after = cursor.get("after")
            if after is None or not result["data"]:
                return
            after = str(after)
            if after in seen:  # a server bug must not turn into an endless loop
                raise ConduitProtocolError(method, f"cursor {after!r} repeated while paging")
            seen.add(after)

    @staticmethod
    def _data(method: str, result: Any) -> list[dict[str, Any]]:
        if not isinstance(result, dict) or not isinstance(result.get("data"), list):
            raise ConduitProtocolError(method, "search result without a 'data' list")
        return result["data"]

    def search(self, method: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Iterate over every item of a ``*.search`` method across all pages."""
        for page in self.search_pages(method, **kwargs):
            yield from page

    # -- capabilities ------------------------------------------------------------------------
    def methods(self) -> dict[str, Any]:
        """The server's method list (``conduit.query``), fetched once per client."""
        if self._methods is None:
            result = self.call("conduit.query")
            self._methods = result if isinstance(result, dict) else {}
        return self._methods

    def has_method(self, method: str) -> bool:
        return method in self.methods()

    def require(self, methods: tuple[str, ...] | list[str] = REQUIRED_METHODS) -> None:
        missing = [m for m in methods if m not in self.methods()]
        if missing:
            raise ConduitCapabilityError(missing)
