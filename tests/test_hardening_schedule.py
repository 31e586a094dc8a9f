"""Scheduling faults (issue 11, point 9): jobs that start together wait for the lock instead of
being lost, a job killed mid-run runs again when `serve` restarts, and `serve --once` exits 0 when
the bot did its job (findings fired)."""

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

from clinicbot.jobs.demo import write_sandbox_config
from clinicbot.sandbox import Sandbox, generate_scenario

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)
REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "COLUMNS": "300"}


@pytest.fixture(scope="module")
def sandbox():
    sb = Sandbox(scenario=generate_scenario(NOW, size=80), latency=0.05)
    sb.start()
    yield sb
    sb.stop()


def make_config(sandbox: Sandbox, tmp_path: Path, **schedule) -> Path:
    path = write_sandbox_config(tmp_path / "clinicbot.yaml", sandbox.url, sandbox.token)
    raw = yaml.safe_load(path.read_text())
    raw["schedule"] = schedule
    path.write_text(yaml.safe_dump(raw))
    return path


def cmd(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "clinicbot.cli", "--config", str(config), *args]


def runs(config: Path) -> list[tuple[str, str]]:
    db = config.parent / "state" / "cache.sqlite"
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT job, outcome FROM runs ORDER BY id").fetchall()
    except sqlite3.OperationalError:
        return []


def hold_lock(config: Path, seconds: float) -> subprocess.Popen:
    """Another process holding the state lock for ``seconds`` (a one-shot job still running)."""
    code = ("import sys, time; from clinicbot.state.ledger import StateLock\n"
            "lock = StateLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(float(sys.argv[2]))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(config.parent / "state"), str(seconds)],
                            stdout=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.slow
def test_four_jobs_started_at_once_all_run(sandbox, tmp_path):
    # The documented timers start sync, checks, digest and rotation at 09:00: with a lock that
    # refuses, two of four exited 2 and the day's rotation notice was lost.
    config = make_config(sandbox, tmp_path)
    jobs = ["sync", "checks", "digest", "rotation"]
    procs = [subprocess.Popen(cmd(config, "--now", NOW.isoformat(), "serve", "--once", job), env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for job in jobs]
    results = [(job, p.wait(timeout=300), p.communicate()[1]) for job, p in zip(jobs, procs)]
    for job, code, err in results:
        assert code == 0, (job, err)
        assert "Traceback" not in err
    assert sorted(j for j, o in runs(config) if o == "ok") == sorted(jobs)


def test_a_job_waits_for_the_lock_within_its_bound(sandbox, tmp_path):
    config = make_config(sandbox, tmp_path, lock_wait_seconds=30)
    holder = hold_lock(config, 2)
    started = time.monotonic()
    result = subprocess.run(cmd(config, "serve", "--once", "sync"), capture_output=True, text=True, env=ENV,
                            timeout=120)
    holder.wait(timeout=30)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 1.5  # it waited for the holder
    assert f"locked by process {holder.pid}" in result.stderr and "waiting up to 30 s" in result.stderr
    assert runs(config) == [("sync", "ok")]


def test_the_wait_is_bounded(sandbox, tmp_path):
    config = make_config(sandbox, tmp_path, lock_wait_seconds=1)
    holder = hold_lock(config, 20)
    try:
        result = subprocess.run(cmd(config, "serve", "--once", "sync"), capture_output=True, text=True, env=ENV,
                                timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 2 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert f"locked by process {holder.pid}" in last and "still held after waiting 1 s" in last
    assert "schedule.lock_wait_seconds" in last
    # Interactive commands do not wait: refused at once.
    holder = hold_lock(config, 20)
    try:
        started = time.monotonic()
        now = subprocess.run(cmd(config, "sync"), capture_output=True, text=True, env=ENV, timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert now.returncode == 2 and "still held" not in now.stderr and time.monotonic() - started < 10


@pytest.mark.parametrize("value", [-1, "soon", True, 100000])
def test_lock_wait_seconds_is_validated(sandbox, tmp_path, value):
    config = make_config(sandbox, tmp_path, lock_wait_seconds=value)
    result = subprocess.run(cmd(config, "serve", "--print-crontab"), capture_output=True, text=True, env=ENV,
                            timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "schedule.lock_wait_seconds" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_serve_once_exits_0_when_findings_fired(sandbox, tmp_path):
    config = make_config(sandbox, tmp_path)
    check = subprocess.run(cmd(config, "--now", NOW.isoformat(), "check"), capture_output=True, text=True,
                           env=ENV, timeout=120)
    assert check.returncode == 1  # `check` keeps its documented code: findings fired
    once = subprocess.run(cmd(config, "--now", NOW.isoformat(), "serve", "--once", "checks"), capture_output=True,
                          text=True, env=ENV, timeout=120)
    assert once.returncode == 0, once.stderr  # a systemd unit is not "failed" because the bot did its job
    assert runs(config)[-1] == ("checks", "ok")


def test_serve_once_exit_codes():
    from clinicbot.cli.ops import once_exit_code
    from clinicbot.scheduler import JobOutcome

    assert once_exit_code(JobOutcome("checks", "ok", 1)) == 0  # findings fired
    assert once_exit_code(JobOutcome("checks", "partial", 1)) == 1  # a check crashed
    assert once_exit_code(JobOutcome("digest", "failed", 1)) == 1  # a delivery failed
    assert once_exit_code(JobOutcome("sync", "failed", 3)) == 3  # Conduit
    assert once_exit_code(JobOutcome("sync", "failed", 2)) == 2  # state / config
    assert once_exit_code(JobOutcome("x", "unavailable", 1)) == 1


@pytest.mark.slow
def test_a_job_killed_mid_run_runs_again_when_serve_restarts(sandbox, tmp_path):
    # Sync hourly (so its latest slot is always within the grace), everything else off.
    off = {name: False for name in ("checks", "digest", "agenda", "metrics", "rotation")}
    config = make_config(sandbox, tmp_path, jobs={"sync": {"minute": "*/59"}, **off})
    slow = Sandbox(scenario=generate_scenario(NOW, size=120), latency=0.3)  # a sync long enough to kill
    slow.start()
    try:
        raw = yaml.safe_load(config.read_text())
        raw["phabricator"]["url"] = slow.url
        config.write_text(yaml.safe_dump(raw))
        # A first completed run, so the job has a history (a new deployment is not caught up).
        assert subprocess.run(cmd(config, "serve", "--once", "sync"), env=ENV, capture_output=True,
                              timeout=300).returncode == 0
        with sqlite3.connect(config.parent / "state" / "cache.sqlite") as conn:  # make it an older run
            conn.execute("UPDATE runs SET started = started - 7200, finished = finished - 7200")
            conn.execute("DELETE FROM meta")  # the next sync is a long (full) one
        proc = subprocess.Popen(cmd(config, "--log-level", "info", "serve", "--run-now", "sync"), env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while ("sync", "running") not in runs(config) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ("sync", "running") in runs(config)
        proc.send_signal(signal.SIGKILL)  # killed mid-run
        proc.wait(timeout=30)
        proc = subprocess.Popen(cmd(config, "--log-level", "info", "serve"), env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while [o for j, o in runs(config) if j == "sync"][-1] != "ok" and time.monotonic() < deadline:
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert "catching up after a restart: sync" in err, err
        assert [o for j, o in runs(config) if j == "sync"] == ["ok", "interrupted", "ok"]
    finally:
        slow.stop()
