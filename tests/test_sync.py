"""Incremental sync against the sandbox: call budgets, catching up after failures, reconcile, rebuilds."""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from clinicbot.phab.boards import load_boards
from clinicbot.phab.conduit import ConduitClient
from clinicbot.config import Config, load_config
from clinicbot.jobs.demo import write_sandbox_config
from clinicbot.errors import ConduitError, StateError
from clinicbot.phab.history import fetch_timelines
from clinicbot.model import from_epoch
from clinicbot.sandbox import Sandbox, generate_scenario
from clinicbot.state.cache import CacheStore, cache_path
from clinicbot.sync import SyncSettings, load_cached, sync

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)
SIZE = 250


@pytest.fixture(scope="module")
def scenario():
    return generate_scenario(NOW, size=SIZE)


class Clock:
    """The sandbox's clock and the sync's `now` in one: edits are stamped with it."""

    def __init__(self, start: datetime):
        self.t = start.timestamp()

    def __call__(self) -> float:
        return self.t

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, tz=timezone.utc)

    def tick(self, seconds: float = 60) -> datetime:
        self.t += seconds
        return self.now


@dataclass
class Env:
    sb: Sandbox
    clock: Clock
    config: Config
    client: ConduitClient

    def sync(self, **kw):
        return sync(self.client, self.config, now=self.clock.now, **kw)

    def truth(self):
        """What a fresh, cache-less read of the server gives."""
        client = ConduitClient(self.sb.url, self.sb.token)
        data = load_boards(client, self.config)
        return data, fetch_timelines(client, [(t.id, t.phid) for t in data.tasks.values()])

    def assert_cache_matches_server(self):
        data, timelines = self.truth()
        cached = load_cached(self.config)
        assert cached.data.tasks == data.tasks
        assert cached.timelines == timelines
        assert [b.phid for b in cached.data.boards] == [b.phid for b in data.boards]
        assert cached.data.statuses == data.statuses and cached.data.priorities == data.priorities

    def comment(self, task_ids, text="ping"):
        for i in task_ids:
            self.sb.store.edit(i, "alice", [("comment", f"{text} {i}")], at=self.clock.tick(1).timestamp())


def make_env(scenario, tmp_path):
    clock = Clock(NOW + timedelta(hours=1))
    sb = Sandbox(scenario=scenario, clock=clock)
    sb.start()
    config = load_config(write_sandbox_config(tmp_path / "clinicbot.yaml", sb.url, sb.token))
    client = ConduitClient(sb.url, sb.token, sleep=lambda s: None, retries=2)
    return Env(sb, clock, config, client)


@pytest.fixture
def env(scenario, tmp_path):
    e = make_env(scenario, tmp_path)
    yield e
    e.client.close()
    e.sb.stop()


@pytest.fixture
def small_env(tmp_path):
    e = make_env(generate_scenario(NOW, size=60), tmp_path)
    yield e
    e.client.close()
    e.sb.stop()


def board_task_ids(env: Env) -> list[int]:
    return sorted(t.id for t in load_cached(env.config).data.tasks.values())


def test_cold_sync_reads_pages_and_history_batches_of_100(env):
    result = env.sync()
    assert result.mode == "full" and result.reason == "no cache yet"
    n = result.tasks_total
    assert 200 < n <= SIZE
    assert result.calls_by_method["maniphest.search"] == math.ceil(n / 100)
    assert result.calls_by_method["maniphest.gettasktransactions"] == math.ceil(n / 100)
    assert "transaction.search" not in result.calls_by_method
    env.assert_cache_matches_server()


def test_warm_sync_fetches_only_what_changed(env):
    env.sync()
    ids = board_task_ids(env)[:5]
    env.comment(ids)
    env.clock.tick(600)
    result = env.sync()
    assert result.mode == "incremental"
    assert result.calls_by_method == {"maniphest.search": 1, "maniphest.gettasktransactions": 1}
    # The changed five, plus any task stamped within the overlap of the newest one seen before:
    # those come back in the same page, but their histories are not read again.
    assert result.tasks_fetched >= 5 and result.histories_fetched == 5
    env.assert_cache_matches_server()
    cached = load_cached(env.config)
    task = next(t for t in cached.data.tasks.values() if t.id == ids[0])
    assert cached.timelines[task.phid].events[-1].text == f"ping {ids[0]}"

    env.clock.tick(600)
    quiet = env.sync()  # nothing changed: one search, no history
    assert quiet.calls_by_method == {"maniphest.search": 1} and quiet.histories_fetched == 0


def newest_stamp(env: Env) -> int:
    """The newest dateModified on the watched boards, as the server stamped it."""
    return max(int(t.modified.timestamp()) for t in env.truth()[0].tasks.values())


def test_the_mark_is_the_newest_server_stamp_minus_the_overlap(env):
    env.sync(settings=SyncSettings(overlap=300))
    env.clock.tick(3600)
    second = env.sync(settings=SyncSettings(overlap=300))
    assert second.modified_start == from_epoch(newest_stamp(env) - 300)


@pytest.mark.parametrize("skew", [timedelta(days=400), timedelta(hours=-3)], ids=["server-behind", "server-ahead"])
def test_edits_stamped_by_a_server_whose_clock_differs_from_ours_are_fetched(small_env, skew):
    """Regression: the mark came from this host's clock, so a server whose clock is behind ours
    (or the sandbox at its fixed time) had every later edit skipped by `modifiedStart`."""
    env = small_env

    def our_sync():  # this host's clock is `skew` away from the server's
        return sync(env.client, env.config, now=env.clock.now + skew)

    our_sync()
    ids = board_task_ids(env)[:3]
    env.comment(ids, "after the first sync")
    env.clock.tick(60)
    result = our_sync()
    assert result.mode == "incremental" and result.histories_fetched == 3
    env.assert_cache_matches_server()
    texts = {e.text for tl in load_cached(env.config).timelines.values() for e in tl.events if e.kind == "commented"}
    assert {f"after the first sync {i}" for i in ids} <= texts


def test_a_sync_failing_on_the_second_page_keeps_the_mark_and_the_next_run_loses_nothing(env):
    env.sync()
    mark = newest_stamp(env)
    ids = board_task_ids(env)
    changed = ids[:150]  # two pages of changes
    env.comment(changed, "before the failure")
    env.clock.tick(60)

    real, pages = env.client.call, []

    def call(method, **params):
        # The next page is read while the first is stored (read ahead): the fault is armed when
        # the second page is asked for, and every retry of it fails too.
        if method == "maniphest.search":
            pages.append(params.get("after"))
            if len(pages) == 2:
                env.sb.faults.add("maniphest.search", "http500", times=10)
        return real(method, **params)

    env.client.call = call  # type: ignore[method-assign]
    with pytest.raises(ConduitError):
        env.sync()
    env.client.call = real  # type: ignore[method-assign]
    env.sb.faults.clear()
    assert pages[1] is not None  # it failed on a second page, not on the first
    with CacheStore(cache_path(env.config)) as store:
        assert store.high_water() == mark
    env.comment(ids[200:201], "after the failure")
    env.clock.tick(60)
    result = env.sync()
    assert result.mode == "incremental"
    assert result.modified_start == from_epoch(mark - SyncSettings().overlap)
    env.assert_cache_matches_server()
    cached = load_cached(env.config)
    texts = {e.text for tl in cached.timelines.values() for e in tl.events if e.kind == "commented"}
    assert {f"before the failure {i}" for i in changed} | {f"after the failure {ids[200]}"} <= texts


def test_a_sync_failing_while_reading_histories_refetches_them_next_time(env):
    env.sync()
    ids = board_task_ids(env)[:3]
    env.comment(ids, "lost?")
    env.clock.tick(60)
    env.sb.faults.add("maniphest.gettasktransactions", "http500", times=10)
    with pytest.raises(ConduitError):
        env.sync()
    env.sb.faults.clear()
    env.clock.tick(60)
    result = env.sync()
    assert result.histories_fetched == 3
    env.assert_cache_matches_server()


def test_reconcile_drops_tasks_that_left_the_boards_and_sightings_follow_moves(env):
    env.sync()
    cached = load_cached(env.config)
    board = cached.data.boards[0]
    task = next(t for t in cached.data.tasks.values() if board.phid in t.columns and len(t.project_phids) == 1)
    target = next(c for c in board.columns if c.phid != task.columns[board.phid] and not c.proxy_phid)
    moved_at = env.clock.tick(60)
    env.sb.store.edit(task.id, "bob", [("column", [target.phid])], at=moved_at.timestamp())
    env.clock.tick(600)
    env.sync()
    sightings = load_cached(env.config).sightings
    assert sightings[(task.phid, board.phid, target.phid)] == moved_at

    env.sb.store.edit(task.id, "bob", [("projects.remove", [board.phid])], at=env.clock.tick(60).timestamp())
    env.clock.tick(600)
    env.sync()  # incremental: a task that left the boards no longer matches columnPHIDs
    assert task.phid in load_cached(env.config).data.tasks
    result = env.sync(settings=SyncSettings(reconcile_hours=0))
    assert result.mode == "reconcile" and result.removed == 1
    assert result.histories_fetched == 0  # nothing else changed: no history is read again
    assert task.phid not in load_cached(env.config).data.tasks
    assert not [k for k in load_cached(env.config).sightings if k[0] == task.phid]
    env.assert_cache_matches_server()


def test_server_without_the_batch_method_reads_histories_concurrently(small_env):
    env = small_env
    env.sb.store.features["gettasktransactions"] = False
    result = env.sync(settings=SyncSettings(concurrency=4))
    assert "maniphest.gettasktransactions" not in result.calls_by_method
    assert result.calls_by_method["transaction.search"] >= result.tasks_total
    env.assert_cache_matches_server()


def test_older_or_corrupt_cache_is_rebuilt_with_a_full_sync(env):
    env.sync()
    path = cache_path(env.config)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 0")
    env.clock.tick(60)
    result = env.sync()
    assert result.mode == "full" and "schema" in result.reason
    env.clock.tick(60)
    assert env.sync().mode == "incremental"
    assert env.sync(full=True).mode == "full"

    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    path.write_bytes(b"this is not a database" * 100)
    result = env.sync()
    assert result.mode == "full"
    assert list(path.parent.glob("cache.sqlite.corrupt-*"))
    env.assert_cache_matches_server()


def test_changed_board_config_re_resolves_the_boards(env, tmp_path):
    env.sync()
    raw = dict(env.config.raw)
    raw["boards"] = raw["boards"][:1]
    from clinicbot.config import parse_config

    narrower = parse_config(raw, env.config.path)
    result = sync(env.client, narrower, now=env.clock.tick(60))
    assert result.mode == "reconcile" and "boards" in result.reason
    assert result.histories_fetched == 0
    assert len(load_cached(narrower).data.boards) == 1


def test_load_cached_filters_like_load_boards(env):
    env.sync()
    client = ConduitClient(env.sb.url, env.sb.token)
    fresh = load_boards(client, env.config, roles=["inbox", "review_needed"], open_only=True)
    cached = load_cached(env.config, roles=["inbox", "review_needed"], open_only=True)
    assert cached.data.tasks == fresh.tasks


def test_load_cached_without_a_sync_is_a_state_error(env):
    with pytest.raises(StateError, match="clinicbot sync"):
        load_cached(env.config)


def test_a_network_filesystem_gets_the_rollback_journal_instead_of_wal(tmp_path, monkeypatch):
    import clinicbot.state.cache

    with CacheStore(tmp_path / "local.sqlite") as store:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    monkeypatch.setattr(clinicbot.state.cache, "filesystem_type", lambda path: "nfs4")
    with CacheStore(tmp_path / "nfs.sqlite") as store:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_sync_command_text_json_and_full(env):
    from click.testing import CliRunner

    from clinicbot.cli import cli

    path = str(env.config.path)
    first = CliRunner().invoke(cli, ["--config", path, "sync"])
    assert first.exit_code == 0, first.output
    assert first.output.startswith("sync full (no cache yet)")
    second = CliRunner().invoke(cli, ["--config", path, "sync", "--format", "json"])
    data = __import__("json").loads(second.output)
    assert data["mode"] == "incremental" and data["calls"] == 1 and data["tasks"] > 200
    third = CliRunner().invoke(cli, ["--config", path, "sync", "--full", "--format", "json"])
    assert __import__("json").loads(third.output)["mode"] == "full"
    with CacheStore(cache_path(env.config)) as store:
        assert [r["outcome"] for r in store.last_runs().values()] == ["ok"]  # recorded as the sync job


def test_a_cold_sync_fetches_each_pages_histories_while_the_next_page_is_read(env):
    """Issue 12, item 3: the history batches overlap the task pages (one pool on the one client);
    with concurrency 1 they come after the pages, as before. Same calls, same cache."""
    order: list[str] = []
    threads: list[str] = []
    real = env.client.call
    history_sent = threading.Event()
    overlap = True  # the last page waits until a history batch was sent: it would hang if they did not overlap

    def call(method, **params):
        if method == "maniphest.search":
            threads.append(threading.current_thread().name)
            if overlap and order.count("maniphest.search") == math.ceil(SIZE / 100) - 1:
                assert history_sent.wait(10), "no history batch was sent before the last page"
        if method == "maniphest.gettasktransactions":
            history_sent.set()
        order.append(method)  # in the order the requests are sent
        return real(method, **params)

    env.client.call = call  # type: ignore[method-assign]
    result = env.sync()
    pages = [i for i, m in enumerate(order) if m == "maniphest.search"]
    batches = [i for i, m in enumerate(order) if m == "maniphest.gettasktransactions"]
    assert len(pages) >= 3 and len(batches) == math.ceil(result.tasks_total / 100)
    assert min(batches) < max(pages)  # a page's histories were read before the last page
    assert set(threads) == {"sync-pages"}  # each next page is read ahead while one is stored
    assert result.histories_fetched == result.tasks_total
    env.assert_cache_matches_server()

    order.clear()
    overlap = False
    result = env.sync(full=True, settings=SyncSettings(concurrency=1))
    pages = [i for i, m in enumerate(order) if m == "maniphest.search"]
    batches = [i for i, m in enumerate(order) if m == "maniphest.gettasktransactions"]
    assert max(pages) < min(batches) and result.histories_fetched == result.tasks_total
    assert set(threads[-len(pages):]) == {threading.current_thread().name}  # sequential: no read ahead
    env.assert_cache_matches_server()


def test_the_writer_checkpoints_the_wal_every_64_mb_not_every_4(tmp_path):
    """A cold sync writes hundreds of MB; with synchronous=NORMAL the disk is synced only at WAL
    checkpoints, so fewer, larger checkpoints mean far fewer fsyncs (same safety: every commit is in the WAL)."""
    with CacheStore(tmp_path / "cache.sqlite") as store:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 16384


def test_a_sync_that_fetched_no_history_keeps_the_row_check_without_a_scan(env, monkeypatch):
    """Issue 12: a warm sync is O(changed). Without a history fetched no task row was added or got a
    new dateModified, so the recorded counts and sums stand; with one, they are computed again."""
    env.sync()
    scans = []
    real = CacheStore.row_check
    monkeypatch.setattr(CacheStore, "row_check", lambda self: scans.append(1) or real(self))
    env.clock.tick(60)
    result = env.sync()
    assert result.mode == "incremental" and result.histories_fetched == 0 and not scans
    env.comment(board_task_ids(env)[:2], "changed")
    env.clock.tick(60)
    result = env.sync()
    assert result.histories_fetched == 2 and scans
    with CacheStore(cache_path(env.config)) as store:
        assert store.get("rows") == json.dumps(real(store)) and result.tasks_total == store.task_count()
    env.assert_cache_matches_server()


def test_tasks_forgotten_between_syncs_keep_the_row_check_true(env):
    """check --apply forgets the tasks it untagged (jobs/check.forget_untagged); the next sync, which
    fetches no history, keeps the recorded row check: it must still describe the rows."""
    env.sync()
    gone = sorted(load_cached(env.config).data.tasks)[:2]
    with CacheStore(cache_path(env.config)) as store:
        assert store.forget_tasks(gone) == 2
    env.clock.tick(60)
    result = env.sync()
    assert result.mode == "incremental" and result.histories_fetched == 0
    cached = load_cached(env.config)  # a stale row check would be "the cache is damaged"
    assert not set(gone) & set(cached.data.tasks) and result.tasks_total == len(cached.data.tasks)
