from __future__ import annotations

import functools
import json
import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, Iterator

import pytest

import clinicbot
import clinicbot.phab.conduit
from clinicbot.phab.conduit import ConduitClient

FIXTURES = Path(__file__).parent / "fixtures"
RECORDINGS = FIXTURES / "conduit"
SECOND_RECORDINGS = FIXTURES / "conduit-second"  # ../shared/conduit's "Second recording set" (another server)
TEST_TOKEN = "api-" + "t" * 28  # obviously fake, right shape


def recording(name: str) -> dict[str, Any]:
    """A recording by name, from the first set or else the second."""
    path = RECORDINGS / f"{name}.json"
    if not path.exists():
        path = SECOND_RECORDINGS / f"{name}.json"
    return json.loads(path.read_text())


def recorded_result(name: str) -> Any:
    return recording(name)["response"]["result"]


@pytest.fixture
def rec():
    return recording


# -- the Conduit call contract ------------------------------------------------------------------
# Every Conduit call that clinicbot's own code makes during the test session (method, parameter
# names, and the clinicbot line that made it) is recorded by wrapping ConduitClient.call. When the
# session ends, any call the real server's conduit.query (recorded) does not declare for that
# method fails the run: Phorge refuses such a call with ERR-CONDUIT-CALL. Calls a test makes
# straight on a client (some send bogus parameters on purpose) are not clinicbot's and are left
# out. Calls from clinicbot running in a subprocess are not seen here; they hit the sandbox, which
# refuses undefined parameters itself. Under pytest-xdist each worker hands its calls to the
# controller (workeroutput), which checks them all.

CallKey = tuple[str, tuple[str, ...]]  # (method, sorted parameter names)
_PACKAGE = os.path.dirname(os.path.abspath(clinicbot.__file__)) + os.sep
_SANDBOX = _PACKAGE + "sandbox" + os.sep
_CLIENT = os.path.abspath(clinicbot.phab.conduit.__file__)
_ORIGINAL_CALL = ConduitClient.call
SESSION_CALLS: dict[CallKey, str] = {}  # -> where it was first made ("clinicbot/phab/boards.py:131")
_logs: list[dict[CallKey, str]] = [SESSION_CALLS]
_lock = threading.Lock()


def declared_params(name: str = "conduit.query--full") -> dict[str, list[str]]:
    """Method -> the parameter names the recorded conduit.query declares (PHP's [] = none)."""
    return {method: list(doc.get("params") or {}) for method, doc in recorded_result(name).items()}


def clinicbot_caller(frame: FrameType | None) -> str | None:
    """``file:line`` of the clinicbot code behind a call (skipping the client), None for tests."""
    while frame is not None and os.path.abspath(frame.f_code.co_filename) == _CLIENT:
        frame = frame.f_back
    if frame is None:
        return None
    path = os.path.abspath(frame.f_code.co_filename)
    if not path.startswith(_PACKAGE) or path.startswith(_SANDBOX):
        return None
    return f"clinicbot/{path[len(_PACKAGE):].replace(os.sep, '/')}:{frame.f_lineno}"


@functools.wraps(_ORIGINAL_CALL)
def _recording_call(self: ConduitClient, method: str, **params: Any) -> Any:
    where = clinicbot_caller(sys._getframe(1))
    if where is not None:
        key = (method, tuple(sorted(params)))
        with _lock:
            for log in _logs:
                log.setdefault(key, where)
    return _ORIGINAL_CALL(self, method, **params)


@contextmanager
def recording_calls() -> Iterator[dict[CallKey, str]]:
    """The clinicbot Conduit calls made inside the block (besides the session's record)."""
    log: dict[CallKey, str] = {}
    with _lock:
        _logs.append(log)
    try:
        yield log
    finally:
        with _lock:  # by identity: list.remove() compares dicts by value and could drop the session's
            _logs[:] = [other for other in _logs if other is not log]


def contract_violations(calls: dict[CallKey, str], declared: dict[str, list[str]]) -> list[str]:
    """One line per recorded call the server would refuse, naming method, parameters and caller."""
    problems = []
    for (method, names), where in sorted(calls.items()):
        if method not in declared:
            problems.append(f"{where}: clinicbot called {method}, which the recorded conduit.query does not have")
            continue
        extra = [n for n in names if n not in declared[method]]
        if extra:
            allowed = ", ".join(declared[method]) or "none"
            problems.append(f"{where}: clinicbot called {method} with parameters it does not define: "
                            + ", ".join(f"'{n}'" for n in extra) + f" (it defines: {allowed})")
    return problems


def pytest_configure(config: pytest.Config) -> None:
    ConduitClient.call = _recording_call  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    ConduitClient.call = _ORIGINAL_CALL  # type: ignore[method-assign]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:  # pytest-xdist controller: a worker finished
    for method, names, where in getattr(node, "workeroutput", {}).get("clinicbot_conduit_calls", []):
        SESSION_CALLS.setdefault((method, tuple(names)), where)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if hasattr(config, "workerinput"):  # pytest-xdist worker: the controller checks
        config.workeroutput["clinicbot_conduit_calls"] = [[m, list(n), w] for (m, n), w in SESSION_CALLS.items()]
        return
    problems = contract_violations(SESSION_CALLS, declared_params())
    config.stash[_PROBLEMS] = problems
    if problems and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    problems = config.stash.get(_PROBLEMS, [])
    if problems:
        terminalreporter.section("Conduit call contract (tests/conftest.py)", red=True, bold=True)
        for line in problems:
            terminalreporter.write_line(line, red=True)
        terminalreporter.write_line(f"{len(problems)} Conduit call(s) that Phorge would refuse with ERR-CONDUIT-CALL; "
                                    "the run fails.", red=True)


_PROBLEMS = pytest.StashKey[list]()
