"""Incremental sync: phab → the state cache (:mod:`clinicbot.state.cache`) of the watched boards'
tasks and their histories.

The cache (one SQLite file in the state directory, ``cache.sqlite``; its store lives in
:mod:`clinicbot.state.cache`, the scheduler's run history beside it in :mod:`clinicbot.state.runs`) holds

* ``tasks``     — every task on the watched boards as the raw ``maniphest.search`` item (parsed
  again on load, so a fix in ``boards.parse_task`` applies to cached tasks too), with its
  ``dateModified``;
* ``timelines`` — each task's :class:`~clinicbot.phab.history.Timeline`, serialised, together with
  the ``dateModified`` of the task *when its history was fetched*;
* ``sightings`` — where clinicbot saw each task on each board, since when (for servers whose
  column moves come back as ``type: null``: see ``Timeline.column_entered_at``);
* ``meta``      — the high-water mark, the resolved board structure, fingerprints;
* ``runs``      — the scheduler's run history (``clinicbot status``); it survives a cache rebuild.

Three sync modes, picked by :func:`plan_sync`:

``incremental``  one ``maniphest.search`` over the boards' ``columnPHIDs`` with
                 ``modifiedStart`` = the high-water mark minus an overlap; histories
                 only for tasks whose ``dateModified`` differs from the one their cached
                 history was fetched for. No structure calls: the boards, statuses,
                 priorities and server capabilities come from the cache.
``reconcile``    every task page again (ceil(N/100) calls), histories still only where changed;
                 drops tasks that left the boards (an incremental search cannot see those:
                 a task untagged from the board no longer matches ``columnPHIDs``) and
                 re-resolves the boards. Runs every ``schedule.sync.reconcile_hours``, when
                 the configured boards change, and after a sync that never completed.
``full``         forget cached tasks and histories and fetch everything (``sync --full``, a
                 missing or older cache, a new history parser). Sightings are observations
                 that cannot be fetched again, so they are kept.

Why the high-water mark is the newest ``dateModified`` the server has shown us (minus an
overlap), and never our own clock: the server stamps every edit with *its* clock, and
``modifiedStart`` is compared with those stamps. A mark taken from this host's clock skips
every edit stamped by a server whose clock is behind ours (or a sandbox replaying a fixed
time). The overlap covers edits that commit late with an older stamp (a long write, several
web nodes). A failed sync does not move the mark, so the next run asks again for everything
since the last good one; the mark only ever grows.

Why a half-done sync is safe to keep: pages are committed as they arrive (a 100,000-task
cold sync that dies at 90 % keeps its work), but the mark moves only at the end, and a history
is re-fetched whenever the task's ``dateModified`` differs from the one recorded *with the
history* — not with the task row — so a task row written without its history is caught.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from operator import attrgetter
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol

from clinicbot.phab.boards import (
    TASK_ATTACHMENTS,
    BoardData,
    load_structure,
    parse_task,
    place_in_proxy_columns,
)
from clinicbot.phab.conduit import ConduitClient
from clinicbot.phab.readahead import read_ahead
from clinicbot.phab.snapshot import LookupFiller
from clinicbot.config import Config
from clinicbot.errors import StateError
from clinicbot.model import Closing, Column, Task
from clinicbot.state.cache import CacheStore, LazySightings, cache_path, history_reader, task_filter
from clinicbot.state.cache_rows import (LazyTimelines, Structure, dump_task, dump_timeline, gc_paused, task_fields,
                                       task_loader)
from clinicbot.state.lookups import LOOKUPS_KEY, Lookups

log = logging.getLogger(__name__)

LEGACY_METHOD = "maniphest.gettasktransactions"

DEFAULT_OVERLAP = 600  # seconds before the newest server dateModified seen; covers late-committing edits
DEFAULT_RECONCILE_HOURS = 24.0
DEFAULT_CONCURRENCY = 4
DEFAULT_HISTORY_CHUNK = 500  # tasks whose histories are fetched and written per round (bounds memory)


# --------------------------------------------------------------------------------------------
# Settings (the `schedule.sync` part of the config; validated in jobs/schedule.parse_schedule too)


@dataclass(frozen=True)
class SyncSettings:
    overlap: int = DEFAULT_OVERLAP
    reconcile_hours: float = DEFAULT_RECONCILE_HOURS
    concurrency: int = DEFAULT_CONCURRENCY
    history_chunk: int = DEFAULT_HISTORY_CHUNK

    @classmethod
    def from_config(cls, config: Config) -> "SyncSettings":
        raw = config.section("schedule").get("sync") or {}
        if not isinstance(raw, dict):
            raise config.error("schedule.sync", "must be a mapping (overlap_seconds, reconcile_hours, concurrency)")
        known = {"overlap_seconds": "overlap", "reconcile_hours": "reconcile_hours", "concurrency": "concurrency",
                 "history_chunk": "history_chunk"}
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in known:
                raise config.error(f"schedule.sync.{key}", f"unknown key; known keys: {', '.join(known)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise config.error(f"schedule.sync.{key}", f"must be a number, not {value!r}")
            if key in ("concurrency", "history_chunk") and (int(value) != value or value < 1):
                raise config.error(f"schedule.sync.{key}", "must be a whole number of at least 1")
            if value < 0:
                raise config.error(f"schedule.sync.{key}", "must be 0 or more")
            values[known[key]] = int(value) if key != "reconcile_hours" else float(value)
        return cls(**values)


# --------------------------------------------------------------------------------------------
# Cache identity: a change in the parsing (history.py, boards.py) or in the Event/Task fields invalidates the cache


def _history_fingerprint() -> str:
    from clinicbot import timeline
    from clinicbot.phab import boards, history

    # The cache holds parsed tasks and events: a change in their fields or parsers is a new cache.
    digest = hashlib.sha256(",".join(f.name for f in fields(timeline.Event)).encode())
    digest.update(",".join(task_fields()).encode())
    try:
        for module in (history, timeline, boards):
            digest.update(Path(module.__file__ or "").read_bytes())
    except OSError:  # a zipped install: fall back to the package version
        from clinicbot import __version__

        digest.update(__version__.encode())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Board structure: what an incremental sync needs without asking the server


def fetch_structure(client: ConduitClient, config: Config, members: dict[str, set[str]] | None = None) -> Structure:
    boards, statuses, priorities = load_structure(client, config, members)
    return Structure(boards=boards, statuses=statuses, priorities=priorities,
                     batch_history=client.has_method(LEGACY_METHOD))


def boards_fingerprint(config: Config) -> str:
    return hashlib.sha256(json.dumps(config.raw.get("boards"), sort_keys=True, default=str).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Progress (a rich bar on a terminal, nothing in logs: the CLI decides)


class SyncProgress(Protocol):
    def phase(self, name: str, total: int | None) -> None: ...

    def advance(self, n: int) -> None: ...


class _NoProgress:
    def phase(self, name: str, total: int | None) -> None:
        pass

    def advance(self, n: int) -> None:
        pass


# --------------------------------------------------------------------------------------------
# Sync


@dataclass
class SyncPlan:
    mode: str  # "full" | "reconcile" | "incremental"
    reason: str
    refresh_structure: bool


@dataclass
class SyncResult:
    mode: str
    reason: str
    started: datetime
    finished: datetime
    modified_start: datetime | None  # the modifiedStart asked for (incremental only)
    tasks_fetched: int = 0
    histories_fetched: int = 0
    removed: int = 0
    tasks_total: int = 0
    calls: int = 0  # Conduit answers received (client.stats.calls)
    attempts: int = 0  # HTTP requests sent, retries included
    calls_by_method: dict[str, int] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return (self.finished - self.started).total_seconds()

    def summary(self) -> str:
        since = f" since {self.modified_start:%Y-%m-%d %H:%M:%SZ}" if self.modified_start else ""
        return (f"sync {self.mode} ({self.reason}){since}: {self.tasks_fetched} task(s) fetched, "
                f"{self.histories_fetched} histories, {self.removed} removed, {self.tasks_total} cached; "
                f"{self.calls} Conduit call(s)")


def plan_sync(store: CacheStore, config: Config, settings: SyncSettings, now: datetime, *, full: bool) -> SyncPlan:
    if full:
        return SyncPlan("full", "requested", True)
    if store.rebuilt_reason:
        return SyncPlan("full", store.rebuilt_reason, True)
    fingerprint = store.get("history_fingerprint")
    if fingerprint is None and store.task_count() == 0:
        return SyncPlan("full", "no cache yet", True)  # e.g. only the run history was written
    if fingerprint != _history_fingerprint():
        return SyncPlan("full", "history format changed", True)
    structure_ok = store.get("structure") is not None
    if store.get("boards_fingerprint") != boards_fingerprint(config):
        return SyncPlan("reconcile", "configured boards changed", True)
    if store.high_water() is None or not structure_ok:
        return SyncPlan("reconcile", "no completed sync yet", True)
    last = store.get("last_reconcile")
    if last is None or now.timestamp() - float(last) >= settings.reconcile_hours * 3600:
        return SyncPlan("reconcile", f"periodic (every {settings.reconcile_hours:g} h)", True)
    return SyncPlan("incremental", "changes since the last sync", False)


def sync(
    client: ConduitClient,
    config: Config,
    *,
    full: bool = False,
    now: datetime,
    settings: SyncSettings | None = None,
    progress: SyncProgress | None = None,
) -> SyncResult:
    """Bring the cache up to date with the server; see the module docstring for the modes.

    Takes the state lock (re-entrant per thread): raises LockHeldError if another process has it.

    ``now`` is the sync's start, from the caller's clock: it times the periodic reconcile and dates
    first sightings. The high-water mark is not taken from it but from the server's own
    ``dateModified`` stamps (see the module docstring).
    """
    settings = settings or SyncSettings.from_config(config)
    progress = progress or _NoProgress()
    calls_before = dict(client.stats.calls)
    attempts_before = client.stats.total
    from clinicbot.state.lock import StateLock

    # One writer per state directory. Re-entrant in this thread: `serve`'s job thread and the
    # `sync` command already hold it; anyone else (another process) is refused with its PID.
    with StateLock(config.state_dir), CacheStore(cache_path(config)) as store:
        plan = plan_sync(store, config, settings, now, full=full)
        log.info("sync %s: %s", plan.mode, plan.reason)
        started_epoch = int(now.timestamp())

        clock = time.monotonic()
        filler = None
        if plan.refresh_structure:
            members: dict[str, set[str]] = {}  # the boards' members, asked for with the boards
            structure = fetch_structure(client, config, members)
            filler = LookupFiller(client, config, structure.boards, Lookups(now=now.timestamp()), members)
        else:
            structure = store.structure()  # type: ignore[assignment]
            assert structure is not None

        # After a completed sync every task row has its current history: only a sync that died
        # between a task page and its histories leaves stale ones to look for (a full scan).
        rows_before = store.get("rows")
        completed_before = rows_before is not None
        with store.transaction() as conn:
            # The row check is only true between syncs: it goes now, and comes back at the end.
            conn.execute("DELETE FROM meta WHERE key = 'rows'")
            if plan.mode == "full":
                conn.execute("DELETE FROM tasks")
                conn.execute("DELETE FROM timelines")
                # Until this full sync completes the cache is partial: the next run must not
                # trust it for an incremental sync, so the mark goes (a reconcile follows).
                conn.execute("DELETE FROM meta WHERE key IN ('high_water', 'last_reconcile', ?)", (LOOKUPS_KEY,))
                store.put("history_fingerprint", _history_fingerprint())

        modified_start: datetime | None = None
        constraints: dict[str, Any] = {"columnPHIDs": structure.column_phids()}
        if plan.mode == "incremental":
            mark = store.high_water()
            assert mark is not None
            modified_start = datetime.fromtimestamp(max(0, mark - settings.overlap), tz=timezone.utc)
            constraints["modifiedStart"] = int(modified_start.timestamp())
            order = "updated"  # dateModified desc: the changed tasks, newest first
        else:
            order = "newest"  # id desc: stable while tasks are edited, so a full pass sees every task

        result = SyncResult(mode=plan.mode, reason=plan.reason, started=now, finished=now,
                            modified_start=modified_start)
        seen: set[str] = set()
        # The next mark: the newest server stamp seen, never lower than the last one.
        newest = store.high_water() or 0  # None after a full sync forgot it
        need: dict[str, tuple[int, int]] = {}  # phid -> (id, modified) whose history to fetch
        proxies = structure.proxies()
        # What the cache held for these tasks before: nothing in a full sync's emptied tables, so
        # only a task met again in this sync needs looking up (a 100k cold sync: 2,000 queries fewer).
        fresh = (plan.mode == "full", store.conn.execute("SELECT 1 FROM sightings LIMIT 1").fetchone() is None)
        progress.phase("tasks", None if plan.mode == "incremental" else (store.task_count() or None))
        if structure.column_phids():
            pages = client.search_pages("maniphest.search", constraints=constraints,
                                        attachments=TASK_ATTACHMENTS, order=order)
            if settings.concurrency > 1:
                pages = read_ahead(pages, depth=3, name="sync-pages")  # the next pages come while this one is stored
            with _HistoryOverlap(client, store, structure, settings) as overlap:
                for page in pages:
                    page_need: dict[str, tuple[int, int]] = {}
                    newest = max(newest, _store_page(store, page, proxies, started_epoch, seen, page_need, fresh))
                    overlap.submit(page_need)  # what it does not take stays in page_need
                    if filler is not None:
                        filler.note(page)
                    need.update(page_need)
                    result.tasks_fetched += len(page)
                    progress.advance(len(page))
                result.histories_fetched = overlap.finish()

        # Histories missing or older than their task, also from earlier runs that failed
        # between writing a task row and its history.
        for task_id, phid, modified in ([] if completed_before else store.stale_histories()):
            need.setdefault(phid, (task_id, modified))
        result.histories_fetched += _fetch_histories(client, store, need, structure, settings, progress)
        filled = filler.finish(row[0] for row in store.conn.execute("SELECT phid FROM actors")) if filler else None

        with store.transaction() as conn:
            if plan.mode != "incremental":
                if store.get("structure") not in (None, structure.dumps()):
                    # The boards changed (a column renamed, added, a project moved): the fixed
                    # lookups (team projects and members, users) are asked for again.
                    conn.execute("DELETE FROM meta WHERE key = ?", (LOOKUPS_KEY,))
                if filled is not None:  # the account, team and users as they are now, for a day
                    store.put(LOOKUPS_KEY, filled.dumps())
                cached = {row[0] for row in store.conn.execute("SELECT phid FROM tasks")}
                result.removed = store.forget_tasks(cached - seen)
                store.put("last_reconcile", str(started_epoch))
                store.put("structure", structure.dumps())
                store.put("boards_fingerprint", boards_fingerprint(config))
            store.put("history_fingerprint", _history_fingerprint())
            # Only now, with every page and history stored, does the mark move.
            store.put("high_water", str(newest))
            # No history fetched in an incremental sync: no task row was added or got a new
            # dateModified (either needs its history), so the counts and sums stand (no 100k-row scan).
            same = plan.mode == "incremental" and completed_before and not result.histories_fetched
            rows = rows_before if same and rows_before else json.dumps(store.row_check())
            result.tasks_total = int(json.loads(rows)[0])
            store.put("rows", rows)
            # The end time from a monotonic clock: core code does not read the wall clock.
            result.finished = now + timedelta(seconds=time.monotonic() - clock)
            store.put("last_sync", json.dumps({"mode": plan.mode, "started": started_epoch,
                                               "tasks": result.tasks_total}))
        store.check_present()
    result.calls_by_method = {m: n - calls_before.get(m, 0) for m, n in client.stats.calls.items()
                              if n - calls_before.get(m, 0)}
    result.calls = sum(result.calls_by_method.values())
    result.attempts = client.stats.total - attempts_before
    log.info("%s", result.summary())
    return result


def _store_page(store: CacheStore, page: list[dict[str, Any]], proxies: Mapping[str, Column], started: int,
                seen: set[str], need: dict[str, tuple[int, int]], fresh: tuple[bool, bool] = (False, False)) -> int:
    """Store one page of tasks (one transaction); return the newest ``dateModified`` on it (server clock), 0 if empty."""
    tasks: list[tuple[Task, Task]] = []  # (as placed, as stored: proxies are placed on load)
    for item in page:
        task = parse_task(item)  # statuses are applied on load; here only placement matters
        tasks.append((place_in_proxy_columns(task, proxies) if proxies else task, task))
    phids = [t.phid for t, _ in tasks]
    again = [p for p in phids if p in seen]  # met on an earlier page of this sync
    history_at = store.history_modified(again if fresh[0] else phids)
    placements = store.placements(again if fresh[1] else phids)
    rows, placed, unplaced = [], [], []
    for task, stored in tasks:
        modified = int(task.modified.timestamp())
        closed = int(task.closed_at.timestamp()) if task.closed_at is not None else None
        rows.append((task.phid, task.id, modified, dump_task(stored), task.status, closed))
        seen.add(task.phid)
        if history_at.get(task.phid) != modified:
            need[task.phid] = (task.id, modified)
        _sightings(task, placements.get(task.phid, {}), min(modified, started), placed, unplaced)
    with store.transaction() as conn:
        conn.executemany("INSERT OR REPLACE INTO tasks (phid, id, modified, task, status, closed_at) "
                         "VALUES (?, ?, ?, ?, ?, ?)", rows)
        if placed:
            conn.executemany("INSERT OR REPLACE INTO sightings (task_phid, board_phid, column_phid, first_seen) "
                             "VALUES (?, ?, ?, ?)", placed)
        if unplaced:
            conn.executemany("DELETE FROM sightings WHERE task_phid = ? AND board_phid = ?", unplaced)
    return max((int(t.modified.timestamp()) for t, _ in tasks), default=0)


def _sightings(task: Task, known: Mapping[str, tuple[str, int]], seen_at: int,
               placed: list[tuple[str, str, str, int]], unplaced: list[tuple[str, str]]) -> None:
    """Keep one sighting per (task, board): the column it is in, and since when clinicbot knows.
    Adds the sightings to write to ``placed``, the (task, board) pairs to forget to ``unplaced``.

    A new placement is dated by the task's ``dateModified``: the move into the column happened
    at or before the last modification, so this is the latest time the task can have entered
    it (ages computed from it are never overstated), and never later than clinicbot saw it.
    An unchanged placement keeps its first sighting; a task that moved away and back gets a new one.
    """
    for board_phid, column_phid in task.columns.items():
        old = known.get(board_phid)
        if old is None or old[0] != column_phid:
            placed.append((task.phid, board_phid, column_phid, seen_at))
    unplaced.extend((task.phid, board_phid) for board_phid in set(known) - set(task.columns))


def _fetch_histories(client: ConduitClient, store: CacheStore, need: Mapping[str, tuple[int, int]],
                     structure: Structure, settings: SyncSettings, progress: SyncProgress) -> int:
    from clinicbot.phab.history import fetch_timelines

    pending = sorted(need.items(), key=lambda kv: kv[1][0])
    progress.phase("histories", len(pending))
    done = 0
    # Chunks bound memory (a 100,000-task cold sync never holds all timelines) and commit
    # progress, so a sync that fails late keeps the histories it already has.
    chunk_size = max(settings.history_chunk, 1)
    for start in range(0, len(pending), chunk_size):
        chunk = pending[start:start + chunk_size]
        timelines = fetch_timelines(client, [(task_id, phid) for phid, (task_id, _) in chunk],
                                    use_batch=structure.batch_history, concurrency=settings.concurrency, rows=True)
        _store_histories(store, chunk, timelines)
        done += len(chunk)
        progress.advance(len(chunk))
    return done


def _store_histories(store: CacheStore, chunk: list[tuple[str, tuple[int, int]]], timelines: Mapping[str, Any]) -> None:
    rows, actors = [], set()
    for phid, (_, modified) in chunk:
        timeline = timelines.get(phid)
        # No history = deleted or hidden from the bot since the search: remember "none"
        # for this dateModified so it is not asked for again until the task changes.
        rows.append((phid, modified, dump_timeline(timeline) if timeline is not None else None))
        if timeline is not None:  # an EventRows: [2] is the author
            actors.update(e[2] for e in timeline.rows if e[2])
    with store.transaction() as conn:  # one transaction per batch
        conn.executemany("INSERT OR REPLACE INTO timelines (phid, task_modified, data) VALUES (?, ?, ?)", rows)
        conn.executemany("INSERT OR IGNORE INTO actors (phid) VALUES (?)", [(a,) for a in sorted(actors)])


class _HistoryOverlap(Closing):
    """The histories of each task page, fetched while the next page is on its way (issue 12, item 3).

    A cold sync used to read every page, then every history batch, one round trip after the
    other. Here each page's histories go to a small pool (``schedule.sync.concurrency`` threads on
    the one client and its session; every call keeps its own retry and 429 backoff) while this
    thread asks for the next page; answers are stored here, in this thread (SQLite), oldest
    first, with at most ``concurrency`` batches in flight (memory stays bounded). A failure
    cancels the batches not started and is raised when its batch is stored."""

    def __init__(self, client: ConduitClient, store: CacheStore, structure: Structure, settings: SyncSettings):
        from concurrent.futures import ThreadPoolExecutor

        self.client, self.store, self.structure = client, store, structure
        self.limit = settings.concurrency
        self.pool = (ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="sync-history")
                     if settings.concurrency > 1 else None)
        self.inflight: list[tuple[Any, list[tuple[str, tuple[int, int]]]]] = []
        self.done = 0

    def submit(self, need: dict[str, tuple[int, int]]) -> None:
        """Fetch these histories in the background; without a pool they stay in ``need`` for later."""
        if self.pool is None or not need:
            return
        from clinicbot.phab.history import fetch_timelines

        chunk = sorted(need.items(), key=lambda kv: kv[1][0])
        need.clear()
        future = self.pool.submit(fetch_timelines, self.client, [(i, phid) for phid, (i, _) in chunk],
                                  use_batch=self.structure.batch_history, concurrency=1, rows=True)
        self.inflight.append((future, chunk))
        while len(self.inflight) > self.limit:
            self._store_oldest()

    def _store_oldest(self) -> None:
        future, chunk = self.inflight.pop(0)
        _store_histories(self.store, chunk, future.result())
        self.done += len(chunk)

    def finish(self) -> int:
        while self.inflight:
            self._store_oldest()
        return self.done

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------------------------
# Reading the cache for a snapshot


@dataclass
class CachedBoards:
    """What ``build_snapshot(..., data=cached.data, timelines=cached.timelines)`` takes."""

    data: BoardData
    timelines: Mapping[str, Any]  # a LazyTimelines: each parsed when first read
    sightings: dict[tuple[str, str, str], datetime]
    actors: frozenset[str] = frozenset()  # every user PHID that acted in a cached history
    lookups: Lookups | None = None  # the fixed lookups kept in the cache (None: none yet)


def load_cached(config: Config, *, roles: Iterable[str] | None = None, open_only: bool = False,
                closed_since: datetime | None = None, now: datetime | None = None) -> CachedBoards:
    """Boards, tasks, timelines and sightings from the cache, as ``load_boards`` would give them.

    A job loads only what it reads: ``open_only`` leaves closed tasks (and their histories) in
    the cache; ``closed_since`` keeps the closed tasks closed or modified since then (what the
    metrics' window and weekly series can count) besides the open ones. With ``roles``, only
    tasks in columns with those roles (boards are all returned, as in ``load_boards``).
    Timelines are read from the cache and parsed when first read (``LazyTimelines``; ``prefetch``
    reads many in one go). Raises StateError when no sync has completed yet.
    """
    path = cache_path(config)
    with CacheStore(path, readonly=True) as store:
        structure = store.structure()
        mark = store.high_water()
        if structure is None or mark is None:
            raise StateError(str(path), "no completed sync in the cache; run `clinicbot sync`")
        rows = store.get("rows")
        if rows is not None and json.loads(rows) != store.row_check():
            raise StateError(str(path), "the cache is damaged (its rows differ from what the last completed sync "
                                        "recorded); the next `clinicbot sync` rebuilds it")
        statuses = {s.value: s for s in structure.statuses}
        proxies = structure.proxies()
        wanted = set(roles) if roles is not None else None
        role_cols = {(c.board_phid, c.phid) for b in structure.boards for c in b.columns
                     if wanted is None or c.role in wanted}
        clause, params = task_filter(structure, open_only=open_only, closed_since=closed_since)
        loaded: list[Task] = []
        query = "SELECT task FROM tasks" + (f" WHERE {clause.format(t='')}" if clause else "")
        load = task_loader(statuses)
        with gc_paused():
            for (text,) in store.conn.execute(query, params):  # sorted by id below (SQL's sort cost more)
                task = load(text)
                if proxies:
                    task = place_in_proxy_columns(task, proxies)
                if open_only and task.is_closed:
                    continue
                if wanted is not None and not any(bc in role_cols for bc in task.columns.items()):
                    continue
                loaded.append(task)
        loaded.sort(key=attrgetter("id"))
        tasks: dict[str, Task] = {t.phid: t for t in loaded}
        # Which loaded tasks have a history (an index of the held ones; a JOIN with the task filter
        # was slower); the texts are read when a timeline is (LazyTimelines).
        held = {phid for (phid,) in store.conn.execute("SELECT phid FROM timelines WHERE data IS NOT NULL")}
        with_history = {phid: task.id for phid, task in tasks.items() if phid in held}
        sightings = LazySightings(path, tasks)  # read when first asked for
        actors = frozenset(row[0] for row in store.conn.execute("SELECT phid FROM actors"))
        lookups = Lookups.loads(store.get(LOOKUPS_KEY), now=(now or datetime.now(timezone.utc)).timestamp())
    data = BoardData(boards=structure.boards, tasks=tasks, statuses=structure.statuses, priorities=structure.priorities)
    return CachedBoards(data=data, timelines=LazyTimelines(with_history, reader=history_reader(path)),
                        sightings=sightings, actors=actors, lookups=lookups)


def sync_and_load(client: ConduitClient, config: Config, *, now: datetime, roles: Iterable[str] | None = None,
                  open_only: bool = False, closed_since: datetime | None = None,
                  settings: SyncSettings | None = None) -> tuple[SyncResult, CachedBoards]:
    """The usual pair for a job: bring the cache up to date, then read it for a snapshot."""
    result = sync(client, config, now=now, settings=settings)
    return result, load_cached(config, roles=roles, open_only=open_only, closed_since=closed_since, now=now)


def minimal_calls(changed: int, page: int = 100) -> int:
    """Lower bound of Conduit calls to learn about ``changed`` tasks and re-read their histories
    with the batch method: one search page and one history batch per 100 (the bench uses it)."""
    return max(1, math.ceil(changed / page)) + math.ceil(changed / page)
