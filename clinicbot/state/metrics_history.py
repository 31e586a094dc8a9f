"""The metrics history and the reports' own memory: one TinyDB file, ``metrics.json``, in the state directory.

Tables:

* ``metrics``  — one summary per computation (``Metrics.summary()``), keyed by its ``now`` so
  recomputing for the same moment replaces instead of duplicating; the metrics page draws
  trends from it.
* ``agendas``  — the task list of each triage meeting agenda, keyed by meeting date, so the
  next agenda can flag what is carried over.
* ``reports``  — when a report was last delivered (the digest's "since the last digest").

Writes are atomic (temporary file + fsync + ``os.replace``): a crash, a full disk or a read-only
directory leaves the old file whole. The file is 0600 in the 0700 state directory. A corrupt
file, or a failed read or write, is a :class:`StateError` naming it, not a traceback.
"""

from __future__ import annotations

import json
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB
from tinydb.storages import Storage

from clinicbot.errors import StateError
from clinicbot.model import Closing
from clinicbot.state.fileio import atomic_write, private_dir, state_error

FILENAME = "metrics.json"


class AtomicJSONStorage(Storage):
    """TinyDB storage that never leaves a half-written file behind."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def read(self) -> dict[str, dict[str, Any]] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise state_error(exc, self.path, "cannot read the metrics history") from None
        except UnicodeDecodeError:
            raise StateError(str(self.path), "not UTF-8 text; move it aside to start a new metrics history") from None
        if not text.strip():
            return None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise StateError(str(self.path), f"not valid JSON ({exc}); move it aside to start a new metrics history") from None
        if not isinstance(data, dict):
            raise StateError(str(self.path), "not a TinyDB file; move it aside to start a new metrics history")
        return data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        from clinicbot.state.lock import StateLock

        # Never recreate a state directory removed mid-run (the lock's holder made it).
        private_dir(self.path.parent, create=not StateLock.held(self.path.parent))
        text = json.dumps(data, sort_keys=True)
        atomic_write(self.path, text, action="cannot write the metrics history",
                     intact=f"{self.path.name} still holds the previous history")

    def close(self) -> None:
        pass


class MetricsStore(Closing):
    def __init__(self, state_dir: str | os.PathLike[str]):
        self.path = Path(state_dir) / FILENAME
        self.db = TinyDB(self.path, storage=AtomicJSONStorage)

    def close(self) -> None:
        self.db.close()

    # -- metrics history ---------------------------------------------------------------------
    def record(self, summary: dict[str, Any]) -> None:
        """Keep one computation's summary (must hold ``now``, an ISO string)."""
        self.db.table("metrics").upsert(dict(summary), Query().now == summary["now"])

    def history(self) -> list[dict[str, Any]]:
        """Every stored summary, oldest first."""
        rows = [dict(r) for r in self.db.table("metrics").all()]
        return sorted(rows, key=lambda r: datetime.fromisoformat(r["now"]))

    # -- agendas -------------------------------------------------------------------------------
    def save_agenda(self, meeting: date, task_ids: list[int], generated_at: datetime) -> None:
        self.db.table("agendas").upsert(
            {"meeting": meeting.isoformat(), "tasks": sorted(set(task_ids)), "generated_at": generated_at.isoformat()},
            Query().meeting == meeting.isoformat())

    def previous_agenda(self, meeting: date) -> dict[str, Any] | None:
        """The latest agenda for a meeting *before* ``meeting`` ({meeting, tasks, generated_at})."""
        earlier = [dict(r) for r in self.db.table("agendas").all() if r["meeting"] < meeting.isoformat()]
        return max(earlier, key=lambda r: r["meeting"]) if earlier else None

    # -- deliveries ----------------------------------------------------------------------------
    def mark_report(self, kind: str, at: datetime) -> None:
        """Remember that a ``kind`` report (e.g. "digest") was delivered at ``at``."""
        self.db.table("reports").upsert({"kind": kind, "at": at.isoformat()}, Query().kind == kind)

    def last_report(self, kind: str) -> datetime | None:
        rows = self.db.table("reports").search(Query().kind == kind)
        return datetime.fromisoformat(rows[0]["at"]) if rows else None
