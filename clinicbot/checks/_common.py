"""Helpers the check families share: who counts as a human, when a task entered a column,
the facts every task finding carries and the finding itself.

Kept apart from the families so that each family module reads as "what is off", not "how
to dig it out of a timeline". Nothing here does I/O or reads the clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from clinicbot.checks.base import CheckContext, Finding
from clinicbot.checks.hours import age, in_days, in_hours
from clinicbot.model import COLUMN_ROLES, Column, Snapshot, Task, iso


def setting(ctx: CheckContext, key: str, default: Any) -> Any:
    """A threshold from the merged settings; ``default`` only when a hand-built context lacks it."""
    value = ctx.settings.get(key) if ctx.settings else None
    return default if value is None else value


def exempt(ctx: CheckContext, task: Task) -> bool:
    """The check's ``exempt`` setting covers ``task``: leave it out of findings that list tasks
    (the registry drops findings about one exempt task by itself)."""
    covered = getattr(ctx, "exempt", None)
    return covered is not None and covered.covers(task)


def on_watched_board(snapshot: Snapshot, task: Task) -> bool:
    return any(b in snapshot.boards for b in task.columns)


def responders(snapshot: Snapshot) -> frozenset[str] | None:
    """Whose answers count as a team response: the team, or anyone human when no team is known."""
    return snapshot.team_member_phids or None


def response_exclusions(snapshot: Snapshot, task: Task) -> frozenset[str]:
    """Bots never respond, and the author answering their own task is not a response."""
    excluded = set(snapshot.non_human_phids())
    if task.author_phid:
        excluded.add(task.author_phid)
    return frozenset(excluded)


def team_answer(snapshot: Snapshot, task: Task, since: datetime) -> Any:
    """The team's first response to ``task`` after ``since`` (a timeline Event), None when nobody
    on the team has answered or the task has no history."""
    timeline = snapshot.timelines.get(task.phid)
    if timeline is None:
        return None
    return timeline.first_response(since, exclude=response_exclusions(snapshot, task), responders=responders(snapshot))


def valid_roles(value: list) -> str | None:
    """Validator of settings that list column roles."""
    bad = [r for r in value if r not in COLUMN_ROLES]
    return f"unknown column role(s) {bad}; roles are: {', '.join(COLUMN_ROLES)}" if bad else None


def is_engineer(snapshot: Snapshot, phid: str | None, non_human: frozenset[str] | None = None) -> bool:
    """A human the checks may hold to account: a team member, or any human when no team is known.
    ``non_human``: ``snapshot.non_human_phids()``, when the caller asks about many tasks."""
    if not phid or phid in (snapshot.non_human_phids() if non_human is None else non_human):
        return False
    return phid in snapshot.team_member_phids if snapshot.team_member_phids else True


def created_at(snapshot: Snapshot, task: Task) -> datetime:
    timeline = snapshot.timelines.get(task.phid)
    if timeline is not None:
        at = timeline.created_at()
        if at is not None:
            return at
    return task.created


def priority_value(value: Any) -> int | None:
    """A priority as a transaction carries it: {"value": 100, "name": ...}, 100 or "100"."""
    if isinstance(value, dict):
        value = value.get("value")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


def priority_set_at(snapshot: Snapshot, task: Task, value: int) -> datetime:
    """When the task last got priority ``value``: the latest priority event to it, else creation
    (tasks are filed with a priority, which not every server reports as a transaction)."""
    timeline = snapshot.timelines.get(task.phid)
    if timeline is not None:
        events = [e for e in timeline.of_kind("priority") if priority_value(e.new) == value]
        if events:
            return max(e.at for e in events)
    return created_at(snapshot, task)


def task_facts(snapshot: Snapshot, task: Task) -> dict[str, Any]:
    """What every task finding carries, so templates can say which task without a lookup."""
    return {**snapshot.task_fields(task), "task_id": task.id, "task_phid": task.phid}


def task_finding(slug: str, snapshot: Snapshot, task: Task, /, *, severity: str, summary: str,
                 subject: str = "", **facts: Any) -> Finding:
    """A finding about one task: its summary made one line, its facts the task's own
    (``task_facts``) followed by ``facts``."""
    return Finding(
        slug=slug,
        task_phid=task.phid,
        task_id=task.id,
        severity=severity,
        summary=one_line(summary),
        facts={**task_facts(snapshot, task), **facts},
        subject=subject,
    )


def column_facts(snapshot: Snapshot, column: Column) -> dict[str, Any]:
    board = snapshot.boards.get(column.board_phid)
    return {
        "column": column.name,
        "column_phid": column.phid,
        "board": board.name if board else column.board_phid,
        "board_phid": column.board_phid,
    }


def placements(snapshot: Snapshot, roles: Iterable[str]) -> dict[str, list[tuple[Task, Column]]]:
    """Open tasks in columns of the given roles, grouped by task PHID (a task may sit in such a
    column on several boards: it gets one finding, not one per board)."""
    grouped: dict[str, list[tuple[Task, Column]]] = {}
    for role in roles:
        for task, column in snapshot.tasks_with_role(role, open_only=True):
            grouped.setdefault(task.phid, []).append((task, column))
    return grouped


def where(snapshot: Snapshot, column: Column) -> str:
    board = snapshot.boards.get(column.board_phid)
    return f"{board.name if board else column.board_phid}: {column.name}"


def plural(n: float, word: str) -> str:
    shown = int(n) if float(n).is_integer() else n
    return f"{shown} {word}" if n == 1 else f"{shown} {word}s"


def oldest_placement(ctx: CheckContext, entries: list[tuple[Task, Column]]) -> tuple[Task, Column, datetime, bool, Any]:
    """Of one task's placements, the one it has waited in longest: (task, column, since,
    approximate, age). Ties keep the board order the snapshot gave."""
    best = None
    for task, column in entries:
        since, approximate = ctx.snapshot.entered_column(task, column)
        waited = age(ctx, since)
        if best is None or waited > best[4]:
            best = (task, column, since, approximate, waited)
    assert best is not None
    return best


def other_places(snapshot: Snapshot, entries: list[tuple[Task, Column]], chosen: Column) -> list[str]:
    return [where(snapshot, c) for _, c in entries if c is not chosen]


def one_line(text: str) -> str:
    """Summaries are one plain line, whatever a title contains."""
    return " ".join(str(text).split())


def describe_age(ctx: CheckContext, delta: Any, unit: str) -> str:
    """'52 hours', '9 working days' — in the unit the threshold is given in."""
    working = "working " if getattr(ctx, "business_hours", None) is not None else ""
    if unit == "hours":
        n: float = in_hours(delta)
        return plural(n, f"{working}hour")
    n = in_days(ctx, delta)
    return plural(n, f"{working}day")


def describe_span(ctx: CheckContext, delta: Any) -> str:
    """'5 hours' below two days (working days with business hours), '3 days' from there on."""
    return describe_age(ctx, delta, "days" if in_days(ctx, delta) >= 2 else "hours")


def age_facts(ctx: CheckContext, since: datetime, waited: Any, **thresholds: Any) -> dict[str, Any]:
    return {
        "since": iso(since),
        "age_hours": in_hours(waited),
        "age_days": in_days(ctx, waited),
        "business_hours": getattr(ctx, "business_hours", None) is not None,
        **thresholds,
    }
