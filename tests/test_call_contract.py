"""The Conduit call contract: clinicbot only sends parameters the real server's conduit.query declares.

The session-wide check lives in ``conftest.py`` (every clinicbot call of the whole test run is
recorded and checked when the session ends). These tests pin the pieces it is made of, and run
every command against the strict sandbox so that the check means something even when this file
runs alone.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from clinicbot.jobs.context import App
from clinicbot.phab.boards import fetch_priorities, fetch_statuses
from clinicbot.cli import cli
from clinicbot.phab.conduit import REQUIRED_METHODS, ConduitClient, HTTPAnswer
from clinicbot.jobs.demo import write_sandbox_config
from clinicbot.sandbox import Sandbox, generate_scenario
from conftest import (
    SESSION_CALLS,
    TEST_TOKEN,
    clinicbot_caller,
    contract_violations,
    declared_params,
    recorded_result,
    recording_calls,
)

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)


class Answers:
    """A transport answering each method from a table of results."""

    def __init__(self, results: dict[str, object]):
        self.results = results
        self.sent: list[tuple[str, dict]] = []

    def post(self, url, data, timeout):
        method = url.rsplit("/", 1)[-1]
        params = json.loads(data["params"])
        params.pop("__conduit__")
        self.sent.append((method, params))
        return HTTPAnswer(200, json.dumps({"result": self.results[method], "error_code": None, "error_info": None}))

    def close(self):
        pass


def test_declared_parameters_are_the_recorded_servers():
    declared = declared_params()
    assert declared["maniphest.status.search"] == [] and declared["maniphest.priority.search"] == []
    assert declared["user.whoami"] == [] and declared["conduit.query"] == []
    assert declared["maniphest.gettasktransactions"] == ["ids"]
    assert "order" not in declared["transaction.search"] and "attachments" not in declared["transaction.search"]
    assert "order" not in declared["edge.search"] and "limit" in declared["edge.search"]
    assert {"constraints", "attachments", "order", "limit", "after"} <= set(declared["maniphest.search"])
    assert set(REQUIRED_METHODS) <= set(declared)


def test_both_recorded_servers_declare_the_same_parameters():
    assert declared_params("conduit.query--full-second-server") == declared_params()


def test_the_check_refuses_what_phorge_refuses():
    declared = declared_params()
    calls = {
        ("maniphest.status.search", ("limit",)): "clinicbot/phab/boards.py:131",
        ("transaction.search", ("limit", "objectIdentifier", "order")): "clinicbot/phab/history.py:1",
        ("maniphest.frobnicate", ()): "clinicbot/x.py:1",
        ("maniphest.search", ("after", "attachments", "constraints", "limit", "order")): "clinicbot/sync.py:1",
        ("maniphest.priority.search", ()): "clinicbot/phab/boards.py:135",
    }
    problems = contract_violations(calls, declared)
    assert problems == [
        "clinicbot/x.py:1: clinicbot called maniphest.frobnicate, which the recorded conduit.query does not have",
        "clinicbot/phab/boards.py:131: clinicbot called maniphest.status.search with parameters it does not define: "
        "'limit' (it defines: none)",
        "clinicbot/phab/history.py:1: clinicbot called transaction.search with parameters it does not define: 'order' "
        "(it defines: objectIdentifier, objectType, constraints, before, after, limit)",
    ]


def test_calls_are_recorded_for_clinicbot_code_not_for_tests():
    transport = Answers({"maniphest.status.search": recorded_result("maniphest.status.search--no-params"),
                         "conduit.ping": "ok"})
    client = ConduitClient("http://127.0.0.1:1/", TEST_TOKEN, transport=transport, retries=0)
    with recording_calls() as log:
        client.call("conduit.ping", bogus=1)  # a test's own probe: not clinicbot's call
        statuses = fetch_statuses(client)
    assert [s.value for s in statuses][:2] == ["open", "resolved"]
    assert list(log) == [("maniphest.status.search", ())]
    assert log[("maniphest.status.search", ())].startswith("clinicbot/phab/boards.py:")
    assert ("maniphest.status.search", ()) in SESSION_CALLS  # the session's record got it too
    assert ("conduit.ping", ("bogus",)) not in SESSION_CALLS


def test_leaving_a_block_keeps_recording_for_an_equal_outer_log():
    transport = Answers({"maniphest.status.search": recorded_result("maniphest.status.search--no-params"),
                         "maniphest.priority.search": recorded_result("maniphest.priority.search--no-params")})
    client = ConduitClient("http://127.0.0.1:1/", TEST_TOKEN, transport=transport, retries=0)
    with recording_calls() as outer:
        with recording_calls() as inner:
            fetch_statuses(client)
        assert inner == outer  # equal by value: leaving the inner block must drop the inner log only
        fetch_priorities(client)
    assert ("maniphest.priority.search", ()) in outer and ("maniphest.priority.search", ()) not in inner


def test_caller_of_a_test_frame_is_none():
    import sys

    assert clinicbot_caller(sys._getframe()) is None


@pytest.fixture(scope="module")
def sandbox():
    sb = Sandbox(scenario=generate_scenario(NOW, size=60), clock=lambda: NOW.timestamp())
    sb.start()
    yield sb
    sb.stop()


def run(config: Path, *args: str):
    app = App(env={}, console=Console(width=200))
    return CliRunner().invoke(cli, ["--config", str(config), "--now", NOW.isoformat(), *args], obj=app)


@pytest.mark.parametrize("batch", [True, False], ids=["with-gettasktransactions", "transaction.search-only"])
def test_every_command_makes_only_declared_calls_against_the_strict_sandbox(sandbox, tmp_path, batch):
    config = write_sandbox_config(tmp_path / "clinicbot.yaml", sandbox.url, sandbox.token)
    sandbox.store.features["gettasktransactions"] = batch
    try:
        with recording_calls() as log:
            for args in (["doctor"], ["board"], ["sync"], ["sync"], ["check"], ["check", "--apply"], ["digest"],
                         ["agenda"], ["metrics"]):
                result = run(config, *args)
                crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
                assert result.exit_code in (0, 1) and not crashed, (args, result.output, result.exception)
    finally:
        sandbox.store.features["gettasktransactions"] = True
    assert contract_violations(log, declared_params()) == []
    assert ("maniphest.status.search", ()) in log and ("maniphest.priority.search", ()) in log
    history = {"maniphest.gettasktransactions"} if batch else {"transaction.search"}
    assert set(REQUIRED_METHODS) - {"transaction.search"} | history <= {method for method, _ in log}
