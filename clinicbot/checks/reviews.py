"""Review board checks: work handed over for review, or for the team's advice, must not be forgotten.

- ``review-needed``: a task in a ``review_needed`` column has had no response from the team
  for ``days`` since it entered the column (a response, not a move: someone has to look).
- ``waiting-for-review``: a task has sat in a ``waiting_for_review`` column for ``days``
  (waiting on someone outside the team; a nudge to chase it, so only "info").
- ``discussing-unanswered``: a task in a ``discussing`` column waits for the team's input or
  advice and no team member has answered for ``days`` since it entered the column.
- ``discussing-answered``: a task in a ``discussing`` column that a team member has answered
  since it entered (``hours`` ago or more): the process takes it off the board once the input is
  given, so the digest lists these (severity info).

The two discussing checks split the Discussing column between them: a task with history is in
exactly one of them once its threshold has passed ("answered" means what ``unanswered`` means
for a dwell check: a comment, or an owner, priority, status or column change, by a team member
who is not the task's author, after the task entered the column).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Mapping

from clinicbot.checks._common import (
    age_facts,
    column_facts,
    describe_span,
    iso,
    other_places,
    placements,
    setting,
    task_finding,
    team_answer,
    where,
)
from clinicbot.checks.base import CheckContext, Finding
from clinicbot.checks.dwell import ColumnDwellCheck
from clinicbot.checks.hours import age
from clinicbot.model import Column, Snapshot, Task


class ReviewNeededCheck(ColumnDwellCheck, slug="review-needed", roles=("review_needed",), severity="warning",
                        unanswered=True):
    """A task in a review-needed column has waited `days` for the team's first response."""


class WaitingForReviewCheck(ColumnDwellCheck, slug="waiting-for-review", roles=("waiting_for_review",)):
    """A task has been in a waiting-for-review column for `days`."""


class DiscussingUnansweredCheck(ColumnDwellCheck, slug="discussing-unanswered", roles=("discussing",),
                                severity="warning", unanswered=True,
                                summary="{task} {title} has waited {about}{age} in {where} for the team's input"):
    """A task in a discussing column has waited `days` for a team member's input or advice."""


def first_answered(snapshot: Snapshot, entries: list[tuple[Task, Column]]) -> tuple[Any, ...] | None:
    """Of one task's discussing placements, the one the team answered first since the task entered
    it: (answer event, entered, approximate, task, column); None when no placement is answered."""
    answered = []
    for task, column in entries:
        since, approximate = snapshot.entered_column(task, column)
        answer = team_answer(snapshot, task, since)
        if answer is not None:
            answered.append((answer, since, approximate, task, column))
    return min(answered, key=lambda a: a[0].at) if answered else None


class DiscussingAnsweredCheck:
    """A team member has answered a task in a discussing column since it entered the column (at least
    `hours` ago): the process takes it off the board; the digest lists these."""

    slug = "discussing-answered"
    description = " ".join(__doc__.split()) if __doc__ else ""
    defaults: Mapping[str, Any] = {"hours": 0}

    def run(self, ctx: CheckContext) -> list[Finding]:
        hours = setting(ctx, "hours", 0)
        snapshot, findings = ctx.snapshot, []
        for entries in placements(snapshot, ["discussing"]).values():
            first = first_answered(snapshot, entries)
            if first is None:
                continue
            answer, since, approximate, task, column = first
            waited = age(ctx, answer.at)
            if waited < timedelta(hours=hours):
                continue
            who = snapshot.username(answer.author_phid)
            answered = {"answered_by": who, "answered_at": iso(answer.at), "answer_kind": answer.kind,
                        "entered_at": iso(since), "approximate": approximate,
                        "other_places": other_places(snapshot, entries, column)}
            summary = (f"{task.monogram} {task.title} in {where(snapshot, column)} was answered by {who} "
                       f"{describe_span(ctx, waited)} ago: take it off the board")
            findings.append(task_finding(self.slug, snapshot, task, severity="info", summary=summary,
                                         **column_facts(snapshot, column),
                                         **age_facts(ctx, answer.at, waited, threshold_hours=hours), **answered))
        return findings


__all__ = ["ReviewNeededCheck", "WaitingForReviewCheck", "DiscussingUnansweredCheck", "DiscussingAnsweredCheck"]
