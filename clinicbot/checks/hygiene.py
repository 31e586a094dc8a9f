"""Board hygiene: every task on the team's internal board has an owner from the team.

- ``unassigned-on-internal-board``: an open task sits on an internal board, in a column whose
  role is not in ``excluded_roles`` (by default the inboxes and done: work nobody has triaged
  yet, or that is finished), and has had no owner from the team for ``hours``: nobody owns it,
  or its owner is not a team member (``team.members`` and the rotation; any human when no team
  is known; a bot never counts).

Which boards are internal: ``boards`` lists them (a watched board's name, #hashtag or PHID);
left empty, every watched board without an external review column (``review_needed``,
``review_in_progress`` or ``discussing``) is internal. A name that is no watched board stops
the run with a config error naming ``checks.unassigned-on-internal-board.boards[i]``.

The clock starts at the later of the task's entry into the column and the latest owner change
(when it lost its owner, or got one from outside the team). Columns without a role are not
judged (the config does not say what they are for).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from clinicbot.checks._common import (
    age_facts,
    column_facts,
    describe_span,
    is_engineer,
    other_places,
    setting,
    task_finding,
    valid_roles,
    where,
)
from clinicbot.checks.base import CheckContext, Finding
from clinicbot.checks.exempt import project_phid
from clinicbot.checks.hours import age
from clinicbot.checks.settings import default_error
from clinicbot.model import Column, Snapshot, Task

EXTERNAL_ROLES = ("review_needed", "review_in_progress", "discussing")
UNJUDGED_ROLES = ["inbox", "triage_meeting_inbox", "done"]
NO_OWNER = "no-owner"
NOT_TEAM = "owner-not-in-team"


def _board_names(value: list) -> str | None:
    bad = [v for v in value if not isinstance(v, str) or not v.strip()]
    return f"must list boards by name, #hashtag or PHID; not {bad[0]!r}" if bad else None


def internal_boards(ctx: CheckContext, slug: str) -> set[str]:
    """PHIDs of the boards the check treats as internal (see the module docstring)."""
    snapshot = ctx.snapshot
    named = setting(ctx, "boards", [])
    if not named:
        return {b.phid for b in snapshot.boards.values()
                if not any(c.role in EXTERNAL_ROLES for c in b.columns)}
    found = set()
    for i, ident in enumerate(named):
        phid = project_phid(snapshot, ident.strip())
        if phid not in snapshot.boards:
            watched = ", ".join(f"{b.name} (#{b.slug})" if b.slug else b.name for b in snapshot.boards.values())
            raise (ctx.config_error or default_error)(
                f"checks.{slug}.boards[{i}]", f"{ident!r} is not a watched board; watched boards: {watched}")
        found.add(phid)
    return found


def _unowned_since(snapshot: Snapshot, task: Task, column: Column) -> tuple[datetime, bool]:
    """When the task's clock started in ``column``: the later of its entry and the latest owner change."""
    since, approximate = snapshot.entered_column(task, column)
    timeline = snapshot.timelines.get(task.phid)
    changes = [e.at for e in timeline.of_kind("owner")] if timeline is not None else []
    if changes and max(changes) > since:
        return max(changes), False
    return since, approximate


class UnassignedOnInternalBoardCheck:
    slug = "unassigned-on-internal-board"
    description = ("An open task on an internal board, in a column whose role is not excluded (inboxes and done "
                   "by default), has had no owner from the team for `hours`.")
    defaults: Mapping[str, Any] = {"hours": 24, "boards": [], "excluded_roles": UNJUDGED_ROLES}
    setting_types: Mapping[str, Any] = {"hours": (int, float), "boards": list, "excluded_roles": list}
    validators: Mapping[str, Any] = {"boards": _board_names, "excluded_roles": valid_roles}

    def run(self, ctx: CheckContext) -> list[Finding]:
        snapshot = ctx.snapshot
        hours = setting(ctx, "hours", 24)
        excluded = set(setting(ctx, "excluded_roles", UNJUDGED_ROLES))
        boards = internal_boards(ctx, self.slug)
        findings = []
        non_human = snapshot.non_human_phids()
        for task in sorted(snapshot.tasks.values(), key=lambda t: (t.created, t.id)):
            if task.is_closed or is_engineer(snapshot, task.owner_phid, non_human):
                continue
            entries = [(task, column) for board_phid, column_phid in task.columns.items()
                       if board_phid in boards
                       for column in [snapshot.boards[board_phid].column(column_phid)]
                       if column is not None and column.role is not None and column.role not in excluded]
            if not entries:
                continue
            dated = [(_unowned_since(snapshot, t, c), c) for t, c in entries]
            (since, approximate), column = min(dated, key=lambda d: d[0][0])
            waited = age(ctx, since)
            if waited.total_seconds() < hours * 3600:
                continue
            owner = snapshot.username(task.owner_phid)
            reason = NOT_TEAM if owner else NO_OWNER
            state = f"is owned by {owner}, who is not on the team," if owner else "has had no owner"
            findings.append(task_finding(
                self.slug, snapshot, task, severity="info",
                summary=(f"{task.monogram} {task.title} {state} for {'about ' if approximate else ''}"
                         f"{describe_span(ctx, waited)} in {where(snapshot, column)}"),
                **column_facts(snapshot, column),
                **age_facts(ctx, since, waited, threshold_hours=hours),
                role=column.role,
                reason=reason,
                approximate=approximate,
                other_places=other_places(snapshot, entries, column),
            ))
        return findings


__all__ = ["UnassignedOnInternalBoardCheck", "internal_boards", "EXTERNAL_ROLES", "UNJUDGED_ROLES"]
