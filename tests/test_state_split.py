"""The state package after the issue-13 split: one time format, one atomic writer, the run history
beside the cache and surviving its rebuild."""

from __future__ import annotations

import json
import os
import stat
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from clinicbot.errors import StateError
from clinicbot.model import iso, json_default, parse_iso
from clinicbot.state.cache import SCHEMA_VERSION, CacheStore
from clinicbot.state.fileio import atomic_write, write_atomic
from clinicbot.state.ledger import Ledger
from clinicbot.state.runs import alive

BERLIN = ZoneInfo("Europe/Berlin")


# -- iso(): the one time format ---------------------------------------------------------------


def test_iso_is_utc_with_z_whatever_the_zone():
    noon_berlin = datetime(2026, 11, 24, 12, 5, tzinfo=BERLIN)
    assert iso(noon_berlin) == "2026-11-24T11:05:00Z"
    assert iso(datetime(2026, 7, 1, 12, 0, tzinfo=BERLIN)) == "2026-07-01T10:00:00Z"  # summer time
    assert iso(datetime(2026, 11, 24, 11, 5, 0, 250000, tzinfo=timezone.utc)) == "2026-11-24T11:05:00.250000Z"


def test_iso_takes_a_naive_time_as_utc_never_the_hosts_zone(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert iso(datetime(2026, 11, 24, 11, 5)) == "2026-11-24T11:05:00Z"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_iso_none_and_round_trip():
    assert iso(None) is None
    at = datetime(2026, 11, 24, 12, 5, 7, tzinfo=BERLIN)
    back = parse_iso(iso(at))
    assert back == at and back.tzinfo is not None and back.utcoffset() == timedelta(0)
    assert parse_iso("2026-11-24T11:05:00+00:00") == parse_iso("2026-11-24T11:05:00Z")
    assert parse_iso("") is None and parse_iso(None) is None


def test_the_ledger_stores_z_times_and_orders_intents_by_time_not_text(tmp_path):
    # "…:00Z" sorts after "…:00.5Z" as text ('Z' > '.'): ordering must parse the times.
    t0 = datetime(2026, 11, 24, 9, 0, 0, tzinfo=timezone.utc)
    with Ledger.open(tmp_path) as book:
        later = book.record_intent(key="b", handler="comment", task_phid=None, task="T2", text_hash="",
                                   at=t0 + timedelta(seconds=1))
        earlier = book.record_intent(key="a", handler="comment", task_phid=None, task="T1", text_hash="",
                                     at=t0 + timedelta(milliseconds=500))
        rows = book.intents()
    assert [r["id"] for r in rows] == [later, earlier]
    assert rows[0]["at"] == "2026-11-24T09:00:01Z"


def test_json_default_writes_times_as_utc_z_and_refuses_unknown_values():
    data = {"at": datetime(2026, 11, 24, 12, 5, tzinfo=BERLIN), "ids": (1, 2), "tags": {"b", "a"}}
    assert json.loads(json.dumps(data, default=json_default)) == {"at": "2026-11-24T11:05:00Z", "ids": [1, 2],
                                                                  "tags": ["a", "b"]}
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        json.dumps({"x": object()}, default=json_default)


# -- atomic_write: the one atomic writer ------------------------------------------------------


def test_a_state_file_is_private_and_a_failure_is_one_state_error(tmp_path):
    target = tmp_path / "state.json"
    atomic_write(target, b"one")
    atomic_write(target, "two")
    assert target.read_text() == "two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left
    with pytest.raises(StateError) as caught:
        atomic_write(tmp_path / "missing-dir" / "state.json", b"x", action="cannot write the thing",
                     intact="the old one is fine")
    message = str(caught.value)
    assert "state.json" in message and "cannot write the thing" in message
    assert not list((tmp_path).glob("**/*.tmp"))


def test_an_output_file_gets_the_usual_permissions_and_its_directory(tmp_path):
    old = os.umask(0o022)
    try:
        target = tmp_path / "out" / "page.html"
        write_atomic(target, "<html></html>")
    finally:
        os.umask(old)
    assert target.read_text() == "<html></html>"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    with pytest.raises(OSError) as caught:  # an output file's OSError is the caller's to report
        write_atomic(target / "below-a-file", "x")
    assert not isinstance(caught.value, StateError)


# -- the run history (state/runs.py) in the cache DB (state/cache.py) ------------------------


def test_the_run_history_survives_a_cache_rebuild(tmp_path):
    path = tmp_path / "cache.sqlite"
    with CacheStore(path) as store:
        with store.transaction():
            run = store.run_started("digest", 1000.0)
            store.run_finished(run, finished=1004.0, outcome="ok", calls=3, attempts=1)
            store.put("high_water", "5")
        store.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")  # an older/newer cache: rebuilt
    with CacheStore(path) as store:
        assert store.rebuilt_reason is not None
        assert store.high_water() is None  # the cache tables were dropped...
        assert store.last_runs()["digest"]["outcome"] == "ok"  # ...the run history was kept
        assert store.last_finished() == {"digest": 1000.0}


def test_a_run_left_running_by_a_dead_process_is_marked_interrupted(tmp_path):
    with CacheStore(tmp_path / "cache.sqlite") as store:
        with store.transaction():
            mine = store.run_started("sync", 1.0)
            store.conn.execute("UPDATE runs SET pid = ? WHERE id = ?", (2 ** 22 + 12345, mine))  # no such process
            store.run_started("digest", 2.0)  # this process: still running
        assert not alive(2 ** 22 + 12345) and alive(os.getpid()) and not alive(None)
        assert store.close_stale_runs() == 1
        runs = store.last_runs()
    assert runs["sync"]["outcome"] == "interrupted" and runs["digest"]["outcome"] == "running"
