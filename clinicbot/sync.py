"""Incremental sync: a local cache of the watched boards' tasks and their histories.

The cache is one SQLite file in the state directory (``cache.sqlite``, WAL journal). It holds

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
import os
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Protocol

from clinicbot.phab.boards import (
    TASK_ATTACHMENTS,
    BoardData,
    load_structure,
    parse_task,
    place_in_proxy_columns,
)
from clinicbot.phab.conduit import ConduitClient
from clinicbot.config import Config
from clinicbot.errors import StateError
from clinicbot.model import Board, Column, Priority, Status, Task, from_epoch

log = logging.getLogger(__name__)

CACHE_FILE = "cache.sqlite"
# Bump when the layout of the cache tables changes: an older cache is then rebuilt (full sync).
SCHEMA_VERSION = 1
LEGACY_METHOD = "maniphest.gettasktransactions"

DEFAULT_OVERLAP = 600  # seconds before the newest server dateModified seen; covers late-committing edits
DEFAULT_RECONCILE_HOURS = 24.0
DEFAULT_CONCURRENCY = 4
DEFAULT_HISTORY_CHUNK = 500  # tasks whose histories are fetched and written per round (bounds memory)

_CACHE_TABLES = ("meta", "tasks", "timelines", "sightings")
_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    phid TEXT PRIMARY KEY, id INTEGER NOT NULL, modified INTEGER NOT NULL, item TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS timelines (
    phid TEXT PRIMARY KEY, task_modified INTEGER NOT NULL, data TEXT);
CREATE TABLE IF NOT EXISTS sightings (
    task_phid TEXT NOT NULL, board_phid TEXT NOT NULL, column_phid TEXT NOT NULL, first_seen INTEGER NOT NULL,
    PRIMARY KEY (task_phid, board_phid));
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, started REAL NOT NULL, finished REAL,
    outcome TEXT NOT NULL, duration REAL, calls INTEGER, attempts INTEGER, detail TEXT, pid INTEGER);
CREATE INDEX IF NOT EXISTS runs_job ON runs (job, started);
"""


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


def cache_path(config: Config) -> Path:
    return config.state_dir / CACHE_FILE


# --------------------------------------------------------------------------------------------
# Timeline (de)serialisation
#
# Timelines are stored as their parsed events, not as the raw transaction items: the raw items
# are several times larger (comment text versions, full edge lists, policy fields) and
# fetch_timelines hands out only the parsed form. The price: a change in history.py's parsing
# (or timeline.py's events) must invalidate the cache, so the history fingerprint (below) is part of the cache identity.


def _history_fingerprint() -> str:
    from clinicbot import timeline
    from clinicbot.phab import history

    digest = hashlib.sha256(",".join(f.name for f in fields(timeline.Event)).encode())
    try:
        for module in (history, timeline):
            digest.update(Path(module.__file__ or "").read_bytes())
    except OSError:  # a zipped install: fall back to the package version
        from clinicbot import __version__

        digest.update(__version__.encode())
    return digest.hexdigest()[:16]


_EVENT_FIELDS: list[str] = []


def _event_fields() -> list[str]:
    if not _EVENT_FIELDS:
        from clinicbot.phab.history import Event

        _EVENT_FIELDS.extend(f.name for f in fields(Event))
    return _EVENT_FIELDS


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _unplain(value: Any) -> Any:
    # Event payloads hold tuples (PHID lists), never lists: JSON lists come back as tuples.
    if isinstance(value, list):
        return tuple(_unplain(v) for v in value)
    return value


def dump_timeline(timeline: Any) -> str:
    names = _event_fields()
    events = [[_plain(getattr(e, n)) for n in names] for e in timeline.events]
    return json.dumps({"f": names, "s": timeline.structured_columns, "u": timeline.unreadable, "e": events},
                      separators=(",", ":"))


def load_timeline(task_phid: str, task_id: int, text: str) -> Any:
    from clinicbot.phab.history import Event, Timeline

    data = json.loads(text)
    names = data["f"]
    events = []
    if names == _event_fields():
        # The fast path (a 100,000-task cache holds ~1M events): positional construction, and
        # only the fields that can hold tuples are converted back from JSON lists.
        at_i = names.index("at")
        tuple_i = [names.index(n) for n in ("old", "new", "from_column_phids")]
        for row in data["e"]:
            row[at_i] = datetime.fromtimestamp(row[at_i], tz=timezone.utc)
            for i in tuple_i:
                if isinstance(row[i], list):
                    row[i] = tuple(row[i]) if row[i] else ()  # flat PHID lists
            events.append(Event(*row))
    else:  # written by another clinicbot version with other Event fields (still readable by name)
        known = set(_event_fields())
        for row in data["e"]:
            values = {k: _unplain(v) for k, v in zip(names, row) if k in known}
            values["at"] = datetime.fromtimestamp(values["at"], tz=timezone.utc)
            events.append(Event(**values))
    return Timeline(task_phid, task_id, tuple(events), structured_columns=bool(data["s"]),
                    unreadable=int(data.get("u") or 0))


# --------------------------------------------------------------------------------------------
# Board structure (de)serialisation: what an incremental sync needs without asking the server


@dataclass
class Structure:
    boards: list[Board]
    statuses: tuple[Status, ...]
    priorities: tuple[Priority, ...]
    batch_history: bool  # the server has maniphest.gettasktransactions

    def column_phids(self) -> list[str]:
        return sorted({c.phid for b in self.boards for c in b.columns})

    def proxies(self) -> dict[str, Column]:
        return {c.proxy_phid: c for b in self.boards for c in b.columns if c.proxy_phid}

    def dumps(self) -> str:
        return json.dumps({
            "boards": [{**asdict(b), "columns": [asdict(c) for c in b.columns]} for b in self.boards],
            "statuses": [asdict(s) for s in self.statuses],
            "priorities": [asdict(p) for p in self.priorities],
            "batch_history": self.batch_history,
        })

    @classmethod
    def loads(cls, text: str) -> "Structure":
        data = json.loads(text)
        boards = [Board(phid=b["phid"], name=b["name"], slug=b["slug"],
                        columns=tuple(Column(**c) for c in b["columns"])) for b in data["boards"]]
        return cls(boards=boards, statuses=tuple(Status(**s) for s in data["statuses"]),
                   priorities=tuple(Priority(**p) for p in data["priorities"]),
                   batch_history=bool(data["batch_history"]))


def fetch_structure(client: ConduitClient, config: Config) -> Structure:
    boards, statuses, priorities = load_structure(client, config)
    return Structure(boards=boards, statuses=statuses, priorities=priorities,
                     batch_history=client.has_method(LEGACY_METHOD))


def boards_fingerprint(config: Config) -> str:
    return hashlib.sha256(json.dumps(config.raw.get("boards"), sort_keys=True, default=str).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# The SQLite store


NETWORK_FILESYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "fuse.sshfs",
                                 "fuse.glusterfs", "9p", "afs", "lustre", "gpfs"})


def filesystem_type(path: Path) -> str | None:
    """The type of the filesystem holding ``path`` (from /proc/self/mounts), None if unknown."""
    try:
        target = str(path.resolve())
        best, fstype = "", None
        with open("/proc/self/mounts") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mount = parts[1].replace("\\040", " ")
                if (target == mount or target.startswith(mount.rstrip("/") + "/")) and len(mount) > len(best):
                    best, fstype = mount, parts[2]
        return fstype
    except OSError:
        return None


def journal_mode(directory: Path) -> str:
    """WAL, except on a network filesystem (NFS on Toolforge): WAL needs shared memory that such
    filesystems cannot provide, so the rollback journal is used there (readers then wait for a
    writer instead of reading alongside it; there is only one writer anyway)."""
    return "DELETE" if filesystem_type(directory) in NETWORK_FILESYSTEMS else "WAL"


# SQLite result codes (sqlite3.Error.sqlite_errorcode & 0xff) and what they mean for the cache.
_SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 8, 10, 11, 13, 14, 26
_SQLITE_READONLY_DBMOVED = 1032
DAMAGED = (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def cache_error(exc: sqlite3.Error, path: Path, action: str = "cache") -> StateError:
    """One line for an SQLite failure on the cache: the file, what happened, what to do.

    The StateError carries ``sqlite_code`` (the primary result code) so the opener can tell a
    damaged file (moved aside and rebuilt) from a full disk or a read-only directory (stop)."""
    full = getattr(exc, "sqlite_errorcode", None) or 0
    code = full & 0xFF
    reason = str(exc)
    directory = path.parent
    if full == _SQLITE_READONLY_DBMOVED or (code == _SQLITE_CANTOPEN and not directory.exists()):
        hint = (f"the state directory {directory} was removed or moved while clinicbot was using it; restore it "
                "from your backup before the next run (a new, empty one would make every open finding fire again)")
    elif code == _SQLITE_FULL:
        hint = f"the disk (or quota) holding {directory} is full; free some space, then run again"
    elif code in (_SQLITE_READONLY, _SQLITE_CANTOPEN):
        hint = (f"{directory} is not writable (a read-only filesystem, or owned by another user); remount it "
                "read-write or make the bot's user own it (chmod 700 the directory, 600 its files)")
    elif code in DAMAGED:
        hint = "the cache file is damaged; `clinicbot sync --full` rebuilds it (it is only a cache)"
    elif code == _SQLITE_IOERR and _disk_full(directory):
        hint = f"the disk (or quota) holding {directory} is full; free some space, then run again"
    elif code == _SQLITE_IOERR:
        hint = f"an I/O error on the disk holding {directory} (full, removed, or failing); check it, then run again"
    else:
        hint = "check the state directory and its disk; `clinicbot sync --full` rebuilds the cache"
    err = StateError(str(path), f"{action}: {reason}; {hint}")
    err.sqlite_code = code  # type: ignore[attr-defined]
    return err


def _disk_full(directory: Path) -> bool:
    """SQLite reports some writes on a full disk as a plain I/O error: ask the filesystem."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


class _Cursor(sqlite3.Cursor):
    """A cursor whose SQLite errors are StateErrors naming the cache file (see cache_error)."""

    def _fail(self, exc: sqlite3.Error) -> StateError:
        return cache_error(exc, self.connection.path)  # type: ignore[attr-defined]

    def execute(self, *args: Any) -> "_Cursor":
        try:
            return super().execute(*args)
        except sqlite3.Error as exc:
            raise self._fail(exc) from None

    def executemany(self, *args: Any) -> "_Cursor":
        try:
            return super().executemany(*args)
        except sqlite3.Error as exc:
            raise self._fail(exc) from None

    def executescript(self, *args: Any) -> "_Cursor":
        try:
            return super().executescript(*args)
        except sqlite3.Error as exc:
            raise self._fail(exc) from None

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.Error as exc:
            raise self._fail(exc) from None

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.Error as exc:
            raise self._fail(exc) from None

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.Error as exc:
            raise self._fail(exc) from None


class _Connection(sqlite3.Connection):
    path: Path

    def cursor(self, factory: Any = _Cursor) -> Any:
        return super().cursor(factory)

    # Connection.execute() makes its cursor in C, not through cursor(): route it.
    def execute(self, *args: Any) -> Any:
        return self.cursor().execute(*args)

    def executemany(self, *args: Any) -> Any:
        return self.cursor().executemany(*args)

    def executescript(self, *args: Any) -> Any:
        return self.cursor().executescript(*args)


class CacheStore:
    """The cache database. One connection per instance; open it where you use it.

    Every SQLite failure is a :class:`StateError` naming the file (a full disk, a read-only or
    removed state directory): one line, exit 2. A *damaged* cache is different: it is only a
    cache, so opening it for writing checks it (``PRAGMA quick_check``, and the row counts the
    last completed sync recorded) and rebuilds it with a warning (``rebuilt_reason``); a damaged
    file that SQLite cannot even open is moved aside first, for a post-mortem.
    """

    def __init__(self, path: Path, *, readonly: bool = False):
        self.path = Path(path)
        self.rebuilt_reason: str | None = None  # set when the cache had to be (re)created
        if readonly:
            if not self.path.exists():
                self.check_present()
                raise StateError(str(self.path), "no cache yet; run `clinicbot sync` first")
            self.conn = self._connect(f"file:{self.path}?mode=ro", uri=True)
            return
        from clinicbot.state.fileio import create_private_file, private_dir
        from clinicbot.state.ledger import StateLock

        # Under the state lock the directory exists (the lock made it): if it is gone now, it was
        # removed mid-run, and recreating it empty would quietly start a new state.
        private_dir(self.path.parent, create=not StateLock.held(self.path.parent))
        existed = self.path.exists() and self.path.stat().st_size > 0
        create_private_file(self.path)  # 0600; SQLite gives -wal/-shm the database file's mode
        mode = journal_mode(self.path.parent)
        problem = None
        try:
            self.conn = self._connect(str(self.path))
            self.conn.execute(f"PRAGMA journal_mode={mode}")
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            if version == SCHEMA_VERSION:
                problem = self._damage()
        except StateError as exc:
            if getattr(exc, "sqlite_code", None) not in DAMAGED:
                raise  # a full disk or a read-only directory is not a damaged cache: stop, touch nothing
            problem = str(exc)
        if problem:
            # It is a cache: a damaged file is moved aside (for a post-mortem) and rebuilt.
            self.conn.close()
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.warning("cache %s is damaged (%s); moved to %s and rebuilding it with a full sync",
                        self.path, problem, aside.name)
            try:
                for suffix in ("", "-wal", "-shm"):
                    src = Path(str(self.path) + suffix)
                    if src.exists():
                        os.replace(src, Path(str(aside) + suffix))
            except OSError as exc:
                from clinicbot.state.fileio import state_error

                raise state_error(exc, self.path, "cannot move the damaged cache aside") from None
            create_private_file(self.path)
            self.conn = self._connect(str(self.path))
            self.conn.execute(f"PRAGMA journal_mode={mode}")
            version = 0
            self.rebuilt_reason = "the cache was damaged"
        # NORMAL is durable across a crash of this process in WAL mode; only a power cut can
        # drop the last commits, and then the mark and the data roll back together.
        self.conn.execute("PRAGMA synchronous=NORMAL")
        if version != SCHEMA_VERSION:
            if self.rebuilt_reason:
                pass
            elif existed and version:
                self.rebuilt_reason = f"cache schema version {version}, this clinicbot uses {SCHEMA_VERSION}"
            elif existed:
                self.rebuilt_reason = "cache has no schema version"
            else:
                self.rebuilt_reason = "no cache yet"
            with self.transaction():
                for table in _CACHE_TABLES:  # the run history is kept
                    self.conn.execute(f"DROP TABLE IF EXISTS {table}")
            self.conn.executescript(_DDL)
            self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        else:
            self.conn.executescript(_DDL)  # the runs table may be new

    def check_present(self) -> None:
        """Raise a StateError if the cache file was removed under a run holding the state lock
        (SQLite keeps writing to the unlinked file without a word)."""
        from clinicbot.state.ledger import StateLock

        if self.path.exists() or not StateLock.held(self.path.parent):
            return
        raise StateError(str(self.path), f"removed while clinicbot was using it (was the state directory "
                         f"{self.path.parent} deleted?); restore the state directory from your backup before the "
                         "next run (a new, empty one would make every open finding fire again)")

    def _damage(self) -> str | None:
        """Why this (current-schema) cache cannot be trusted, or None.

        ``quick_check`` finds damaged pages; the row check finds rows lost without damaged
        pages (a cache that silently lost tasks gave 16 findings instead of 55 until a full sync)."""
        rows = self.conn.execute("PRAGMA quick_check(1)").fetchall()
        if [tuple(r) for r in rows] != [("ok",)]:
            return f"integrity check: {rows[0][0] if rows else 'no answer'}"
        if not self._has_table("meta") or not self._has_table("tasks") or not self._has_table("timelines"):
            return None
        expected = self.get("rows")
        if expected is not None and json.loads(expected) != self.row_check():
            return "its rows differ from what the last completed sync recorded"
        return None

    def _has_table(self, name: str) -> bool:
        return self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                 (name,)).fetchone() is not None

    def row_check(self) -> list[float]:
        """Counts and sums of the tasks and timelines: recorded at the end of every completed sync
        (meta ``rows``), compared when the cache is opened."""
        t = self.conn.execute("SELECT COUNT(*), TOTAL(id), TOTAL(modified) FROM tasks").fetchone()
        h = self.conn.execute("SELECT COUNT(*), TOTAL(task_modified) FROM timelines").fetchone()
        return [float(x) for x in (*t, *h)]

    @staticmethod
    def _connect(target: str, uri: bool = False) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (see transaction()).
        # check_same_thread=False: the scheduler opens stores in its worker thread and hands
        # nothing across threads, but status helpers may be called from either.
        path = Path(target[5:].partition("?")[0]) if uri else Path(target)
        try:
            conn = sqlite3.connect(target, timeout=30, isolation_level=None, uri=uri, check_same_thread=False,
                                   factory=_Connection)
        except sqlite3.Error as exc:
            raise cache_error(exc, path) from None
        conn.path = path
        return conn

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "CacheStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            if self.conn.in_transaction:  # SQLite may have rolled back already (a full disk)
                try:
                    self.conn.execute("ROLLBACK")
                except StateError:
                    pass
            raise
        self.conn.execute("COMMIT")

    # -- meta ------------------------------------------------------------------------------
    def get(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def put(self, key: str, value: Any) -> None:
        text = value if isinstance(value, str) else json.dumps(value)
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, text))

    def high_water(self) -> int | None:
        value = self.get("high_water")
        return int(value) if value is not None else None

    def structure(self) -> Structure | None:
        text = self.get("structure")
        return Structure.loads(text) if text else None

    # -- tasks and timelines ---------------------------------------------------------------
    def task_count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0])

    def placements(self, phids: list[str]) -> dict[str, dict[str, tuple[str, int]]]:
        """task PHID -> board PHID -> (column PHID, first seen) for the given tasks."""
        out: dict[str, dict[str, tuple[str, int]]] = {}
        for i in range(0, len(phids), 500):
            chunk = phids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for task, board, column, seen in self.conn.execute(
                    f"SELECT task_phid, board_phid, column_phid, first_seen FROM sightings WHERE task_phid IN ({marks})",
                    chunk):
                out.setdefault(task, {})[board] = (column, seen)
        return out

    def history_modified(self, phids: list[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for i in range(0, len(phids), 500):
            chunk = phids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            out.update(self.conn.execute(
                f"SELECT phid, task_modified FROM timelines WHERE phid IN ({marks})", chunk).fetchall())
        return out

    def stale_histories(self) -> list[tuple[int, str, int]]:
        """(id, phid, modified) of cached tasks whose history is missing or older than the task."""
        return self.conn.execute(
            "SELECT t.id, t.phid, t.modified FROM tasks t LEFT JOIN timelines h ON h.phid = t.phid "
            "WHERE h.phid IS NULL OR h.task_modified != t.modified").fetchall()

    def forget_tasks(self, phids: Iterable[str]) -> int:
        removed = 0
        for phid in phids:
            removed += self.conn.execute("DELETE FROM tasks WHERE phid = ?", (phid,)).rowcount
            self.conn.execute("DELETE FROM timelines WHERE phid = ?", (phid,))
            self.conn.execute("DELETE FROM sightings WHERE task_phid = ?", (phid,))
        return removed

    def sightings(self) -> dict[tuple[str, str, str], datetime]:
        return {(t, b, c): datetime.fromtimestamp(s, tz=timezone.utc)
                for t, b, c, s in self.conn.execute("SELECT task_phid, board_phid, column_phid, first_seen FROM sightings")}

    # -- the run history (written by the scheduler, read by `clinicbot status`) ------------
    def run_started(self, job: str, started: float) -> int:
        cur = self.conn.execute("INSERT INTO runs (job, started, outcome, pid) VALUES (?, ?, 'running', ?)",
                                (job, started, os.getpid()))
        return int(cur.lastrowid or 0)

    def run_finished(self, run_id: int, *, finished: float, outcome: str, calls: int, attempts: int,
                     detail: str = "") -> None:
        self.conn.execute(
            "UPDATE runs SET finished = ?, outcome = ?, duration = ? - started, calls = ?, attempts = ?, detail = ? "
            "WHERE id = ?", (finished, outcome, finished, calls, attempts, detail[:500], run_id))

    def last_runs(self) -> dict[str, dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT job, started, finished, outcome, duration, calls, attempts, detail, pid FROM runs r "
            "WHERE id = (SELECT MAX(id) FROM runs WHERE job = r.job)").fetchall()
        keys = ("job", "started", "finished", "outcome", "duration", "calls", "attempts", "detail", "pid")
        return {row[0]: dict(zip(keys, row)) for row in rows}

    def last_finished(self) -> dict[str, float]:
        """Each job's latest start among runs that finished (any outcome): a run killed mid-way
        has no ``finished`` and does not count (serve runs its slot again at start)."""
        rows = self.conn.execute("SELECT job, MAX(started) FROM runs WHERE finished IS NOT NULL GROUP BY job")
        return {job: started for job, started in rows}

    def last_success(self, job: str) -> float | None:
        row = self.conn.execute("SELECT MAX(started) FROM runs WHERE job = ? AND outcome = 'ok'", (job,)).fetchone()
        return row[0] if row and row[0] is not None else None

    def prune_runs(self, keep: int = 2000) -> None:
        self.conn.execute("DELETE FROM runs WHERE id <= (SELECT MAX(id) FROM runs) - ?", (keep,))

    def close_stale_runs(self) -> int:
        """Runs left 'running' by a process that died (not this one): marked 'interrupted'."""
        rows = self.conn.execute("SELECT id, pid FROM runs WHERE outcome = 'running'").fetchall()
        stale = [rid for rid, pid in rows if pid != os.getpid() and not _alive(pid)]
        for rid in stale:
            self.conn.execute("UPDATE runs SET outcome = 'interrupted' WHERE id = ?", (rid,))
        return len(stale)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
    from clinicbot.state.ledger import StateLock

    # One writer per state directory. Re-entrant in this thread: `serve`'s job thread and the
    # `sync` command already hold it; anyone else (another process) is refused with its PID.
    with StateLock(config.state_dir), CacheStore(cache_path(config)) as store:
        plan = plan_sync(store, config, settings, now, full=full)
        log.info("sync %s: %s", plan.mode, plan.reason)
        started_epoch = int(now.timestamp())

        clock = time.monotonic()
        if plan.refresh_structure:
            structure = fetch_structure(client, config)
        else:
            structure = store.structure()  # type: ignore[assignment]
            assert structure is not None

        with store.transaction() as conn:
            # The row check is only true between syncs: it goes now, and comes back at the end.
            conn.execute("DELETE FROM meta WHERE key = 'rows'")
            if plan.mode == "full":
                conn.execute("DELETE FROM tasks")
                conn.execute("DELETE FROM timelines")
                # Until this full sync completes the cache is partial: the next run must not
                # trust it for an incremental sync, so the mark goes (a reconcile follows).
                conn.execute("DELETE FROM meta WHERE key IN ('high_water', 'last_reconcile')")
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
        progress.phase("tasks", None if plan.mode == "incremental" else (store.task_count() or None))
        if structure.column_phids():
            for page in client.search_pages("maniphest.search", constraints=constraints,
                                            attachments=TASK_ATTACHMENTS, order=order):
                newest = max(newest, _store_page(store, page, proxies, started_epoch, seen, need))
                result.tasks_fetched += len(page)
                progress.advance(len(page))

        # Histories missing or older than their task, also from earlier runs that failed
        # between writing a task row and its history.
        for task_id, phid, modified in store.stale_histories():
            need.setdefault(phid, (task_id, modified))
        result.histories_fetched = _fetch_histories(client, store, need, structure, settings, progress)

        with store.transaction():
            if plan.mode != "incremental":
                cached = {row[0] for row in store.conn.execute("SELECT phid FROM tasks")}
                result.removed = store.forget_tasks(cached - seen)
                store.put("last_reconcile", str(started_epoch))
                store.put("structure", structure.dumps())
                store.put("boards_fingerprint", boards_fingerprint(config))
            store.put("history_fingerprint", _history_fingerprint())
            # Only now, with every page and history stored, does the mark move.
            store.put("high_water", str(newest))
            result.tasks_total = store.task_count()
            store.put("rows", json.dumps(store.row_check()))
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
                seen: set[str], need: dict[str, tuple[int, int]]) -> int:
    """Store one page of tasks; return the newest ``dateModified`` on it (server clock), 0 if empty."""
    tasks: list[tuple[Task, dict[str, Any]]] = []
    for item in page:
        task = parse_task(item)  # statuses are applied on load; here only placement matters
        if proxies:
            task = place_in_proxy_columns(task, proxies)
        tasks.append((task, item))
    phids = [t.phid for t, _ in tasks]
    placements = store.placements(phids)
    history_at = store.history_modified(phids)
    with store.transaction() as conn:
        for task, item in tasks:
            modified = int(task.modified.timestamp())
            conn.execute("INSERT OR REPLACE INTO tasks (phid, id, modified, item) VALUES (?, ?, ?, ?)",
                         (task.phid, task.id, modified, json.dumps(item, separators=(",", ":"))))
            seen.add(task.phid)
            if history_at.get(task.phid) != modified:
                need[task.phid] = (task.id, modified)
            _record_sightings(conn, task, placements.get(task.phid, {}), min(modified, started))
    return max((int(t.modified.timestamp()) for t, _ in tasks), default=0)


def _record_sightings(conn: sqlite3.Connection, task: Task, known: Mapping[str, tuple[str, int]], seen_at: int) -> None:
    """Keep one sighting per (task, board): the column it is in, and since when clinicbot knows.

    A new placement is dated by the task's ``dateModified``: the move into the column happened
    at or before the last modification, so this is the latest time the task can have entered
    it (ages computed from it are never overstated), and never later than clinicbot saw it.
    An unchanged placement keeps its first sighting; a task that moved away and back gets a new one.
    """
    for board_phid, column_phid in task.columns.items():
        old = known.get(board_phid)
        if old is not None and old[0] == column_phid:
            continue
        conn.execute("INSERT OR REPLACE INTO sightings (task_phid, board_phid, column_phid, first_seen) "
                     "VALUES (?, ?, ?, ?)", (task.phid, board_phid, column_phid, seen_at))
    for board_phid in set(known) - set(task.columns):
        conn.execute("DELETE FROM sightings WHERE task_phid = ? AND board_phid = ?", (task.phid, board_phid))


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
                                    use_batch=structure.batch_history, concurrency=settings.concurrency)
        with store.transaction() as conn:
            for phid, (task_id, modified) in chunk:
                timeline = timelines.get(phid)
                # No history = deleted or hidden from the bot since the search: remember "none"
                # for this dateModified so it is not asked for again until the task changes.
                conn.execute("INSERT OR REPLACE INTO timelines (phid, task_modified, data) VALUES (?, ?, ?)",
                             (phid, modified, dump_timeline(timeline) if timeline is not None else None))
        done += len(chunk)
        progress.advance(len(chunk))
    return done


# --------------------------------------------------------------------------------------------
# Reading the cache for a snapshot


@dataclass
class CachedBoards:
    """What ``build_snapshot(..., data=cached.data, timelines=cached.timelines)`` takes."""

    data: BoardData
    timelines: dict[str, Any]
    sightings: dict[tuple[str, str, str], datetime]
    synced_at: datetime | None


def load_cached(config: Config, *, roles: Iterable[str] | None = None, open_only: bool = False) -> CachedBoards:
    """Boards, tasks, timelines and sightings from the cache, as ``load_boards`` would give them.

    With ``roles``, only tasks in columns with those roles (boards are all returned, as in
    ``load_boards``). Raises StateError when no sync has completed yet.
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
        tasks: dict[str, Task] = {}
        for (item,) in store.conn.execute("SELECT item FROM tasks ORDER BY id"):
            task = parse_task(json.loads(item), statuses)
            if proxies:
                task = place_in_proxy_columns(task, proxies)
            if open_only and task.is_closed:
                continue
            if wanted is not None and not any(bc in role_cols for bc in task.columns.items()):
                continue
            tasks[task.phid] = task
        timelines: dict[str, Any] = {}
        for phid, data in store.conn.execute("SELECT phid, data FROM timelines WHERE data IS NOT NULL"):
            owner = tasks.get(phid)
            if owner is not None:
                timelines[phid] = load_timeline(phid, owner.id, data)
        sightings = {k: v for k, v in store.sightings().items() if k[0] in tasks}
    data = BoardData(boards=structure.boards, tasks=tasks, statuses=structure.statuses, priorities=structure.priorities)
    return CachedBoards(data=data, timelines=timelines, sightings=sightings, synced_at=from_epoch(mark))


def sync_and_load(client: ConduitClient, config: Config, *, now: datetime, roles: Iterable[str] | None = None,
                  open_only: bool = False, settings: SyncSettings | None = None) -> tuple[SyncResult, CachedBoards]:
    """The usual pair for a job: bring the cache up to date, then read it for a snapshot."""
    result = sync(client, config, now=now, settings=settings)
    return result, load_cached(config, roles=roles, open_only=open_only)


def minimal_calls(changed: int, page: int = 100) -> int:
    """Lower bound of Conduit calls to learn about ``changed`` tasks and re-read their histories
    with the batch method: one search page and one history batch per 100 (the bench uses it)."""
    return max(1, math.ceil(changed / page)) + math.ceil(changed / page)
