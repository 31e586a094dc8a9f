"""`clinicbot status`: last runs, next runs, missed runs and failures from the state directory."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from click.testing import CliRunner
from rich.console import Console

from clinicbot.jobs.context import App
from clinicbot.cli import cli
from clinicbot.config import parse_config
from clinicbot.jobs.status import collect_status, render_status, status_json
from clinicbot.state.cache import CacheStore, cache_path

BERLIN = ZoneInfo("Europe/Berlin")
TUESDAY_NOON = datetime(2026, 11, 24, 12, 5, tzinfo=BERLIN)


def config_at(tmp_path: Path):
    raw = {
        "phabricator": {"url": "http://127.0.0.1:1/"},
        "team": {"timezone": "Europe/Berlin"},
        "boards": [{"project": "Core Platform Team", "columns": {"inbox": "Inbox"}}],
        "schedule": {"jobs": {"sync": {"minute": "*/30"}, "digest": "0 9 * * mon-fri", "rotation": False}},
    }
    path = tmp_path / "clinicbot.yaml"
    path.write_text(json.dumps(raw))
    return parse_config(raw, path)


def record(config, job: str, at: datetime, outcome: str = "ok", calls: int = 3, detail: str = "",
           pid: int | None = None) -> None:
    with CacheStore(cache_path(config)) as store:
        run = store.run_started(job, at.timestamp())
        if outcome != "running":
            store.run_finished(run, finished=at.timestamp() + 2.5, outcome=outcome, calls=calls, attempts=calls,
                               detail=detail)
        if pid is not None:
            store.conn.execute("UPDATE runs SET pid = ? WHERE id = ?", (pid, run))


def test_healthy_when_every_job_ran_as_scheduled(tmp_path):
    config = config_at(tmp_path)
    record(config, "sync", TUESDAY_NOON - timedelta(minutes=10))
    record(config, "digest", TUESDAY_NOON.replace(hour=9, minute=0))
    report = collect_status(config, TUESDAY_NOON)
    assert report.healthy, report.problems
    jobs = {j.name: j for j in report.jobs}
    assert jobs["digest"].last_outcome == "ok" and jobs["digest"].duration == 2.5 and jobs["digest"].calls == 3
    assert jobs["digest"].next_run.astimezone(BERLIN).strftime("%a %H:%M") == "Wed 09:00"
    assert jobs["sync"].next_run.astimezone(BERLIN).strftime("%H:%M") == "12:30"
    assert not jobs["rotation"].enabled and jobs["rotation"].next_run is None
    assert jobs["metrics"].last_outcome is None  # never ran: shown, not held against the bot


def test_a_failed_or_missed_job_is_a_problem_and_exit_1(tmp_path, monkeypatch):
    config = config_at(tmp_path)
    record(config, "sync", TUESDAY_NOON - timedelta(minutes=10), outcome="failed",
           detail="Conduit maniphest.search failed after 5 attempts: HTTP 502")
    record(config, "digest", TUESDAY_NOON.replace(hour=9, minute=0) - timedelta(days=4))  # last Friday: missed Monday
    record(config, "checks", TUESDAY_NOON - timedelta(minutes=30), outcome="running", pid=2 ** 22 + 12345)
    report = collect_status(config, TUESDAY_NOON)
    assert not report.healthy
    text = " | ".join(report.problems)
    assert "sync: last run failed (Conduit maniphest.search failed" in text
    assert "digest: missed its run of" in text
    assert "checks: last run interrupted" in text  # 'running' by a process that is gone
    data = status_json(report)
    assert data["healthy"] is False and data["jobs"][0]["name"] == "sync"

    console = Console(record=True, width=120)
    render_status(report, console)
    out = console.export_text()
    assert "ok, missed" in out and "interrupted" in out and "3 problem(s)" in out


def test_status_command_without_state_and_json(tmp_path):
    config = config_at(tmp_path)
    app = App(config_path=config.path, env={})
    result = CliRunner().invoke(cli, ["--config", str(config.path), "status"], obj=app)
    assert result.exit_code == 0, result.output
    assert "cache: none yet" in result.output and "serve: never started" in result.output
    record(config, "serve", TUESDAY_NOON, outcome="running", pid=os.getpid())
    result = CliRunner().invoke(cli, ["--config", str(config.path), "status", "--format", "json"],
                                obj=App(config_path=config.path, env={}))
    data = json.loads(result.output)
    assert data["serve"]["running"] is True and data["serve"]["pid"] == os.getpid()
    assert not (tmp_path / "state" / "clinicbot.lock").exists()  # status takes no lock
