"""A dry run while another run holds the state lock (``serve``'s sync, a scheduled job) reads the
cache as that run's last completed sync left it. While the other run is still writing the cache
(mid-sync) it waits for it, up to ``schedule.lock_wait_seconds``, instead of fetching every task
from the server (that was ~2,000 calls and 650 MB at 100,000 tasks)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from clinicbot.jobs.demo import write_sandbox_config
from clinicbot.sandbox import Sandbox, generate_scenario
from clinicbot.state.lock import StateLock

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)
REPO = Path(__file__).resolve().parents[1]
HISTORY_METHODS = ("maniphest.search", "transaction.search", "maniphest.gettasktransactions")


@pytest.fixture
def sandbox():
    sb = Sandbox(scenario=generate_scenario(NOW))
    sb.start()
    yield sb
    sb.stop()


def config_for(sb: Sandbox, tmp_path: Path, lock_wait: float) -> Path:
    path = write_sandbox_config(tmp_path / "clinicbot.yaml", sb.url, sb.token)
    data = yaml.safe_load(path.read_text())
    data["schedule"] = {"lock_wait_seconds": lock_wait}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def clinicbot(config: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "clinicbot.cli", "--config", str(config), "--now", NOW.isoformat(),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))


def mid_sync(cache: Path) -> str:
    """Make the cache look as it does while a sync writes it (its rows not what the last sync recorded)."""
    with sqlite3.connect(cache) as conn:
        (rows,) = conn.execute("SELECT value FROM meta WHERE key = 'rows'").fetchone()
        conn.execute("UPDATE meta SET value = ? WHERE key = 'rows'", (json.dumps([t + 1 for t in json.loads(rows)]),))
    conn.close()
    return rows


def finish_sync(cache: Path, rows: str) -> None:
    with sqlite3.connect(cache) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'rows'", (rows,))
    conn.close()


def fetched(sb: Sandbox) -> dict[str, int]:
    return {m: sb.stats.requests.get(m, 0) for m in HISTORY_METHODS}


def test_a_dry_run_waits_for_a_sync_in_progress_instead_of_fetching_every_task(sandbox, tmp_path):
    config = config_for(sandbox, tmp_path, lock_wait=60)
    first = clinicbot(config, "check")
    assert first.wait(timeout=120) in (0, 1), first.stderr.read()  # type: ignore[union-attr]
    expected = first.stdout.read()  # type: ignore[union-attr]
    cache = tmp_path / "state" / "cache.sqlite"
    before = fetched(sandbox)
    lock = StateLock(tmp_path / "state").acquire()
    rows = mid_sync(cache)
    try:
        proc = clinicbot(config, "check")
        time.sleep(1.5)  # the dry run found the cache mid-write and waits for the lock
        assert proc.poll() is None
        finish_sync(cache, rows)
    finally:
        lock.release()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, 1), err
    assert "waiting up to 60 s" in err
    assert fetched(sandbox) == before  # nothing fetched again: the cache as the other run left it
    assert out == expected


def test_a_dry_run_gives_up_after_the_lock_wait_with_one_line(sandbox, tmp_path):
    config = config_for(sandbox, tmp_path, lock_wait=1)
    first = clinicbot(config, "check")
    assert first.wait(timeout=120) in (0, 1)
    cache = tmp_path / "state" / "cache.sqlite"
    before = fetched(sandbox)
    with StateLock(tmp_path / "state"):
        mid_sync(cache)
        proc = clinicbot(config, "check")
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in err and f"locked by process {os.getpid()}" in err.strip().splitlines()[-1]
    assert "lock_wait_seconds" in err.strip().splitlines()[-1]
    assert fetched(sandbox) == before
