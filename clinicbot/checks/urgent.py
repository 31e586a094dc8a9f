"""``unbreak-now``: an Unbreak Now! task nobody on the team has answered, or nobody owns.

The priority is found by its keyword ("unbreak") in ``snapshot.priorities``, never by its
number: servers can renumber priorities. The clock starts when the task became Unbreak Now!
(the latest priority change to it), or at creation when it was filed that way.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Mapping

from clinicbot.checks._common import (
    age_facts,
    describe_age,
    priority_set_at,
    priority_value,
    response_exclusions,
    responders,
    setting,
    task_finding,
)
from clinicbot.checks.base import CheckContext, Finding
from clinicbot.checks.hours import age
from clinicbot.model import Snapshot, Task

NO_RESPONSE = "no-response"
NO_OWNER = "no-owner"


def _raised_by(snapshot: Snapshot, task: Task, value: int) -> str:
    """Who made the task Unbreak Now! (for the message), '' when it was filed so."""
    timeline = snapshot.timelines.get(task.phid)
    if timeline is None:
        return ""
    events = [e for e in timeline.of_kind("priority") if priority_value(e.new) == value]
    return snapshot.username(events[-1].author_phid) if events else ""


class UnbreakNowCheck:
    slug = "unbreak-now"
    description = ("An open Unbreak Now! task has no response from the team, or no owner, "
                   "`hours` after it became Unbreak Now!.")
    defaults: Mapping[str, Any] = {"hours": 4}

    def run(self, ctx: CheckContext) -> list[Finding]:
        snapshot = ctx.snapshot
        unbreak = snapshot.priority_by_keyword("unbreak")
        if unbreak is None:
            return []
        hours = setting(ctx, "hours", 4)
        limit = timedelta(hours=hours)
        findings: list[Finding] = []
        for task in sorted(snapshot.tasks.values(), key=lambda t: (t.created, t.id)):
            if task.is_closed or task.priority != unbreak.value:
                continue
            since = priority_set_at(snapshot, task, unbreak.value)
            waited = age(ctx, since)
            if waited < limit:
                continue
            base = {
                **age_facts(ctx, since, waited, threshold_hours=hours),
                "raised_by": _raised_by(snapshot, task, unbreak.value),
            }
            took = describe_age(ctx, waited, "hours")
            lasted = f"{task.monogram} {task.title} has been {unbreak.name} for {took}"

            timeline = snapshot.timelines.get(task.phid)
            # Without a timeline we cannot know whether anyone answered: say nothing rather
            # than accuse the team of silence (the owner condition below still holds).
            if timeline is not None:
                answer = timeline.first_response(
                    since, exclude=response_exclusions(snapshot, task), responders=responders(snapshot)
                )
                if answer is None:
                    findings.append(task_finding(
                        self.slug, snapshot, task, severity="critical", subject=NO_RESPONSE,
                        summary=f"{lasted} without a response from the team",
                        **base, reason=NO_RESPONSE,
                    ))
            if not task.owner_phid:
                findings.append(task_finding(
                    self.slug, snapshot, task, severity="critical", subject=NO_OWNER,
                    summary=f"{lasted} and nobody owns it",
                    **base, reason=NO_OWNER,
                ))
        return findings


__all__ = ["UnbreakNowCheck", "NO_RESPONSE", "NO_OWNER"]
