"""The metrics' load at 100,000 tasks (issue 12, round 3): the cache's histories are not held as
text by the loader but read when a timeline is, the metrics job reads exactly the histories its
figures need in one pass over the cache (and leaves the cache closed), sightings are kept only
for the loaded tasks, and the figures stay those of the snapshot with every history read.
Counted (rows, reads, connections), never timed."""

from __future__ import annotations

import gc
import json
import sqlite3
from datetime import timedelta, timezone

import pytest

from clinicbot.jobs.context import load_snapshot
from clinicbot.metrics import compute_metrics, counted_since, histories_read
from clinicbot.state import cache as cache_module
from clinicbot.state.cache import CacheStore, cache_path
from clinicbot.state.cache_check import file_state
from clinicbot.state.cache_rows import LazyTimelines, dump_timeline, gc_paused, load_timeline, parse_row
from clinicbot.sync import load_cached

from test_perf_lean_load import NOW, env  # noqa: F401  (the 400-task sandbox, synced once)
from test_perf_scale import eager


def _counting_opens(monkeypatch):
    opens = []
    real = cache_module.CacheStore.__init__

    def counted(self, *a, **kw):
        opens.append(kw.get("readonly", False))
        real(self, *a, **kw)

    monkeypatch.setattr(cache_module.CacheStore, "__init__", counted)
    return opens


def test_the_loader_holds_no_history_text_and_reads_one_when_asked(env):
    _, app, _ = env
    timelines = load_cached(app.config(), open_only=True, now=NOW).timelines
    assert isinstance(timelines, LazyTimelines) and len(timelines) > 10 and timelines.parsed() == 0
    assert not any(isinstance(v, (str, tuple)) for v in timelines._items.values())  # task ids, no text
    phid = next(iter(timelines))
    first = timelines[phid]
    assert first.task_phid == phid and timelines.parsed_phids() == {phid}
    with CacheStore(cache_path(app.config()), readonly=True) as store:
        text = dict(store.histories([phid]))[phid]
    assert first == load_timeline(phid, first.task_id, text)


def test_timelines_read_one_by_one_open_the_cache_once_per_batch(env, monkeypatch):
    _, app, _ = env
    timelines = load_cached(app.config(), now=NOW).timelines
    monkeypatch.setattr(LazyTimelines, "BATCH", 16)
    opens = _counting_opens(monkeypatch)
    phids = list(timelines)
    assert len(phids) > 40
    for phid in phids[:40]:
        assert timelines[phid].task_phid == phid
    assert opens == [True] * 3 and timelines.parsed() == 40  # 16 + 16 + 16 texts read, 40 parsed
    held = [p for p, v in timelines._items.items() if isinstance(v, tuple)]
    assert held == phids[40:48]  # read with the last batch, parsed when asked for


def test_metrics_read_exactly_the_histories_they_need_in_one_pass(env, monkeypatch):
    _, app, full = env
    window, weeks = 14, 6
    snapshot = load_snapshot(app, closed_since=counted_since(NOW, window_days=window, weeks=weeks, tz=timezone.utc))
    timelines = snapshot.timelines
    needed = histories_read(snapshot, window_days=window)
    since = NOW - timedelta(days=window)
    left = {p for p, t in snapshot.tasks.items() if p in timelines and t.is_closed and t.modified < since}
    assert needed and left and not left & set(needed)
    opens = _counting_opens(monkeypatch)
    assert timelines.prefetch(needed) == len([p for p in needed if p in timelines])
    assert opens == [True]  # one read-only open for all of them
    assert timelines.prefetch(needed) == 0 and opens == [True]  # nothing read twice
    got = compute_metrics(snapshot, window_days=window, weeks=weeks).to_dict()
    assert opens == [True]  # compute_metrics read nothing more from the cache
    assert timelines.parsed_phids() == {p for p in needed if p in timelines}
    assert got == compute_metrics(eager(snapshot), window_days=window, weeks=weeks).to_dict()


def test_reading_histories_leaves_no_connection_open(env):
    """A connection left open would keep the cache's -wal after the job's last write: the next run
    would then check every page of the cache (state/cache_check.py)."""
    _, app, _ = env
    path = cache_path(app.config())
    timelines = load_cached(app.config(), now=NOW).timelines
    timelines.prefetch(list(timelines)[:50])
    with CacheStore(path):  # a writer (the run's end) opens and closes the cache
        pass
    assert file_state(path) is not None  # at rest: no -wal with frames left behind
    assert timelines.parsed() == 50


def test_a_history_gone_from_the_cache_reads_as_missing(env, tmp_path):
    _, app, _ = env
    copy = tmp_path / "cache.sqlite"
    with sqlite3.connect(cache_path(app.config())) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    cached = load_cached(app.config(), now=NOW)
    phid = next(iter(cached.timelines))
    timelines = LazyTimelines({phid: 1}, reader=lambda phids: CacheStore(copy, readonly=True).histories(phids))
    with sqlite3.connect(copy) as conn:  # a concurrent rebuild removed it
        conn.execute("DELETE FROM timelines WHERE phid = ?", (phid,))
    assert phid in timelines and timelines.get(phid) is None
    with pytest.raises(KeyError):
        timelines[phid]


def test_sightings_are_kept_for_the_loaded_tasks_only(env):
    _, app, _ = env
    cached = load_cached(app.config(), open_only=True, now=NOW)
    with CacheStore(cache_path(app.config()), readonly=True) as store:
        every = store.sightings()
    assert any(k[0] not in cached.data.tasks for k in every)  # closed tasks were seen too
    assert cached.sightings == {k: v for k, v in every.items() if k[0] in cached.data.tasks}


def test_sightings_are_read_only_when_asked_for_and_metrics_never_ask(env, monkeypatch):
    _, app, _ = env
    window, weeks = 14, 6
    opens = _counting_opens(monkeypatch)
    snapshot = load_snapshot(app, closed_since=counted_since(NOW, window_days=window, weeks=weeks, tz=timezone.utc))
    sightings = snapshot.sightings
    assert isinstance(sightings, cache_module.LazySightings) and not sightings.loaded()
    compute_metrics(snapshot, window_days=window, weeks=weeks)
    assert not sightings.loaded()
    before = len(opens)
    key = next(iter(sightings))  # the first read: one read-only open
    assert sightings.loaded() and opens[before:] == [True]
    with CacheStore(cache_path(app.config()), readonly=True) as store:
        assert sightings[key] == store.sightings()[key] and dict(sightings) == store.sightings(snapshot.tasks)


def test_parse_row_is_json_loads_and_fails_as_it_does(env):
    _, app, full = env
    texts = [dump_timeline(t) for t in list(full.timelines.values())[:40]]
    assert [parse_row(t) for t in texts] == [json.loads(t) for t in texts]
    for bad in ("", "[1,2", "[1] x", " [1]"):
        try:
            expected = json.loads(bad)
        except ValueError as exc:
            with pytest.raises(ValueError, match=str(exc).split(":")[0]):
                parse_row(bad)
        else:
            assert parse_row(bad) == expected


def test_gc_is_paused_only_while_rows_are_parsed():
    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with gc_paused():
            assert not gc.isenabled()
            raise RuntimeError("a damaged row")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()


def test_rows_build_the_same_frozen_objects_as_the_constructors(env, monkeypatch):
    from dataclasses import FrozenInstanceError, astuple, fields

    from clinicbot.model import Task
    from clinicbot.state.cache_rows import row_builder
    from clinicbot.timeline import Event

    _, _, full = env
    events = [e for t in list(full.timelines.values())[:30] for e in t.events]
    tasks = list(full.tasks.values())[:30]
    assert len(events) > 60
    for cls, objs in ((Event, events), (Task, tasks)):
        build = row_builder(cls)
        inits = []
        real = cls.__init__
        monkeypatch.setattr(cls, "__init__", lambda self, *a, _real=real, **kw: inits.append(1) or _real(self, *a, **kw))
        made_all = [build([getattr(obj, f.name) for f in fields(cls)]) for obj in objs]
        assert not inits  # not through the frozen __init__ (one object.__setattr__ per field)
        monkeypatch.setattr(cls, "__init__", real)
        for obj, made in zip(objs, made_all):
            row = [getattr(obj, f.name) for f in fields(cls)]
            assert type(made) is cls and made == obj and astuple(made) == astuple(obj)
            if cls is Event:  # (a Task holds a dict: unhashable either way)
                assert hash(made) == hash(cls(*row))
            with pytest.raises(FrozenInstanceError):
                setattr(made, fields(cls)[0].name, None)
    with pytest.raises(TypeError):  # a row of the wrong length: the constructor's own error
        row_builder(Task)([1, "PHID-TASK-x"])


def test_the_metrics_job_runs_without_cyclic_gc_and_prefetches_once(env, monkeypatch):
    import clinicbot.metrics as metrics_module
    from clinicbot.jobs.reports import metrics_data, report_env

    _, app, _ = env
    seen = []
    real_compute, real_prefetch = metrics_module.compute_metrics, LazyTimelines.prefetch

    def compute(snapshot, **kw):
        seen.append(("compute", gc.isenabled(), snapshot.timelines.parsed()))
        return real_compute(snapshot, **kw)

    def prefetch(self, phids):
        phids = list(phids)
        seen.append(("prefetch", gc.isenabled(), len(phids)))
        return real_prefetch(self, phids)

    monkeypatch.setattr(metrics_module, "compute_metrics", compute)
    monkeypatch.setattr(LazyTimelines, "prefetch", prefetch)
    data = metrics_data(app, report_env(app), record=False)
    assert data["kind"] == "metrics" and gc.isenabled()
    (p, p_gc, wanted), (c, c_gc, parsed) = seen
    assert (p, c) == ("prefetch", "compute") and not p_gc and not c_gc
    assert 0 < parsed <= wanted  # every history the figures read was read before, in one go
