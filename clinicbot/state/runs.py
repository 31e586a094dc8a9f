"""The run history: every run that posts or changes state (read by ``clinicbot status``).

``serve``'s jobs, ``serve --once``, ``sync`` and the applied one-shot commands (``check --apply``,
``digest|agenda|metrics --apply``, ``rotation --publish --apply``) each add one row: job, trigger
(serve / once / manual), the command, start, end, outcome, Conduit calls and writes
(:mod:`clinicbot.jobs.runlog` writes them).

It is the ``runs`` table of the cache database (:mod:`clinicbot.state.cache`): one file to
lock, back up and check. It is not cache data, so it survives a cache rebuild (the rebuild
drops only the cache tables). :class:`RunHistory` holds its queries; ``CacheStore`` mixes it in.
A ``runs`` table made by an older clinicbot gains the newer columns on the first write
(``ALTER TABLE ... ADD COLUMN``); read-only readers see them as empty until then.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

RUNS_DDL = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, started REAL NOT NULL, finished REAL,
    outcome TEXT NOT NULL, duration REAL, calls INTEGER, attempts INTEGER, detail TEXT, pid INTEGER,
    trigger TEXT, command TEXT, writes INTEGER);
CREATE INDEX IF NOT EXISTS runs_job ON runs (job, started);
"""
# Columns added after the first release of the table: (name, SQL type).
ADDED_COLUMNS = (("trigger", "TEXT"), ("command", "TEXT"), ("writes", "INTEGER"))
RUN_KEYS = ("id", "job", "started", "finished", "outcome", "duration", "calls", "attempts", "detail", "pid",
            "trigger", "command", "writes")


class RunHistory:
    """The run-history queries over ``self.conn`` (the cache database's connection)."""

    conn: sqlite3.Connection

    def _run_columns(self) -> set[str]:
        return {row[1] for row in self.conn.execute("PRAGMA table_info(runs)")}

    def _upgrade_runs(self) -> None:
        """Add the columns an older ``runs`` table lacks (writers only: a read-only reader copes)."""
        have = self._run_columns()
        for name, kind in ADDED_COLUMNS:
            if name not in have:
                self.conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")

    def run_started(self, job: str, started: float, *, trigger: str = "serve", command: str = "") -> int:
        """A run begins: ``trigger`` is serve (a scheduled job), once (``serve --once``) or manual
        (a one-shot command); ``command`` is what was run, for humans (``check --apply``)."""
        self._upgrade_runs()
        cur = self.conn.execute(
            "INSERT INTO runs (job, started, outcome, pid, trigger, command) VALUES (?, ?, 'running', ?, ?, ?)",
            (job, started, os.getpid(), trigger, command or job))
        return int(cur.lastrowid or 0)

    def run_finished(self, run_id: int, *, finished: float, outcome: str, calls: int, attempts: int,
                     detail: str = "", writes: int | None = None) -> None:
        """A run ended. ``writes``: what it posted or changed on the server or sent (None: unknown)."""
        self._upgrade_runs()
        self.conn.execute(
            "UPDATE runs SET finished = ?, outcome = ?, duration = ? - started, calls = ?, attempts = ?, detail = ?, "
            "writes = ? WHERE id = ?", (finished, outcome, finished, calls, attempts, detail[:500], writes, run_id))

    def forget_run(self, run_id: int) -> None:
        """Remove a run that never began its work (refused by the state lock another run holds)."""
        self.conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def _select_runs(self, where: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        have = self._run_columns()
        cols = ", ".join(k if k in have else f"NULL AS {k}" for k in RUN_KEYS)
        rows = self.conn.execute(f"SELECT {cols} FROM runs r {where}", args).fetchall()
        return [dict(zip(RUN_KEYS, row)) for row in rows]

    def last_runs(self) -> dict[str, dict[str, Any]]:
        """Each job's latest run (any trigger)."""
        rows = self._select_runs("WHERE id = (SELECT MAX(id) FROM runs WHERE job = r.job)")
        return {row["job"]: row for row in rows}

    def recent_runs(self, limit: int = 10) -> list[dict[str, Any]]:
        """The latest ``limit`` runs of every job, newest first (``serve`` itself left out)."""
        return self._select_runs("WHERE job != 'serve' ORDER BY id DESC LIMIT ?", (limit,))

    def last_finished(self) -> dict[str, float]:
        """Each job's latest start among runs that finished (any outcome): a run killed mid-way
        has no ``finished`` and does not count (serve runs its slot again at start)."""
        rows = self.conn.execute("SELECT job, MAX(started) FROM runs WHERE finished IS NOT NULL GROUP BY job")
        return {job: started for job, started in rows}

    def prune_runs(self, keep: int = 2000) -> None:
        self.conn.execute("DELETE FROM runs WHERE id <= (SELECT MAX(id) FROM runs) - ?", (keep,))

    def close_stale_runs(self) -> int:
        """Runs left 'running' by a process that died (not this one): marked 'interrupted'."""
        rows = self.conn.execute("SELECT id, pid FROM runs WHERE outcome = 'running'").fetchall()
        stale = [rid for rid, pid in rows if pid != os.getpid() and not alive(pid)]
        for rid in stale:
            self.conn.execute("UPDATE runs SET outcome = 'interrupted' WHERE id = ?", (rid,))
        return len(stale)


def alive(pid: int | None) -> bool:
    """Whether process ``pid`` exists (a run's process; False for a missing pid)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
