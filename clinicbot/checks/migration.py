"""``review-migration``: review tasks still sitting in the review columns of the old (internal) board.

The clinic-duty process moved code reviews from the team's internal board to an external review
board; the tasks still in the old board's review columns are to be moved "when they would
transition between columns" to the matching column of the new board. clinicbot lists them (the
digest and the agenda can show the findings) and, with the ``move`` handler and ``--apply``, moves
each one (``maniphest.edit`` ``column``, tagging the new board in the same edit; docs/actions.md).

Interpretation of "when it would transition". clinicbot cannot know when a person would next
move a task, so the move *is* that transition: a listed task is moved at the next applied run
(``trigger: now``, the default). With ``trigger: transition`` only tasks that changed column on the
old board on or after ``since`` (they are being worked on: the process moves those) are moved;
the others are listed as waiting for their next move (``move_due: false``) and the ``move``
handler skips them.

Settings (``checks.review-migration``):

- ``from_board``, ``to_board``: the old and the new board (project name, ``#hashtag`` or PHID);
  both must be watched boards (``boards:``), so their columns are known. Unset: nothing to do.
- ``roles``: the review roles of the old board's columns (default ``review_needed``,
  ``review_in_progress``, ``waiting_for_review``, ``discussing``).
- ``columns``: an explicit map old column name -> new column name; a column not in it goes to
  the new board's column of the same role.
- ``trigger`` (``now`` | ``transition``) and ``since`` (a date, ``YYYY-MM-DD``) as above.

One finding per task in such a column that is not on the new board yet (a task already on the new
board has been migrated, wherever it is there: nothing to do, even if it still shows on the old
board). Closed tasks never fire. Facts: ``from_board``, ``from_column``, ``to_board``,
``to_board_phid``, ``to_column`` and ``to_column_phid`` (None when no column matches: the summary
says to map it), ``since`` (entered the old column), ``move_due``.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any, Mapping

from clinicbot.checks._common import column_facts, setting, task_finding, where
from clinicbot.checks.base import CheckContext, Finding
from clinicbot.model import COLUMN_ROLES, Board, Column, Snapshot

REVIEW_ROLES = ("review_needed", "review_in_progress", "waiting_for_review", "discussing")
TRIGGERS = ("now", "transition")


def find_board(snapshot: Snapshot, ref: str) -> Board | None:
    """A watched board by PHID, ``#hashtag`` or name (case-insensitive)."""
    ref = ref.strip()
    for board in snapshot.boards.values():
        if ref in (board.phid, f"#{board.slug}") or (board.slug and ref == board.slug) \
                or board.name.casefold() == ref.casefold():
            return board
    return None


def parse_day(value: str) -> str | None:
    """Validator of ``since``: an ISO date."""
    try:
        date.fromisoformat(value)
    except ValueError:
        return f"{value!r} is not a date like 2026-01-31"
    return None


def _roles(value: list) -> str | None:
    bad = [r for r in value if r not in COLUMN_ROLES]
    return f"unknown column role(s) {', '.join(map(str, bad))}; roles are: {', '.join(COLUMN_ROLES)}" if bad else None


def _columns(value: dict) -> str | None:
    if not all(isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()):
        return "must map old column names to new column names (strings)"
    return None


def target_column(old: Column, new_board: Board, mapping: Mapping[str, str]) -> Column | None:
    """The new board's column for ``old``: named in ``mapping``, else the one of the same role."""
    wanted = {k.casefold(): v for k, v in mapping.items()}.get(old.name.casefold())
    if wanted is not None:
        return next((c for c in new_board.columns if c.name.casefold() == wanted.casefold()), None)
    if old.role is None:
        return None
    same = [c for c in new_board.columns if c.role == old.role and not c.hidden]
    return same[0] if same else None


class ReviewMigrationCheck:
    """A review task still sits in a review column of the old board instead of the external review board."""

    slug = "review-migration"
    description = "A review task still sits in a review column of the old board instead of the external review board."
    defaults: Mapping[str, Any] = {"from_board": "", "to_board": "", "roles": list(REVIEW_ROLES), "columns": {},
                                   "trigger": "now", "since": None}
    setting_types = {"since": (str,)}
    validators = {"roles": _roles, "columns": _columns, "since": parse_day,
                  "trigger": lambda v: None if v in TRIGGERS else f"must be one of {', '.join(TRIGGERS)}, not {v!r}"}

    def run(self, ctx: CheckContext) -> list[Finding]:
        snapshot = ctx.snapshot
        old_ref, new_ref = str(setting(ctx, "from_board", "")), str(setting(ctx, "to_board", ""))
        if not old_ref.strip() or not new_ref.strip():
            return []  # not configured
        old, new = find_board(snapshot, old_ref), find_board(snapshot, new_ref)
        for ref, board, key in ((old_ref, old, "from_board"), (new_ref, new, "to_board")):
            if board is None:
                raise ValueError(f"checks.{self.slug}.{key}: {ref!r} is not a watched board; add it to boards:")
        assert old is not None and new is not None
        roles = set(setting(ctx, "roles", REVIEW_ROLES))
        mapping = dict(setting(ctx, "columns", {}))
        transition = setting(ctx, "trigger", "now") == "transition"
        since_day = setting(ctx, "since", None)
        since = datetime.combine(date.fromisoformat(since_day), datetime.min.time(), timezone.utc) if since_day else None
        review = [c for c in old.columns if c.role in roles or c.name.casefold() in {k.casefold() for k in mapping}]
        findings = []
        for task, column in snapshot.tasks_in_columns(review):
            if new.phid in task.columns:
                continue  # already on the new board: migrated
            entered, approximate = snapshot.entered_column(task, column)
            due = not transition or (since is not None and entered >= since and not approximate)
            target = target_column(column, new, mapping)
            if target is None:
                summary = (f"{task.monogram} {task.title} is still in {where(snapshot, column)}; no column of "
                           f"{new.name} matches: map it in checks.{self.slug}.columns")
            else:
                summary = (f"{task.monogram} {task.title} is still in {where(snapshot, column)}; it belongs in "
                           f"{where(snapshot, target)}")
                if not due:
                    summary += " (moved at its next column change)"
            facts = {f"from_{k}": v for k, v in column_facts(snapshot, column).items()}
            findings.append(task_finding(
                self.slug, snapshot, task, severity="info", summary=summary, **facts,
                to_board=new.name, to_board_phid=new.phid, to_column=target.name if target else None,
                to_column_phid=target.phid if target else None, since=entered.isoformat(), approximate=approximate,
                move_due=due,
            ))
        return findings


__all__ = ["REVIEW_ROLES", "ReviewMigrationCheck", "find_board", "target_column"]
