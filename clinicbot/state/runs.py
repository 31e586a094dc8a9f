"""The scheduler's run history (written by the scheduler, read by ``clinicbot status``).

It is the ``runs`` table of the cache database (:mod:`clinicbot.state.cache`): one file to
lock, back up and check. It is not cache data, so it survives a cache rebuild (the rebuild
drops only the cache tables). :class:`RunHistory` holds its queries; ``CacheStore`` mixes it in.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

RUNS_DDL = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, started REAL NOT NULL, finished REAL,
    outcome TEXT NOT NULL, duration REAL, calls INTEGER, attempts INTEGER, detail TEXT, pid INTEGER);
CREATE INDEX IF NOT EXISTS runs_job ON runs (job, started);
"""


class RunHistory:
    """The run-history queries over ``self.conn`` (the cache database's connection)."""

    conn: sqlite3.Connection

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
