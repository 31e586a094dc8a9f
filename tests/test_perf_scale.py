"""The jobs at 100,000 tasks (issue 12, round 2): histories are read only where a check or a metric
can use them, parsed events are lean, and the figures and findings stay what they were. Counted
(timelines parsed, rows read), never timed."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from clinicbot.checks.base import CheckContext
from clinicbot.checks.untag import UntagCandidateCheck
from clinicbot.errors import StateError
from clinicbot.jobs.context import App, load_snapshot
from clinicbot.metrics import closed_at, compute_metrics, counted_since, weekly_series
from clinicbot.state.cache import CacheStore
from clinicbot.state.cache_rows import LazyTimelines, dump_timeline, load_timeline
from clinicbot.timeline import Event, Timeline

# The 400-task sandbox synced once, as test_perf_lean_load sets it up: ``env`` is (sandbox, app, full snapshot).
from test_perf_lean_load import NOW, env  # noqa: E402,F401  (the module's fixture)


def lazy_snapshot(app: App, **load):
    """A fresh snapshot whose timelines are a LazyTimelines nobody has read yet."""
    snapshot = load_snapshot(app, **load)
    assert isinstance(snapshot.timelines, LazyTimelines) and snapshot.timelines.parsed() == 0
    return snapshot


def eager(snapshot):
    """The same snapshot with every timeline parsed up front (a plain dict)."""
    return replace(snapshot, timelines={p: snapshot.timelines[p] for p in snapshot.timelines})


def parsed_phids(timelines: LazyTimelines) -> set[str]:
    return timelines.parsed_phids()


def test_metrics_read_no_history_of_a_task_unchanged_since_the_window(env):
    window, weeks = 14, 6
    since = NOW - timedelta(days=window)
    snapshot = lazy_snapshot(env[1], closed_since=counted_since(NOW, window_days=window, weeks=weeks, tz=timezone.utc))
    old = {p for p, t in snapshot.tasks.items() if t.is_closed and t.modified < since and p in snapshot.timelines}
    assert old, "the scenario has tasks closed and last modified before the window"
    got = compute_metrics(snapshot, window_days=window, weeks=weeks).to_dict()
    read = parsed_phids(snapshot.timelines)
    assert read and not read & old
    # ... and the figures are those of the snapshot with every history read
    assert got == compute_metrics(eager(snapshot), window_days=window, weeks=weeks).to_dict()


def test_weekly_series_counts_as_one_count_per_week_would(env):
    snapshot = load_snapshot(env[1])
    tasks = list(snapshot.tasks.values())
    assert any(t.is_closed for t in tasks) and any(t.is_open for t in tasks)
    tz = timezone(timedelta(hours=-5))
    rows = weekly_series(snapshot, tasks, NOW, 8, tz)
    assert len(rows) == 8 and sum(r["created"] for r in rows) and sum(r["resolved"] for r in rows)
    for row in rows:
        start = datetime.fromisoformat(row["week"]).replace(tzinfo=tz)
        end = datetime.fromisoformat(row["end"])
        assert row["created"] == sum(1 for t in tasks if start <= t.created < end)
        assert row["resolved"] == sum(1 for t in tasks if (c := closed_at(t)) is not None and start <= c < end)
        assert row["backlog_at_end"] == sum(1 for t in tasks if t.created < end
                                            and ((c := closed_at(t)) is None or c >= end))


def untag(snapshot, days: int):
    check = UntagCandidateCheck()
    ctx = CheckContext(snapshot=snapshot, now=NOW, settings={**check.defaults, "days": days})
    return sorted((f.task_id, f.summary) for f in check.run(ctx))


def test_untag_candidate_reads_no_history_of_a_task_created_after_the_cutoff(env):
    days = 20
    cutoff = NOW - timedelta(days=days)
    snapshot = lazy_snapshot(env[1], open_only=True)
    young = {p for p, t in snapshot.tasks.items() if t.created >= cutoff and p in snapshot.timelines}
    old = {p for p, t in snapshot.tasks.items() if t.created < cutoff and p in snapshot.timelines}
    assert young and old
    found = untag(snapshot, days)
    read = parsed_phids(snapshot.timelines)
    assert read and not read & young
    assert found and found == untag(eager(snapshot), days)


def test_a_stored_timeline_loads_in_its_order_with_lean_events():
    at = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
    events = (Event("commented", at + timedelta(hours=1), "PHID-USER-b", 12, text="hi"),
              Event("created", at, "PHID-USER-a", 10),
              Event("projects", at, "PHID-USER-a", 11, old=(), new=("PHID-PROJ-x",)),
              Event("column", at + timedelta(hours=2), "PHID-USER-b", 13, board_phid="PHID-PROJ-x",
                    column_phid="PHID-PCOL-2", from_column_phids=("PHID-PCOL-1",)))
    timeline = Timeline("PHID-TASK-1", 1, events, structured_columns=False, unreadable=2)
    loaded = load_timeline("PHID-TASK-1", 1, dump_timeline(timeline))
    assert loaded == timeline and loaded.events == timeline.events
    assert [e.xaction_id for e in loaded.events] == [10, 11, 12, 13]
    assert loaded.structured_columns is False and loaded.unreadable == 2
    assert not hasattr(loaded.events[0], "__dict__")  # slots: no per-event dict
    with pytest.raises(AttributeError):
        loaded.events[0].kind = "other"  # type: ignore[misc]
    # from_sorted trusts the order it is given; the constructor sorts
    assert Timeline.from_sorted("PHID-TASK-1", 1, events).events == events
    assert Timeline("PHID-TASK-1", 1, events).events != events


def test_cache_rows_come_in_blocks_and_a_failing_row_is_one_state_error(tmp_path):
    path = tmp_path / "cache.sqlite"
    with CacheStore(path) as store:
        store.conn.execute("CREATE TABLE numbers (n INTEGER)")
        store.conn.executemany("INSERT INTO numbers VALUES (?)", [(i,) for i in range(3000)])
        assert [n for (n,) in store.conn.execute("SELECT n FROM numbers ORDER BY n")] == list(range(3000))
        store.conn.execute("INSERT INTO numbers VALUES (-9223372036854775808)")
        rows = store.conn.execute("SELECT abs(n) FROM numbers ORDER BY rowid")
        with pytest.raises(StateError) as err:
            list(rows)
        assert str(path) in str(err.value) and "integer overflow" in str(err.value)
        assert not isinstance(err.value.__cause__, sqlite3.Error)



def test_loaded_rows_hold_one_copy_of_each_repeated_value(env):
    from clinicbot.sync import load_cached

    cached = load_cached(env[1].config(), now=NOW)
    by_author: dict[str, list] = {}
    for task in cached.data.tasks.values():
        by_author.setdefault(task.author_phid, []).append(task)
    a, b = next(ts for ts in by_author.values() if len(ts) > 1)[:2]
    assert a.author_phid is b.author_phid and a.status_name is not None
    shared_projects = [(s, t) for s in cached.data.tasks.values() for t in [a] if s is not t
                       and set(s.project_phids) & set(t.project_phids)]
    s, t = shared_projects[0]
    common = (set(s.project_phids) & set(t.project_phids)).pop()
    assert next(p for p in s.project_phids if p == common) is next(p for p in t.project_phids if p == common)
    events = [e for p in list(cached.timelines)[:40] for e in cached.timelines[p].events]
    for first, second in zip(events, events[1:]):
        if first.author_phid == second.author_phid and first.author_phid:
            assert first.author_phid is second.author_phid and first.kind is not None
    kinds = {}
    for e in events:
        assert kinds.setdefault(e.kind, e.kind) is e.kind
