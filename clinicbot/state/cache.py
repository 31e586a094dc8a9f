"""The sync cache store: one SQLite file in the state directory (``cache.sqlite``, WAL journal).

It holds

* ``tasks``     — every task on the watched boards as its parsed :class:`~clinicbot.model.Task` row
  (:func:`~clinicbot.state.cache_rows.dump_task`; a change in ``boards.py`` or the Task fields changes the cache fingerprint:
  full sync), with its ``dateModified``, status and ``dateClosed`` (what a job's load filters on);
* ``timelines`` — each task's :class:`~clinicbot.timeline.Timeline`, serialised, together with
  the ``dateModified`` of the task *when its history was fetched*;
* ``sightings`` — where clinicbot saw each task on each board, since when (for servers whose
  column moves come back as ``type: null``: see ``Timeline.column_entered_at``);
* ``actors``    — every user PHID that acted in a cached history (whose users a snapshot looks up,
  without parsing every timeline);
* ``meta``      — the high-water mark, the resolved board structure, fingerprints, the fixed lookups
  (:class:`clinicbot.state.lookups.Lookups`: the bot's account, team projects, users; kept for a day);
* ``runs``      — the scheduler's run history (``clinicbot status``; :mod:`clinicbot.state.runs`);
  it survives a cache rebuild.

The sync logic that fills it (phab → this cache) is :mod:`clinicbot.sync`.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from clinicbot.config import Config
from clinicbot.errors import StateError
from clinicbot.model import Closing
from clinicbot.state.cache_rows import Structure
from clinicbot.state.runs import RUNS_DDL, RunHistory

log = logging.getLogger(__name__)

CACHE_FILE = "cache.sqlite"
# Bump when the layout of the cache tables changes: an older cache is then rebuilt (full sync).
SCHEMA_VERSION = 2  # 2: tasks as parsed rows with status and closed_at (jobs load only what they read); actors

_CACHE_TABLES = ("meta", "tasks", "timelines", "sightings", "actors")
_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    phid TEXT PRIMARY KEY, id INTEGER NOT NULL, modified INTEGER NOT NULL, task TEXT NOT NULL,
    status TEXT NOT NULL, closed_at INTEGER);
CREATE INDEX IF NOT EXISTS tasks_rows ON tasks (phid, modified, id);
CREATE TABLE IF NOT EXISTS timelines (
    phid TEXT PRIMARY KEY, task_modified INTEGER NOT NULL, data TEXT);
CREATE INDEX IF NOT EXISTS timelines_rows ON timelines (phid, task_modified);
CREATE INDEX IF NOT EXISTS timelines_held ON timelines (phid) WHERE data IS NOT NULL;
CREATE TABLE IF NOT EXISTS sightings (
    task_phid TEXT NOT NULL, board_phid TEXT NOT NULL, column_phid TEXT NOT NULL, first_seen INTEGER NOT NULL,
    PRIMARY KEY (task_phid, board_phid));
CREATE TABLE IF NOT EXISTS actors (phid TEXT PRIMARY KEY);
""" + RUNS_DDL


def cache_path(config: Config) -> Path:
    return config.state_dir / CACHE_FILE




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
    if full == _SQLITE_READONLY_DBMOVED or (code in (_SQLITE_CANTOPEN, _SQLITE_IOERR) and not directory.exists()):
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


def _guarded(name: str) -> Any:
    """``sqlite3.Cursor.<name>`` with SQLite errors turned into StateErrors naming the cache file."""
    base = getattr(sqlite3.Cursor, name)

    def method(self: "_Cursor", *args: Any) -> Any:
        try:
            return base(self, *args)
        except sqlite3.Error as exc:
            raise self._fail(exc) from None

    method.__name__ = name
    return method


class _Cursor(sqlite3.Cursor):
    """A cursor whose SQLite errors are StateErrors naming the cache file (see cache_error)."""

    def _fail(self, exc: sqlite3.Error) -> StateError:
        return cache_error(exc, self.connection.path)  # type: ignore[attr-defined]

    execute = _guarded("execute")
    executemany = _guarded("executemany")
    executescript = _guarded("executescript")
    fetchone = _guarded("fetchone")
    fetchall = _guarded("fetchall")
    __next__ = _guarded("__next__")

    def __iter__(self) -> Iterator[Any]:
        # ``for row in cursor``: rows fetched in blocks, the guard paid once per block rather
        # than per row (a job reads ~100,000 task rows and as many sightings).
        return self._rows()

    def _rows(self) -> Iterator[Any]:
        fetch = sqlite3.Cursor.fetchmany
        try:
            while rows := fetch(self, 1024):
                yield from rows
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


class CacheStore(RunHistory, Closing):
    """The cache database. One connection per instance; open it where you use it.

    Every SQLite failure is a :class:`StateError` naming the file (a full disk, a read-only or
    removed state directory): one line, exit 2. A *damaged* cache is different: it is only a
    cache, so opening it for writing checks it (``PRAGMA quick_check``, and the row counts the
    last completed sync recorded) and rebuilds it with a warning (``rebuilt_reason``); a damaged
    file that SQLite cannot even open is moved aside first, for a post-mortem.
    """

    _verification: Any = None  # a writer's cache_check.Verification

    def __init__(self, path: Path, *, readonly: bool = False, create_dir: bool | None = None):
        """``create_dir``: may a missing state directory be made? Default: unless the state lock is
        held (then it existed, and gone means removed mid-run). False for a write that ends a run."""
        self.path = Path(path)
        self.rebuilt_reason: str | None = None  # set when the cache had to be (re)created
        if readonly:
            if not self.path.exists():
                self.check_present()
                raise StateError(str(self.path), "no cache yet; run `clinicbot sync` first")
            self.conn = self._connect(f"file:{self.path}?mode=ro", uri=True)
            return
        from clinicbot.state.fileio import create_private_file, private_dir
        from clinicbot.state.lock import StateLock

        # Under the state lock the directory exists (the lock made it): if it is gone now, it was
        # removed mid-run, and recreating it empty would quietly start a new state.
        if create_dir is None:
            create_dir = not StateLock.held(self.path.parent)
        private_dir(self.path.parent, create=create_dir)
        existed = self.path.exists() and self.path.stat().st_size > 0
        from clinicbot.state.cache_check import Verification

        self._verification = Verification(self.path)  # read before SQLite touches the file
        create_private_file(self.path)  # 0600; SQLite gives -wal/-shm the database file's mode
        mode = journal_mode(self.path.parent)
        problem = None
        try:
            self.conn = self._connect(str(self.path))
            self.conn.execute(f"PRAGMA journal_mode={mode}")
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            if version == SCHEMA_VERSION:
                problem = self._damage(pages=self._verification.needed)
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
        # In WAL mode with NORMAL the disk is synced only at checkpoints: one every 64 MB of
        # changes instead of every 4 MB (SQLite's default) spares a 100,000-task cold sync about
        # 60 of its ~70 rounds of fsyncs. Safety is the same (every commit is in the WAL).
        self.conn.execute("PRAGMA wal_autocheckpoint=16384")
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
        from clinicbot.state.lock import StateLock

        if self.path.exists() or not StateLock.held(self.path.parent):
            return
        raise StateError(str(self.path), f"removed while clinicbot was using it (was the state directory "
                         f"{self.path.parent} deleted?); restore the state directory from your backup before the "
                         "next run (a new, empty one would make every open finding fire again)")

    def _damage(self, pages: bool = True) -> str | None:
        """Why this (current-schema) cache cannot be trusted, or None.

        ``quick_check`` finds damaged pages; the row check finds rows lost without damaged
        pages (a cache that silently lost tasks gave 16 findings instead of 55 until a full sync).
        Both only when the file may have changed since a writer left it (``pages``: see
        :mod:`clinicbot.state.cache_check`); a file no one wrote since lost neither."""
        if not pages:
            return None
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
        if self._verification is not None:  # a writer records the file as it left it
            self._verification.closed()

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
        for task, board, column, seen in self._in_blocks(
                "SELECT task_phid, board_phid, column_phid, first_seen FROM sightings WHERE task_phid IN ({})", phids):
            out.setdefault(task, {})[board] = (column, seen)
        return out

    def history_modified(self, phids: list[str]) -> dict[str, int]:
        return dict(self._in_blocks("SELECT phid, task_modified FROM timelines WHERE phid IN ({})", phids))

    def _in_blocks(self, sql: str, phids: list[str], size: int = 500) -> Iterator[Any]:
        """The rows of ``sql`` (its ``IN ({})`` filled with marks) for ``phids``, ``size`` at a time."""
        for i in range(0, len(phids), size):
            chunk = phids[i:i + size]
            yield from self.conn.execute(sql.format(_marks(chunk)), chunk)

    def stale_histories(self) -> list[tuple[int, str, int]]:
        """(id, phid, modified) of cached tasks whose history is missing or older than the task."""
        return self.conn.execute(
            "SELECT t.id, t.phid, t.modified FROM tasks t LEFT JOIN timelines h ON h.phid = t.phid "
            "WHERE h.phid IS NULL OR h.task_modified != t.modified").fetchall()

    def forget_tasks(self, phids: Iterable[str]) -> int:
        if not self.conn.in_transaction:  # a caller outside the sync (check's untags): one transaction
            with self.transaction():
                return self.forget_tasks(phids)
        removed = 0
        for phid in phids:
            removed += self.conn.execute("DELETE FROM tasks WHERE phid = ?", (phid,)).rowcount
            self.conn.execute("DELETE FROM timelines WHERE phid = ?", (phid,))
            self.conn.execute("DELETE FROM sightings WHERE task_phid = ?", (phid,))
        if removed and self.get("rows") is not None:  # between syncs: the row check stays true (a sync
            self.put("rows", json.dumps(self.row_check()))  # that fetches no history keeps it as it is)
        return removed

    def sightings(self, tasks: Iterable[str] | None = None) -> dict[tuple[str, str, str], datetime]:
        """(task, board, column) -> first seen; with ``tasks`` (PHIDs), only theirs (filtered before
        the times are converted: a job loading part of the tasks converted every sighting; a JOIN
        in SQL was slower). One copy of each PHID and time (a sync dates many sightings alike:
        ~20 MB less at 100,000 tasks)."""
        utc, stamp = timezone.utc, datetime.fromtimestamp
        known: dict[str, str] = {p: p for p in tasks} if tasks is not None else {}
        places: dict[str, str] = {}
        same, times = places.setdefault, {}
        out = {}
        for t, b, c, s in self.conn.execute("SELECT task_phid, board_phid, column_phid, first_seen FROM sightings"):
            task = known.get(t)
            if task is None:
                if tasks is not None:
                    continue
                task = known.setdefault(t, t)
            at = times.get(s)
            if at is None:
                at = times[s] = stamp(s, utc)
            out[(task, same(b, b), same(c, c))] = at
        return out

    def histories(self, phids: list[str]) -> Iterator[tuple[str, str]]:
        """(phid, text) of the cached histories of ``phids`` (those the cache holds), 500 per query."""
        yield from self._in_blocks("SELECT phid, data FROM timelines WHERE data IS NOT NULL AND phid IN ({})", phids)


# --------------------------------------------------------------------------------------------
# What a job's load reads (clinicbot.sync.load_cached)


def task_filter(structure: Structure, *, open_only: bool, closed_since: datetime | None) -> tuple[str, list[Any]]:
    """The SQL condition over ``tasks`` (``{t}`` is the table prefix) that keeps what a job reads,
    "" for everything: a superset of the Python filter (a status the server does not list
    counts as open unless the task has a dateClosed, as ``parse_task`` decides)."""
    if not open_only and closed_since is None:
        return "", []
    # "\0" stands for "no status": IN () is not SQL.
    known = [s.value for s in structure.statuses] or ["\0"]
    open_values = [s.value for s in structure.statuses if not s.closed] or ["\0"]
    clause = (f"({{t}}status IN ({_marks(open_values)}) "
              f"OR ({{t}}status NOT IN ({_marks(known)}) AND {{t}}closed_at IS NULL))")
    params: list[Any] = [*open_values, *known]
    if closed_since is not None:
        cut = int(closed_since.timestamp())
        clause = f"({clause} OR {{t}}modified >= ? OR {{t}}closed_at >= ?)"
        params += [cut, cut]
    return clause, params


def _marks(values: list[Any]) -> str:
    return ",".join("?" * len(values))


def history_reader(path: Path) -> Any:
    """``phids -> (phid, text)`` of their cached histories: the cache opened read-only for each
    read and closed again (a connection left open would keep the cache's ``-wal`` after the
    job's last write, and the next run would check every page: see state/cache_check.py)."""
    def read(phids: list[str]) -> Iterator[tuple[str, str]]:
        with CacheStore(path, readonly=True) as store:
            yield from store.histories(phids)

    return read


class LazySightings(Mapping[tuple[str, str, str], datetime]):
    """The loaded tasks' sightings (see :meth:`CacheStore.sightings`), read from the cache at ``path``
    when first asked for: only a check whose server records no structured column moves reads them
    (`metrics`, `digest` and most checks never do: ~170,000 rows at 100,000 tasks)."""

    def __init__(self, path: Path, tasks: Iterable[str]):
        self.path, self.tasks = path, tasks
        self._data: dict[tuple[str, str, str], datetime] | None = None

    def _load(self) -> dict[tuple[str, str, str], datetime]:
        if self._data is None:
            with CacheStore(self.path, readonly=True) as store:
                self._data = store.sightings(self.tasks)
        return self._data

    def loaded(self) -> bool:
        return self._data is not None

    def __getitem__(self, key: tuple[str, str, str]) -> datetime:
        return self._load()[key]

    def __iter__(self) -> Iterator[tuple[str, str, str]]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())
