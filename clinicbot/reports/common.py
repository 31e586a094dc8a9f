"""What every report row shares: people, times, a task's fields, boards.

Reports are plain data (see :mod:`clinicbot.reports.digest`, :mod:`clinicbot.reports.agenda` and
:mod:`clinicbot.reports.metrics_page`): times are ISO 8601 UTC strings, durations are hours
(floats), task text is raw (templates escape it for their medium).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Iterable

from clinicbot.metrics import hours_between
from clinicbot.model import Column, Person, Snapshot, Task, iso

DIGEST_LOOKBACK = timedelta(hours=24)  # "since the last digest" when no digest was delivered yet
EXCERPT_CHARS = 200
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def person(member: Any) -> dict[str, str] | None:
    """A rotation Member (or anything with .username/.name/.email/.chat) as plain data."""
    if member is None:
        return None
    return Person(member.username, getattr(member, "name", "") or "", getattr(member, "email", "") or "",
                  getattr(member, "chat", "") or "").to_dict()


def hours(start: datetime, end: datetime) -> float:
    return round(hours_between(start, end), 2)


def task_row(snapshot: Snapshot, task: Task) -> dict[str, Any]:
    """The fields every report row shows about a task."""
    fields = snapshot.task_fields(task)
    return {**fields, "author": fields["author"] or None, "owner": fields["owner"] or None, "id": task.id,
            "priority_value": task.priority, "created": iso(task.created), "age_hours": hours(task.created, snapshot.now)}


def unique_tasks(pairs: Iterable[tuple[Task, Column]]) -> list[tuple[Task, list[Column]]]:
    """A task in the inbox of two boards is one row naming both boards."""
    out: dict[str, tuple[Task, list[Column]]] = {}
    for task, col in pairs:
        out.setdefault(task.phid, (task, []))[1].append(col)
    return list(out.values())


def board_name(snapshot: Snapshot, col: Column) -> str:
    board = snapshot.boards.get(col.board_phid)
    return board.name if board else col.board_phid

