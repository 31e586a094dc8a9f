"""Review checks: work handed over for review must not be forgotten.

- ``review-needed``: a task in a ``review_needed`` column has had no response from the team
  for ``days`` since it entered the column (a response, not a move: someone has to look).
- ``waiting-for-review``: a task has sat in a ``waiting_for_review`` column for ``days``
  (waiting on someone outside the team; a nudge to chase it, so only "info").
"""

from __future__ import annotations

from typing import Any, Mapping

from clinicbot.checks._common import (
    age_facts,
    column_facts,
    describe_age,
    oldest_placement,
    other_places,
    placements,
    response_exclusions,
    responders,
    setting,
    task_finding,
    where,
)
from clinicbot.checks.base import CheckContext, Finding
from clinicbot.checks.hours import days_threshold


class ReviewNeededCheck:
    slug = "review-needed"
    description = "A task in a review-needed column has waited `days` for the team's first response."
    defaults: Mapping[str, Any] = {"days": 7}

    def run(self, ctx: CheckContext) -> list[Finding]:
        snapshot = ctx.snapshot
        days = setting(ctx, "days", 7)
        limit = days_threshold(ctx, days)
        findings = []
        for entries in placements(snapshot, ["review_needed"]).values():
            task = entries[0][0]
            timeline = snapshot.timelines.get(task.phid)
            if timeline is None:
                # No history: we cannot tell whether someone answered, so we do not claim nobody did.
                continue
            exclude = response_exclusions(snapshot, task)
            who = responders(snapshot)
            waiting = []
            for _, column in entries:
                since, approximate = snapshot.entered_column(task, column)
                if timeline.first_response(since, exclude=exclude, responders=who) is None:
                    waiting.append((task, column))
            if not waiting:
                continue
            task, column, since, approximate, waited = oldest_placement(ctx, waiting)
            if waited < limit:
                continue
            findings.append(task_finding(
                self.slug, snapshot, task, severity="warning",
                summary=(f"{task.monogram} {task.title} has waited {'about ' if approximate else ''}"
                         f"{describe_age(ctx, waited, 'days')} in {where(snapshot, column)} "
                         "without a response from the team"),
                **column_facts(snapshot, column),
                **age_facts(ctx, since, waited, threshold_days=days),
                approximate=approximate,
                other_places=other_places(snapshot, entries, column),
            ))
        return findings


class WaitingForReviewCheck:
    slug = "waiting-for-review"
    description = "A task has been in a waiting-for-review column for `days`."
    defaults: Mapping[str, Any] = {"days": 7}

    def run(self, ctx: CheckContext) -> list[Finding]:
        snapshot = ctx.snapshot
        days = setting(ctx, "days", 7)
        limit = days_threshold(ctx, days)
        findings = []
        for entries in placements(snapshot, ["waiting_for_review"]).values():
            task, column, since, approximate, waited = oldest_placement(ctx, entries)
            if waited < limit:
                continue
            findings.append(task_finding(
                self.slug, snapshot, task, severity="info",
                summary=(f"{task.monogram} {task.title} has been in {where(snapshot, column)} for "
                         f"{'about ' if approximate else ''}{describe_age(ctx, waited, 'days')}"),
                **column_facts(snapshot, column),
                **age_facts(ctx, since, waited, threshold_days=days),
                approximate=approximate,
                other_places=other_places(snapshot, entries, column),
            ))
        return findings


__all__ = ["ReviewNeededCheck", "WaitingForReviewCheck"]
