"""Issue 11 campaign, part (c): clinicbot's commands against a hostile server.

A proxy (tests/hostile_server.py) sits in front of the sandbox and redirects, trickles, sends a
huge body, an HTML 502, truncated JSON, answers of the wrong shape, or echoes the token back in
several forms. Each case runs ``doctor``, ``board``, ``check`` and ``sync`` through the CLI with
a state directory and asserts: the documented exit code (3: Phabricator answered something
unusable), exactly one line on stderr, no traceback, the token nowhere (stdout, stderr, logs,
every file under the state directory; case-insensitively) and never a silently smaller result
(a wrong shape is an error, not exit 0). A baseline run through the same proxy proves the cases
fail because of the fault and not the setup. The subprocess runs are marked slow.
"""

from __future__ import annotations

import json
import os
import secrets
import string
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from click.testing import CliRunner

from clinicbot.jobs.context import App
from clinicbot.cli import cli
from clinicbot.jobs.demo import write_sandbox_config
from clinicbot.sandbox import Sandbox, generate_scenario
from hostile_server import Behaviour, Envelope, HostileServer, Huge, Mutate, Raw, Redirect, Trickle

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)
COMMANDS = ("doctor", "board", "check", "sync")
REPO = Path(__file__).resolve().parents[1]


def _token() -> str:
    return "api-" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(28))


TOKEN = _token()  # generated per run: never a literal in the repository


# -- answer rewrites (issue 11 point 6) --------------------------------------------------------


def _first(result: Any) -> dict[str, Any]:
    return result["data"][0]


def _set(path: str, value: Any, *, on: Callable[[Any], dict[str, Any]] = _first) -> Callable[[Any], None]:
    """Set a dotted path in the first data item (or the object ``on`` picks) to ``value``."""
    def change(result: Any) -> None:
        target = on(result)
        keys = path.split(".")
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return change


def _drop(path: str) -> Callable[[Any], None]:
    def change(result: Any) -> None:
        target = _first(result)
        keys = path.split(".")
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]
    return change


def _whoami_nulls(result: Any) -> None:
    result["phid"] = None
    result["userName"] = None


def _echo(transform: Callable[[str], str]) -> Behaviour:
    def make(params: dict[str, Any]) -> dict[str, Any]:
        sent = params.get("__conduit__", {}).get("token", "")
        return {"result": None, "error_code": "ERR-INVALID-AUTH",
                "error_info": f'API token "{transform(sent)}" is not valid.'}
    return Envelope(make)


@dataclass
class Case:
    name: str
    behaviours: dict[str, Behaviour]
    exit_code: int = 3
    expect: str = ""  # a fragment the error line must hold
    commands: tuple[str, ...] = COMMANDS


CASES = [
    # transport
    *[Case(f"redirect-{code}", {"*": Redirect(code, "http://127.0.0.1:{target}/api/")}, expect=f"HTTP {code}")
      for code in (301, 302, 307, 308)],
    Case("trickle", {"*": Trickle(interval=0.05)}, expect="in total"),
    # past the default cap (64 MB): no config needed, it holds even where max_answer_mb is not passed on
    Case("huge-body", {"*": Huge(size=66 * 2**20)}, expect="max_answer_mb", commands=("doctor", "check")),
    Case("html-502", {"*": Raw(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>")}, expect="HTTP 502"),
    Case("truncated-json", {"*": Raw(200, b'{"result": {"data": [{"id": 1, "phid": "PHID-TA', "application/json")},
         expect="not JSON"),
    # wrong shapes
    Case("date-as-string", {"maniphest.search": Mutate(_set("fields.dateCreated", "2026-11-01"))},
         expect="fields.dateCreated", commands=("board", "check", "sync")),
    Case("owner-as-int", {"maniphest.search": Mutate(_set("fields.ownerPHID", 42))},
         expect="fields.ownerPHID = 42", commands=("board", "check", "sync")),
    Case("fields-empty-list", {"maniphest.search": Mutate(_set("fields", []))},
         expect="fields = []", commands=("board", "check", "sync")),
    Case("null-task-phid", {"maniphest.search": Mutate(_set("phid", None))},
         expect="phid = null", commands=("board", "check", "sync")),
    Case("attachments-empty-list", {"maniphest.search": Mutate(_set("attachments", []))},
         expect="attachments = []", commands=("board", "check", "sync")),
    Case("columns-attachment-missing", {"maniphest.search": Mutate(_drop("attachments.columns"))},
         expect="attachments.columns", commands=("board", "check", "sync")),
    Case("null-priority", {"maniphest.search": Mutate(_set("fields.priority.value", None))},
         expect="fields.priority.value", commands=("board", "check", "sync")),
    Case("whoami-nulls", {"user.whoami": Mutate(_whoami_nulls)}, expect="user.whoami",
         commands=("check", "doctor")),
    Case("column-project-null", {"project.column.search": Mutate(_set("fields.project", None))},
         expect="fields.project"),
    Case("project-fields-empty-list", {"project.search": Mutate(_set("fields", []))}, expect="project.search"),
    Case("status-closed-as-string", {"maniphest.status.search": Mutate(_set("closed", "yes"))},
         expect="closed"),
    Case("history-date-as-string", {"transaction.search": Mutate(_set("dateCreated", "yesterday")),
                                    "maniphest.gettasktransactions": Mutate(
                                        lambda r: next(iter(r.values()))[0].update(dateCreated="yesterday"))},
         expect="dateCreated", commands=("check", "sync")),
    # the token echoed back
    Case("echo-as-is", {"*": _echo(lambda t: t)}, expect="ERR-INVALID-AUTH"),
    Case("echo-upper-case", {"*": _echo(str.upper)}, expect="ERR-INVALID-AUTH"),
    Case("echo-json-escaped", {"*": _echo(lambda t: json.dumps(json.dumps(t.upper()))[1:-1])},
         expect="ERR-INVALID-AUTH"),
    Case("echo-url-encoded", {"*": _echo(lambda t: "".join(f"%{ord(c):02x}" for c in t))},
         expect="ERR-INVALID-AUTH"),
    Case("echo-in-html-502", {"*": Envelope(lambda p: {"result": None, "error_code": "ERR-CONDUIT-CORE",
                                                       "error_info": "<b>" + urllib.parse.quote(
                                                           p["__conduit__"]["token"].upper()) + "</b>"})},
         expect="ERR-CONDUIT-CORE"),
]


# -- the setup -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox():
    sb = Sandbox(scenario=generate_scenario(NOW, size=40), token=TOKEN, clock=lambda: NOW.timestamp())
    sb.start()
    yield sb
    sb.stop()


@pytest.fixture(scope="module")
def hostile(sandbox):
    with HostileServer(upstream=sandbox.url) as hs:
        yield hs


def make_config(tmp_path: Path, url: str) -> Path:
    path = write_sandbox_config(tmp_path / "clinicbot.yaml", url, TOKEN)
    data = yaml.safe_load(path.read_text())
    data["phabricator"].update({"timeout": 1, "retries": 0})
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    traceback: bool


def run_cli(config: Path, command: str) -> Outcome:
    result = CliRunner().invoke(cli, ["--config", str(config), "--now", NOW.isoformat(), command], obj=App(env={}))
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    return Outcome(result.exit_code, result.stdout, result.stderr,
                   crashed or "Traceback (most recent call last)" in result.stderr)


def leaks(tmp_path: Path, *texts: str) -> list[str]:
    """Where the token shows up: in the given texts and every file under tmp_path but its own file."""
    body = TOKEN[4:].lower()
    found = [f"output {i}" for i, text in enumerate(texts) if body in text.lower()]
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name != "clinicbot.token":
            data = path.read_bytes().lower()
            if body.encode() in data or urllib.parse.quote(body).encode() in data:
                found.append(str(path.relative_to(tmp_path)))
    return found


def configure(hostile: HostileServer, case: Case) -> None:
    hostile.behaviours.clear()
    for method, behaviour in case.behaviours.items():
        if isinstance(behaviour, Redirect):
            behaviour = Redirect(behaviour.status, behaviour.location.replace("{target}",
                                                                                hostile.target_url.split(":")[-1].rstrip("/")))
        hostile.behave(method, behaviour)


# -- the campaign --------------------------------------------------------------------------------


def test_baseline_through_the_proxy_succeeds(hostile, tmp_path):
    """Without a fault every command works through the proxy: the cases below fail because of it."""
    hostile.behaviours.clear()
    config = make_config(tmp_path, hostile.url)
    for command in COMMANDS:
        out = run_cli(config, command)
        assert out.code in (0, 1), (command, out.stderr)  # 1: findings fired / doctor warnings
        assert not out.traceback and not leaks(tmp_path, out.stdout, out.stderr)
    assert "board" in COMMANDS and run_cli(config, "board").stdout.strip()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_answer_is_one_clear_line_and_no_leak(hostile, tmp_path, case):
    configure(hostile, case)
    config = make_config(tmp_path, hostile.url)
    for command in case.commands:
        out = run_cli(config, command)
        where = f"{case.name} / {command}"
        assert not out.traceback, where
        assert out.code == case.exit_code, (where, out.code, out.stderr)  # never a silently smaller exit 0
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("clinicbot: error: "), (where, lines)
        assert case.expect in lines[0], (where, lines[0])
        assert not leaks(tmp_path, out.stdout, out.stderr), where
    assert hostile.log.redirected_hits == 0
    hostile.behaviours.clear()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["redirect-307", "echo-upper-case", "owner-as-int"])
def test_hostile_answer_in_a_subprocess(hostile, tmp_path, name):
    """The same through the installed entry point: what an operator sees, logs at debug level included."""
    case = next(c for c in CASES if c.name == name)
    configure(hostile, case)
    config = make_config(tmp_path, hostile.url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINICBOT_")}
    command = case.commands[-1]
    proc = subprocess.run([sys.executable, "-m", "clinicbot.cli", "--config", str(config), "--now", NOW.isoformat(),
                           "--log-level", "debug", command], capture_output=True, text=True, timeout=60, env=env,
                          cwd=tmp_path)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("clinicbot: error: ")]
    assert proc.returncode == case.exit_code and len(errors) == 1 and case.expect in errors[0]
    assert "Traceback" not in proc.stderr
    assert not leaks(tmp_path, proc.stdout, proc.stderr)
    hostile.behaviours.clear()
