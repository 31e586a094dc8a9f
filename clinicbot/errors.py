"""The one exception tree of clinicbot.

Core code raises these plain exceptions; only ``cli.py`` turns them into exit codes.
Every message is one line that names what went wrong (the file and key, or the Conduit
method and error code) and says what to do about it. No message ever contains the
Conduit token: every ConduitError message passes through :func:`redact` when it is made,
so whatever stores or prints it downstream (ledger, logs, stderr) gets clean text.

::

    ClinicbotError                         exit 1 unless a subclass says otherwise
    ├── ConfigError(file, key, message)    exit 2  bad config / rotation.yaml / CLI usage
    │   └── RotationError                  exit 2  rotation.yaml specifically
    ├── StateError(path, message)          exit 2  state directory unreadable / corrupt
    │   └── LockHeldError(path, pid)       exit 2  another instance holds the state lock
    ├── ConduitError(method, message)      exit 3  talking to Phabricator failed
    │   ├── ConduitAPIError(method, code, info)       the server answered with an error_code
    │   │     (ERR-CONDUIT-CALL: an unknown method -> upgrade the server; undefined parameters -> our bug)
    │   ├── ConduitTransportError(method, reason)     network, timeout, HTTP 5xx/429 after retries
    │   │   ├── ConduitWriteUncertain                 a write timed out: it may or may not have applied
    │   │   └── ConduitAnswerTooLarge                 the answer passed phabricator.max_answer_mb
    │   ├── ConduitRedirectError(method, location)    HTTP 3xx: never followed (the token would go along)
    │   ├── ConduitProtocolError(method, detail)      the answer was not Conduit JSON
    │   │   └── ConduitShapeError(method, obj, field, got)  JSON, but a field has the wrong type/shape
    │   └── ConduitCapabilityError(missing)           the server lacks methods clinicbot needs
    └── SafetyCapExceeded(limit, planned)   exit 4  more writes planned than the per-run cap allows
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_CONDUIT = 3
EXIT_CAP = 4


# --------------------------------------------------------------------------------------------
# Redaction: the one function that keeps the Conduit token out of every message.

REDACTED = "api-REDACTED"
# Anything shaped like a Conduit token, in any case, with the dash possibly escaped
# (URL-encoded, JSON \u002d, \x2d, HTML entity): servers and proxies echo tokens transformed.
_DASH = r"(?:-|%2d|\\u002d|\\x2d|&#45;|&#x2d;)"
TOKEN_RE = re.compile(r"(?:api|cli)" + _DASH + r"[a-z0-9]{20,}", re.IGNORECASE)
# A run of token-ish text, escapes included, decoded before it is compared with the secrets.
_RUN_RE = re.compile(r"(?:[A-Za-z0-9-]|%[0-9A-Fa-f]{2}|\\u00[0-9A-Fa-f]{2}|\\x[0-9A-Fa-f]{2}|&#x?[0-9A-Fa-f]{1,4};)+")
_ESCAPE_RE = re.compile(r"%([0-9A-Fa-f]{2})|\\u00([0-9A-Fa-f]{2})|\\x([0-9A-Fa-f]{2})|&#(x?)([0-9A-Fa-f]{1,4});")
_FRAGMENT_MIN = 10  # a run this long that is part of a known secret is redacted (a cut-off echo)
_MIN_SECRET = 8  # shorter values are not registered process-wide (they would redact ordinary words)

_secrets: tuple[str, ...] = ()
_secrets_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Remember a secret for the life of the process: :func:`redact` removes it from every text
    (the log handler and every ConduitError message included) even when it is not passed in."""
    global _secrets
    if value and len(value) >= _MIN_SECRET:
        with _secrets_lock:
            if value not in _secrets:
                _secrets = _secrets + (value,)


def _variants(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1],
            secret.replace("-", "%2D"), json.dumps(secret, ensure_ascii=True)[1:-1].replace("-", "\\u002d")}


def _unescape(run: str) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(5) is not None:
            return chr(int(m.group(5), 16 if m.group(4) else 10))
        return chr(int(m.group(1) or m.group(2) or m.group(3), 16))
    try:
        return _ESCAPE_RE.sub(one, run)
    except (ValueError, OverflowError):
        return run


def redact(text: str, token: str | None = None) -> str:
    """Remove the token from text: as given, in any case, URL-encoded, JSON-escaped, partly
    escaped, or cut off (a run of at least 10 characters of it), plus anything shaped like a
    Conduit token. ``token`` is added to the secrets registered with :func:`register_secret`."""
    secrets = [s for s in (*_secrets, token or "") if s]
    for secret in secrets:
        pattern = "|".join(re.escape(v) for v in sorted(_variants(secret), key=len, reverse=True))
        text = re.sub(pattern, REDACTED, text, flags=re.IGNORECASE)
    lowered = [s.lower() for s in secrets]

    def run(m: re.Match[str]) -> str:
        raw = m.group(0)
        if raw == REDACTED or len(raw) < _FRAGMENT_MIN:
            return raw
        plain = _unescape(raw).lower()
        if TOKEN_RE.search(plain):
            return REDACTED
        for secret in lowered:
            if secret in plain or (len(plain) >= _FRAGMENT_MIN and plain.strip("-") in secret):
                return REDACTED
        return raw

    text = _RUN_RE.sub(run, text)
    return TOKEN_RE.sub(REDACTED, text)


class Secret:
    """A string that never shows itself in repr/str/logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value
        register_secret(value)  # redact() and the log handler remove it from now on

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('api-REDACTED')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class ClinicbotError(Exception):
    """Base class of every error clinicbot raises on purpose."""

    exit_code = EXIT_FAILURE


class ConfigError(ClinicbotError):
    """A configuration value is missing or wrong. Names the file and the key."""

    exit_code = EXIT_CONFIG

    def __init__(self, file: str | None, key: str | None, message: str, line: int | None = None):
        self.file = file
        self.key = key
        self.line = line
        self.message = message
        where = []
        if file:
            where.append(f"{file}:{line}" if line else str(file))
        if key:
            where.append(f"key '{key}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class RotationError(ConfigError):
    """rotation.yaml is invalid."""


class StateError(ClinicbotError):
    """A file in the state directory is unreadable or corrupt."""

    exit_code = EXIT_CONFIG

    def __init__(self, path: str, message: str):
        self.path = str(path)
        super().__init__(f"{path}: {message}")


class LockHeldError(StateError):
    """Another clinicbot instance holds the lock on the state directory."""

    def __init__(self, path: str, pid: int | None, holder: str = ""):
        self.pid = pid
        who = f"process {pid}" if pid else "another process"
        extra = f" ({holder})" if holder else ""
        super().__init__(
            path,
            f"state directory is locked by {who}{extra}; wait for it to finish or stop it "
            "(one clinicbot instance per state directory)",
        )


class ConduitError(ClinicbotError):
    """Talking to Phabricator failed."""

    exit_code = EXIT_CONDUIT

    def __init__(self, method: str, message: str):
        self.method = method
        super().__init__(redact(message))


class ConduitAPIError(ConduitError):
    """The server answered HTTP 200 with a non-null ``error_code``.

    ``ERR-CONDUIT-CALL`` means two different things on Phorge, told apart by ``error_info``:
    ``Conduit API method "x" does not exist.`` (the server lacks the method: upgrade it) and
    ``API Method "x" does not define these parameters: 'limit', 'after'.`` (clinicbot sent a
    parameter the method does not take: a clinicbot bug). ``undefined_params`` holds the names
    of the second kind, ``unknown_method`` is True for the first.
    """

    HINTS = {
        "ERR-INVALID-AUTH": "check the Conduit API token (phabricator.token_env / token_file / ~/.arcrc)",
        "ERR-INVALID-SESSION": "no API token was sent; configure one (phabricator.token_env / token_file / ~/.arcrc)",
        "ERR-CONDUIT-CALL": "the server refused the call itself; check that phabricator.url is a Phabricator/Phorge "
                            "server, and report it as a clinicbot bug if it is",
        "ERR-INVALID-PAGE-SIZE": "page size must be at most 100 (this is a clinicbot bug, please report it)",
    }
    UNKNOWN_METHOD_HINT = "the server does not have this method; upgrade Phabricator/Phorge or disable the feature"

    def __init__(self, method: str, code: str, info: str | None):
        self.code = code
        self.info = redact(info or "")
        # error_info can be multi-line ("Validation errors:\n  - ...") or hold HTML: fold it to one line.
        info_line = " ".join(self.info.split())
        self.undefined_params: tuple[str, ...] = ()
        self.unknown_method = False
        hint = self.HINTS.get(code)
        if code == "ERR-CONDUIT-CALL":
            undefined = _UNDEFINED_PARAMS.search(info_line)
            if undefined:
                self.undefined_params = tuple(re.findall(r"'([^']*)'", undefined.group(1)))
                names = ", ".join(f"'{n}'" for n in self.undefined_params) or undefined.group(1)
                hint = (f"a clinicbot bug, not a server problem: clinicbot sent {method} parameters it does not "
                        f"define ({names}); please report it and upgrade clinicbot")
            elif _UNKNOWN_METHOD.search(info_line):
                self.unknown_method = True
                hint = self.UNKNOWN_METHOD_HINT
        msg = f"Conduit {method} failed with {code}: {info_line}" if info_line else f"Conduit {method} failed with {code}"
        if hint:
            msg += f" ({hint})"
        super().__init__(method, msg)


# Phorge's two ERR-CONDUIT-CALL texts (ConduitCall.php and ConduitMethodDoesNotExistException.php).
_UNDEFINED_PARAMS = re.compile(r"does not define these parameters: (.*?)\.?$")
_UNKNOWN_METHOD = re.compile(r'method "[^"]*" does not exist', re.IGNORECASE)


class ConduitTransportError(ConduitError):
    """Network failure, timeout, or HTTP error status that retries did not cure."""

    def __init__(self, method: str, reason: str, *, status: int | None = None, attempts: int = 1):
        self.reason = redact(reason)
        self.status = status
        self.attempts = attempts
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(
            method,
            f"Conduit {method} failed{tries}: {reason} (check phabricator.url, the network, or raise phabricator.timeout)",
        )


class ConduitWriteUncertain(ConduitTransportError):
    """A write was sent but no answer came back: the server may have applied it.

    Writes are never retried blindly; the caller must check (e.g. look for the bot's own
    comment) before trying again.
    """

    def __init__(self, method: str, reason: str):
        ConduitError.__init__(
            self,
            method,
            f"Conduit {method} may or may not have been applied: {reason}; "
            "not retried (the next run checks before writing again)",
        )
        self.reason = redact(reason)
        self.status = None
        self.attempts = 1


class ConduitAnswerTooLarge(ConduitTransportError):
    """The answer grew past ``phabricator.max_answer_mb``: reading stopped there (not retried)."""

    def __init__(self, method: str, url: str, limit_bytes: int):
        self.limit_bytes = limit_bytes
        ConduitError.__init__(
            self,
            method,
            f"Conduit {method}: the answer from {url} is larger than {limit_bytes / 2**20:g} MB, so reading stopped "
            "there (is phabricator.url the Phabricator base URL? if it is, raise phabricator.max_answer_mb)",
        )
        self.reason = "answer too large"
        self.status = None
        self.attempts = 1


class ConduitRedirectError(ConduitError):
    """The server answered a Conduit call with an HTTP redirect. Never followed: requests would
    send the POST body, token included, to wherever ``Location`` points."""

    def __init__(self, method: str, status: int, url: str, location: str | None):
        self.status = status
        self.location = redact(location or "")
        where = f"to {self.location}" if self.location else "with no Location"
        super().__init__(
            method,
            f"Conduit {method}: {url} answered HTTP {status}, a redirect {where}; not followed (the token "
            "would go along). Set phabricator.url to the server's real base URL: usually https:// instead of "
            "http://, the canonical host name, or a missing path or trailing slash",
        )


class ConduitProtocolError(ConduitError):
    """The answer was not a Conduit JSON envelope."""

    def __init__(self, method: str, detail: str):
        self.detail = detail
        super().__init__(
            method,
            f"Conduit {method} returned something that is not a Conduit answer: {detail} "
            "(is phabricator.url the Phabricator base URL?)",
        )


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class ConduitShapeError(ConduitProtocolError):
    """A Conduit answer is JSON but a field clinicbot relies on has the wrong type or shape.

    Raised where answers are parsed, naming the method, the object (``T12``, a PHID, ``result``),
    the field (``fields.ownerPHID``) and what came instead: never a silently smaller result.
    """

    def __init__(self, method: str, obj: str, field: str, got: Any, expected: str):
        self.object = obj
        self.field = field
        self.got = got
        self.expected = expected
        self.detail = f"{obj} with {field} = {_shown(got)} (expected {expected})"
        ConduitError.__init__(
            self,
            method,
            f"Conduit {method} answered {self.detail}; clinicbot cannot read that answer and stopped rather than "
            "give a partial result. Check that phabricator.url points at Phabricator/Phorge itself (not a proxy or "
            "plugin that rewrites answers) and report this with the server's version",
        )


class ConduitCapabilityError(ConduitError):
    """The server lacks Conduit methods clinicbot relies on."""

    def __init__(self, missing: list[str]):
        self.missing = sorted(missing)
        super().__init__(
            "conduit.query",
            "this Phabricator server lacks Conduit methods clinicbot needs: "
            + ", ".join(self.missing)
            + " (upgrade the server, or check the bot account may call them)",
        )


class SafetyCapExceeded(ClinicbotError):
    """A run planned more writes than ``max_writes_per_run`` allows."""

    exit_code = EXIT_CAP

    def __init__(self, limit: int, planned: int, done: int = 0):
        self.limit = limit
        self.planned = planned
        self.done = done
        super().__init__(
            f"safety cap: this run wants {planned} writes but max_writes_per_run is {limit} "
            f"({done} done before stopping); nothing more was written. Review with a dry run, "
            "then raise max_writes_per_run or narrow the run with --only/--task"
        )


def os_error_line(exc: OSError) -> str:
    """An OSError that slipped past the code that expects it (which raises StateError or
    ConfigError naming the file): still one line, with what to do."""
    where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
    return (f"{where}{exc.strerror or exc}; check that path (it must exist, be writable by this user, "
            "and its disk must have free space)")


def error_exit(exc: BaseException) -> tuple[str, int] | None:
    """The one mapping from an error to (one line, exit code), for the CLI's boundary and the
    scheduler's job runner; None for an error that is a bug (it keeps its traceback)."""
    import sqlite3

    if isinstance(exc, ClinicbotError):
        return str(exc), exc.exit_code
    if isinstance(exc, OSError):
        return os_error_line(exc), EXIT_CONFIG
    if isinstance(exc, sqlite3.Error):
        return (f"the cache database: {exc}; `clinicbot sync --full` rebuilds it, "
                "check the state directory and its disk"), EXIT_CONFIG
    return None
