"""The foundation against the sandbox: call budgets, connection reuse, faults, CLI errors."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from rich.console import Console

from clinicbot.jobs.context import App
from clinicbot.phab.boards import load_boards
from clinicbot.cli import cli
from clinicbot.phab.conduit import ConduitClient
from clinicbot.config import load_config
from clinicbot.jobs.demo import write_sandbox_config
from clinicbot.errors import EXIT_CONDUIT, EXIT_CONFIG, ConduitWriteUncertain
from clinicbot.phab.history import fetch_timelines
from clinicbot.sandbox import Sandbox, generate_scenario

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def scenario():
    return generate_scenario(NOW, size=250)


@pytest.fixture
def sandbox(scenario):
    sb = Sandbox(scenario=scenario)
    sb.start()
    yield sb
    sb.stop()


@pytest.fixture
def config_path(sandbox, tmp_path) -> Path:
    return write_sandbox_config(tmp_path / "clinicbot.yaml", sandbox.url, sandbox.token)


def client_for(sb: Sandbox, **kw) -> ConduitClient:
    return ConduitClient(sb.url, sb.token, **kw)


def test_board_of_250_tasks_costs_3_searches_and_histories_at_most_5(sandbox, config_path):
    client = client_for(sandbox)
    data = load_boards(client, load_config(config_path))
    assert 200 < len(data.tasks) <= 300
    assert sandbox.stats.requests["maniphest.search"] == math.ceil(len(data.tasks) / 100) == 3
    before = sum(sandbox.stats.requests.values())
    timelines = fetch_timelines(client, [(t.id, t.phid) for t in data.tasks.values()])
    assert len(timelines) == len(data.tasks)
    assert sum(sandbox.stats.requests.values()) - before <= 5
    assert sandbox.stats.requests["transaction.search"] == 0


def test_fifty_sequential_calls_use_one_connection(sandbox):
    client = client_for(sandbox)
    sandbox.stats.reset()
    for _ in range(50):
        client.call("user.whoami")
    assert sandbox.stats.requests["user.whoami"] == 50
    assert sandbox.stats.connections == 1


def test_read_timeout_on_edit_reaches_the_server_exactly_once(sandbox):
    client = client_for(sandbox, timeout=0.5, sleep=lambda s: None)
    task = next(iter(sandbox.store.tasks.values())) if hasattr(sandbox.store, "tasks") else None
    sandbox.faults.add(method="maniphest.edit", kind="timeout", times=1, apply=True, delay=1.5)
    sandbox.stats.reset()
    with pytest.raises(ConduitWriteUncertain):
        client.call("maniphest.edit", objectIdentifier="T1",
                    transactions=[{"type": "comment", "value": "hello from a test"}])
    assert sandbox.stats.requests["maniphest.edit"] == 1
    assert [c for c in sandbox.store.comments_on(1) if c[1] == "hello from a test"].__len__() == 1
    del task


def test_read_timeout_on_search_is_retried_and_succeeds(sandbox):
    client = client_for(sandbox, timeout=0.5, sleep=lambda s: None)
    sandbox.faults.add(method="maniphest.search", kind="timeout", times=1, delay=1.5)
    sandbox.stats.reset()
    result = client.call("maniphest.search", constraints={"ids": [1]})
    assert [t["id"] for t in result["data"]] == [1]
    assert sandbox.stats.requests["maniphest.search"] == 2


@pytest.mark.parametrize("kind", ["http429", "http502", "garbage"])
def test_other_read_faults_are_retried(sandbox, kind):
    client = client_for(sandbox, sleep=lambda s: None)
    sandbox.faults.add(method="user.whoami", kind=kind, times=2)
    assert client.call("user.whoami")["userName"]


def wide_app(env: dict | None = None) -> App:
    # CliRunner captures sys.stdout; a wide console keeps table cells on one line.
    return App(env=env or {}, console=Console(width=200))


def run_cli(config_path: Path, *args: str, env: dict | None = None):
    app = wide_app(env)
    runner = CliRunner()
    return runner.invoke(cli, ["--config", str(config_path), "--now", NOW.isoformat(), *args], obj=app)


def test_wrong_token_is_one_line_naming_the_error_code_without_the_token(sandbox, config_path):
    bad = "api-" + "w" * 28
    config_path.with_name("clinicbot.token").write_text(bad + "\n")
    result = run_cli(config_path, "board")
    assert result.exit_code == EXIT_CONDUIT
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "ERR-INVALID-AUTH" in lines[0]
    assert bad not in result.output and sandbox.token not in result.output


def test_unknown_column_lists_the_real_columns(config_path):
    data = yaml.safe_load(config_path.read_text())
    data["boards"][0]["columns"]["inbox"] = "Inbocks"
    config_path.write_text(yaml.safe_dump(data))
    result = run_cli(config_path, "board")
    assert result.exit_code == EXIT_CONFIG
    assert "boards[0].columns.inbox" in result.output and "'Inbocks'" in result.output
    assert "Inbox, Triage Meeting Inbox, Ready, Doing" in result.output


def test_board_command_lists_columns(config_path):
    result = run_cli(config_path, "board")
    assert result.exit_code == 0, result.output
    assert "Core Platform Team" in result.output and "Triage Meeting Inbox" in result.output
    result = run_cli(config_path, "board", "--format", "json")
    names = [b["name"] for b in yaml.safe_load(result.output)["boards"]]
    assert names == ["Core Platform Team", "Clinic Duty Team", "CPT External Code Reviews"]


def test_doctor_all_good(config_path):
    result = run_cli(config_path, "doctor")
    assert "connected to" in result.output and "board Core Platform Team" in result.output
    assert result.exit_code == 0, result.output


def test_demo_prints_the_board_overview():
    result = CliRunner().invoke(cli, ["--now", NOW.isoformat(), "demo"], obj=wide_app())
    assert result.exit_code == 0, result.output
    assert "Core Platform Team" in result.output


def test_batch_and_per_task_histories_agree_over_the_whole_scenario(sandbox, config_path):
    client = client_for(sandbox)
    data = load_boards(client, load_config(config_path))
    tasks = [(t.id, t.phid) for t in data.tasks.values()]
    batch = fetch_timelines(client, tasks, use_batch=True)
    sandbox.stats.reset()
    per_task = fetch_timelines(client, tasks, use_batch=False, concurrency=4)
    assert sandbox.stats.requests["maniphest.gettasktransactions"] == 0
    assert sandbox.stats.requests["transaction.search"] >= len(tasks)
    assert batch.keys() == per_task.keys() and len(batch) == len(tasks)
    differing = [p for p in batch if batch[p].events != per_task[p].events]
    assert not differing
    assert sum(len(t.moves()) for t in batch.values()) > 100  # the scenario really moves tasks


def test_server_without_the_batch_method_uses_transaction_search(sandbox, config_path):
    sandbox.store.features["gettasktransactions"] = False
    try:
        client = client_for(sandbox)
        data = load_boards(client, load_config(config_path))
        timelines = fetch_timelines(client, [(t.id, t.phid) for t in data.tasks.values()])
        assert len(timelines) == len(data.tasks)
        assert sandbox.stats.requests["maniphest.gettasktransactions"] == 0
    finally:
        sandbox.store.features["gettasktransactions"] = True
