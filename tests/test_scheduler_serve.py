"""`clinicbot serve` as a real process: SIGTERM during a job, the state lock, a restart."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from clinicbot.cli import cli
from clinicbot.config import load_config
from clinicbot.jobs.demo import write_sandbox_config
from clinicbot.errors import EXIT_CONFIG
from clinicbot.sandbox import Sandbox, generate_scenario
from clinicbot.state.cache import cache_path
from clinicbot.sync import load_cached

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def sandbox():
    # Latency makes a cold sync last a couple of seconds: long enough to signal it mid-job.
    sb = Sandbox(scenario=generate_scenario(NOW, size=120), latency=0.2)
    sb.start()
    yield sb
    sb.stop()


@pytest.fixture
def config_path(sandbox, tmp_path) -> Path:
    path = write_sandbox_config(tmp_path / "clinicbot.yaml", sandbox.url, sandbox.token)
    raw = yaml.safe_load(path.read_text())
    # Only the sync job, and not before an hour from now: the test starts it with --run-now.
    raw["schedule"] = {"jobs": {"sync": {"minute": "*/59"}, "checks": False, "digest": False, "agenda": False,
                                "metrics": False, "rotation": False},
                       "lock_wait_seconds": 1}  # a second serve waits this long for the lock, then is refused
    path.write_text(yaml.safe_dump(raw))
    return path


def runs(config_path: Path) -> list[tuple]:
    db = cache_path(load_config(config_path))
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        try:
            return conn.execute("SELECT job, outcome, detail, pid FROM runs ORDER BY id").fetchall()
        except sqlite3.OperationalError:  # the table is being created
            return []


def start_serve(config_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "clinicbot.cli", "--config", str(config_path), "--log-level", "info",
         "serve", "--run-now", "sync"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_for(predicate, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_sigterm_during_a_job_finishes_it_exits_0_and_a_restart_resumes(config_path, tmp_path):
    proc = start_serve(config_path)
    try:
        wait_for(lambda: ("sync", "running") in [(j, o) for j, o, _, _ in runs(config_path)] or proc.poll() is not None)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""

        # While it runs, a second instance is refused, naming the holder's PID (exit 2).
        other = CliRunner().invoke(cli, ["--config", str(config_path), "sync"])
        assert other.exit_code == EXIT_CONFIG
        assert f"locked by process {proc.pid}" in other.output

        code, err = stop(proc)  # SIGTERM mid-sync
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, err
    assert "stopping after the current job" in err  # the signal came while the sync ran
    history = [(j, o) for j, o, _, _ in runs(config_path)]
    assert history == [("serve", "stopped"), ("sync", "ok")]  # the job ran to its end
    cached = load_cached(load_config(config_path))  # consistent: a completed sync, readable
    assert len(cached.data.tasks) > 50
    with sqlite3.connect(cache_path(load_config(config_path))) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # A restart picks up where it left: the next sync is incremental.
    proc = start_serve(config_path)
    try:
        wait_for(lambda: [j for j, o, _, _ in runs(config_path) if j == "sync" and o == "ok"].__len__() == 2
                 or proc.poll() is not None)
        # A second serve is refused while this one holds the lock, naming it.
        second = subprocess.run([sys.executable, "-m", "clinicbot.cli", "--config", str(config_path), "serve"],
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == EXIT_CONFIG and f"locked by process {proc.pid}" in second.stderr
        assert "still held after waiting 1 s" in second.stderr and "Traceback" not in second.stderr
        code, err = stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, err
    last_sync = [d for j, o, d, _ in runs(config_path) if j == "sync"][-1]
    assert last_sync.startswith("sync incremental")

    # status reads all of it without the lock, and is healthy.
    result = CliRunner().invoke(cli, ["--config", str(config_path), "status"])
    assert result.exit_code == 0, result.output
    assert "serve: not running" in result.output and "status: healthy" in result.output


def test_serve_once_runs_one_job_and_exits(config_path):
    result = CliRunner().invoke(cli, ["--config", str(config_path), "serve", "--once", "sync"])
    assert result.exit_code == 0, result.output
    assert [(j, o) for j, o, _, _ in runs(config_path)] == [("sync", "ok")]
    bad = CliRunner().invoke(cli, ["--config", str(config_path), "serve", "--once", "bogus"])
    assert bad.exit_code == EXIT_CONFIG and "unknown job 'bogus'" in bad.output
