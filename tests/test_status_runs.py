"""`clinicbot status` tells the truth (issue 14, point 13): every run that posts or changes state is
in the run history, not only serve's: `check --apply`, `digest|agenda|metrics --apply`,
`rotation --publish --apply`, `sync`, `serve --once`."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from clinicbot.cli import cli
from clinicbot.jobs.context import App
from clinicbot.jobs.runlog import check_job_name, recorded_run, writes_of
from clinicbot.state.cache import CacheStore
from clinicbot.state.lock import StateLock

from test_runner_sandbox import NOW, clock, make_config, run, run_json, sandbox, scenario  # noqa: F401 (fixtures)


def status(config: Path) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["--config", str(config), "status", "--format", "json"], obj=App(env={}))
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def job(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(j for j in data["jobs"] if j["name"] == name)


def test_status_shows_a_manual_check_apply_with_its_writes(sandbox, tmp_path):
    config = make_config(tmp_path, sandbox, commenting=("untriaged",))
    run(config, "sync")  # the sync command: recorded as before (trigger manual)
    code, result = run_json(config, "--apply")
    assert code == 1
    posted = [a for a in result["actions"] if a["status"] == "posted" and a["handler"] == "comment"]
    assert posted
    data = status(config)
    checks = job(data, "checks")
    assert checks["last_outcome"] == "ok"  # findings fired: the job did its work
    assert checks["trigger"] == "manual"
    assert checks["writes"] == len(posted) == sandbox.stats.requests["maniphest.edit"]
    assert checks["calls"] and checks["calls"] > 0
    newest = data["recent_runs"][0]
    assert (newest["job"], newest["command"], newest["trigger"]) == ("checks", "check --apply", "manual")
    assert [r["job"] for r in data["recent_runs"]] == ["checks", "sync"]

    # A dry run posts nothing and is not a run of the job.
    run_json(config)
    assert [r["job"] for r in status(config)["recent_runs"]] == ["checks", "sync"]

    # A narrower run is listed under its own command, not as the checks job.
    task = posted[0]["task"]
    run_json(config, "--apply", "--only", "untriaged", "--task", task)
    data = status(config)
    assert data["recent_runs"][0]["job"] == f"check --only untriaged --task {task}"
    assert data["recent_runs"][0]["writes"] == 0  # handled already: never twice
    assert job(data, "checks")["last_started"] == checks["last_started"]


def test_a_run_stopped_by_the_write_cap_is_a_failed_run(sandbox, tmp_path):
    config = make_config(tmp_path, sandbox, cap=1, commenting=("untriaged",))
    code, _out, _err = run(config, "check", "--apply")
    assert code == 4
    checks = job(status(config), "checks")
    assert (checks["last_outcome"], checks["writes"]) == ("failed", 0)
    assert "exit 4" in checks["detail"]


def test_a_run_refused_by_the_lock_is_not_recorded(sandbox, tmp_path):
    config = make_config(tmp_path, sandbox, commenting=("untriaged",))
    held, done = threading.Event(), threading.Event()

    def holder() -> None:  # another holder (the lock is re-entrant per thread)
        with StateLock(tmp_path / "state"):
            held.set()
            done.wait(30)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(30)
    try:
        code, _out, err = run(config, "check", "--apply")
    finally:
        done.set()
        thread.join()
    assert code == 2 and "locked by process" in err
    assert status(config)["recent_runs"] == []


def test_applied_reports_and_rotation_publish_are_runs(sandbox, tmp_path):
    config = make_config(tmp_path, sandbox)
    code, _out, err = run(config, "metrics", "--format", "json")
    assert code == 0, err
    assert status(config)["recent_runs"] == []  # a dry run
    code, _out, err = run(config, "metrics", "--format", "json", "--apply")
    assert code == 0, err
    metrics = job(status(config), "metrics")
    assert (metrics["last_outcome"], metrics["trigger"], metrics["writes"]) == ("ok", "manual", 0)

    code, _out, err = run(config, "rotation", "--publish", "clinic/rotation", "--apply")
    assert code == 0, err
    newest = status(config)["recent_runs"][0]
    assert newest["command"] == "rotation --publish clinic/rotation --apply"
    assert newest["outcome"] == "ok" and newest["writes"] >= 1  # the page (and any parent) created


def test_an_older_runs_table_gains_the_new_columns(tmp_path):
    path = tmp_path / "cache.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, "
                       "started REAL NOT NULL, finished REAL, outcome TEXT NOT NULL, duration REAL, calls INTEGER, "
                       "attempts INTEGER, detail TEXT, pid INTEGER);"
                       "INSERT INTO runs (job, started, finished, outcome) VALUES ('digest', 1.0, 2.0, 'ok');")
    conn.commit()
    conn.close()
    with CacheStore(path) as store:  # the cache itself is rebuilt (no schema version): the runs are kept
        old = store.last_runs()["digest"]
        assert (old["writes"], old["trigger"]) == (None, None)
        rid = store.run_started("checks", 3.0, trigger="manual", command="check --apply")
        store.run_finished(rid, finished=4.0, outcome="ok", calls=5, attempts=5, writes=2)
        assert [(r["job"], r["writes"]) for r in store.recent_runs()] == [("checks", 2), ("digest", None)]


def test_job_names_and_writes_of_results():
    assert check_job_name(None, None) == "checks"
    assert check_job_name("rotation-notice", None) == "rotation"
    assert check_job_name("untriaged", None) == "check --only untriaged"
    assert check_job_name(None, 12) == "check --task T12"

    class A:
        def __init__(self, handler: str, status: str):
            self.handler, self.status = handler, status

    class Result:
        actions = [A("comment", "posted"), A("console", "posted"), A("chat", "failed"), A("email", "posted")]

    class D:
        def __init__(self, status: str):
            self.status = status

    assert writes_of(Result()) == 2
    assert writes_of([D("posted"), D("written"), D("edited"), D("planned")]) == 2
    assert writes_of(0) is None


def test_recorded_run_records_nothing_when_disabled_and_a_failure_when_the_block_raises(tmp_path):
    config_path = tmp_path / "clinicbot.yaml"
    config_path.write_text(yaml.safe_dump({"phabricator": {"url": "http://127.0.0.1:1/"},
                                           "boards": [{"project": "Core", "columns": {"inbox": "Inbox"}}]}))
    app = App(config_path=config_path, env={})
    with recorded_run(app, "digest", command="digest", enabled=False) as r:
        r.result = 0
    assert not (tmp_path / "state" / "cache.sqlite").exists()
    try:
        with recorded_run(app, "digest", command="digest --to chat --apply"):
            raise PermissionError(13, "Permission denied", "/nowhere/out.html")
    except PermissionError:
        pass
    with CacheStore(app.config().state_dir / "cache.sqlite", readonly=True) as store:
        [row] = store.recent_runs()
    assert row["outcome"] == "failed" and "Permission denied" in row["detail"]
    assert row["finished"] is not None
