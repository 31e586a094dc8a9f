"""The one exception tree of clinicbot.

Core code raises these plain exceptions; only ``cli.py`` turns them into exit codes.
Every message is one line that names what went wrong (the file and key, or the Conduit
method and error code) and says what to do about it. No message ever contains the
Conduit token.

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
    │   │   └── ConduitWriteUncertain                 a write timed out: it may or may not have applied
    │   ├── ConduitProtocolError(method, detail)      the answer was not Conduit JSON
    │   └── ConduitCapabilityError(missing)           the server lacks methods clinicbot needs
    └── SafetyCapExceeded(limit, planned)   exit 4  more writes planned than the per-run cap allows
"""

from __future__ import annotations

import re

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_CONDUIT = 3
EXIT_CAP = 4


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
        super().__init__(message)


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
        self.info = info or ""
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
        self.reason = reason
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
        self.reason = reason
        self.status = None
        self.attempts = 1


class ConduitProtocolError(ConduitError):
    """The answer was not a Conduit JSON envelope."""

    def __init__(self, method: str, detail: str):
        self.detail = detail
        super().__init__(
            method,
            f"Conduit {method} returned something that is not a Conduit answer: {detail} "
            "(is phabricator.url the Phabricator base URL?)",
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
