"""Triage checks: nothing should sit untriaged, leftovers of the triage meeting need another
meeting, and "Needs Triage" is not a priority to keep.

- ``untriaged``: an open task in an ``inbox`` column for longer than ``hours``.
- ``triage-meeting-leftovers``: tasks already in a ``triage_meeting_inbox`` column when the
  latest weekly meeting started are still there: the process holds a follow-up meeting later
  that week, so the one finding per meeting says "schedule a follow-up" with the count and the
  day to hold it by (the end of the meeting's week), and "no follow-up was held" after that.
- ``unprioritised``: an open task has had the "triage" priority for ``days``.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Mapping

from clinicbot.checks._common import (
    age_facts,
    column_facts,
    describe_age,
    exempt,
    iso,
    placements,
    plural,
    priority_set_at,
    setting,
    task_facts,
    task_finding,
)
from clinicbot.checks.base import CheckContext, Finding
from clinicbot.checks.dwell import ColumnDwellCheck
from clinicbot.checks.hours import (
    age,
    as_zone,
    days_threshold,
    parse_hhmm,
    parse_weekday,
    validate_hhmm,
    validate_timezone,
    validate_weekday,
)


class UntriagedCheck(ColumnDwellCheck, slug="untriaged", roles=("inbox",), unit="hours", threshold=48,
                     severity="warning", summary="{task} {title} has waited {about}{age} in {where} without triage"):
    """An open task has waited in an inbox column longer than `hours` without being triaged."""


def latest_meeting(now: datetime, weekday: int, start: time, tz: Any, grace: timedelta) -> datetime:
    """Start of the latest weekly meeting that is over (started at least ``grace`` ago).

    The meeting is placed in the team's local time, so it stays at 15:00 across DST changes.
    During the grace period the meeting is still working through the inbox: the previous
    week's meeting is the one whose leftovers count.
    """
    local_now = now.astimezone(tz)
    day = local_now.date() - timedelta(days=(local_now.weekday() - weekday) % 7)
    for _ in range(3):
        started = datetime.combine(day, start, tzinfo=tz).astimezone(timezone.utc)
        if started + grace <= now:
            return started
        day -= timedelta(days=7)
    return started  # only reached for a grace of 2+ weeks, which validation rejects


class TriageMeetingLeftoversCheck:
    slug = "triage-meeting-leftovers"
    description = ("Tasks that were already in a triage-meeting inbox column when the latest weekly "
                   "triage meeting started are still there: schedule a follow-up meeting that week.")
    # None: take the team's meeting_weekday / meeting_time / timezone (filled in by the registry).
    defaults: Mapping[str, Any] = {"meeting_weekday": None, "meeting_time": None, "timezone": None, "grace_hours": 2}
    setting_types: Mapping[str, Any] = {"meeting_weekday": str, "meeting_time": str, "timezone": str,
                                        "grace_hours": (int, float)}
    validators: Mapping[str, Any] = {
        "meeting_weekday": validate_weekday,
        "meeting_time": validate_hhmm,
        "timezone": validate_timezone,
        "grace_hours": lambda v: None if 0 <= v < 7 * 24 else "must be between 0 and 167 hours",
    }

    def run(self, ctx: CheckContext) -> list[Finding]:
        tz = as_zone(setting(ctx, "timezone", "UTC"))
        weekday = parse_weekday(setting(ctx, "meeting_weekday", "thu"))
        start = parse_hhmm(setting(ctx, "meeting_time", "15:00"))
        grace = timedelta(hours=setting(ctx, "grace_hours", 2))
        meeting = latest_meeting(ctx.now, weekday, start, tz, grace)

        leftovers: list[dict[str, Any]] = []
        for entries in placements(ctx.snapshot, ["triage_meeting_inbox"]).values():
            # Earliest arrival over the task's boards: it was "there before the meeting" if it
            # was in any meeting inbox by then.
            dated = [(ctx.snapshot.entered_column(t, c), t, c) for t, c in entries]
            (since, approximate), task, column = min(dated, key=lambda d: d[0][0])
            if since >= meeting or exempt(ctx, task):
                continue
            waited = age(ctx, since)
            leftovers.append({
                **task_facts(ctx.snapshot, task),
                **column_facts(ctx.snapshot, column),
                "since": iso(since),
                "approximate": approximate,
                "age_days": round(waited / timedelta(days=1), 1),
            })
        if not leftovers:
            return []
        local = meeting.astimezone(tz)
        meeting_text = f"{local:%a %Y-%m-%d %H:%M} ({getattr(tz, 'key', 'UTC')})"
        columns = sorted({f"{t['board']}: {t['column']}" for t in leftovers})
        followup_by = followup_deadline(local.date())
        overdue = ctx.now.astimezone(tz).date() > followup_by
        facts = {
            "meeting_at": iso(meeting),
            "meeting_local": meeting_text,
            "meeting_date": local.date().isoformat(),
            "count": len(leftovers),
            "tasks": leftovers,
            "columns": columns,
            "task_monograms": [t["task"] for t in leftovers],
            "followup_by": followup_by.isoformat(),
            "followup_overdue": overdue,
        }
        left = f"{plural(len(leftovers), 'task')} in {', '.join(columns)}"
        by = f"{followup_by:%a %Y-%m-%d}"
        summary = (f"No follow-up triage meeting was held by {by}: {left} left over from the meeting of "
                   f"{meeting_text} still wait" if overdue else
                   f"Schedule a follow-up triage meeting by {by}: {left} were already there before the meeting "
                   f"of {meeting_text} and are still waiting")
        # One finding per meeting (the subject), not per task: next week's leftovers are a new episode.
        return [Finding(slug=self.slug, task_phid=None, task_id=None, severity="warning", summary=summary,
                        facts=facts, subject=local.date().isoformat())]


def followup_deadline(meeting_day: date) -> date:
    """The process holds another meeting "later that week": by the end of the meeting's week (Sunday)."""
    return meeting_day + timedelta(days=6 - meeting_day.weekday())


class UnprioritisedCheck:
    slug = "unprioritised"
    description = "An open task has kept the \"Needs Triage\" priority (keyword 'triage') for `days`."
    defaults: Mapping[str, Any] = {"days": 7}

    def run(self, ctx: CheckContext) -> list[Finding]:
        triage = ctx.snapshot.priority_by_keyword("triage")
        if triage is None:  # this server has no such priority: nothing can be "unprioritised"
            return []
        days = setting(ctx, "days", 7)
        limit = days_threshold(ctx, days)
        findings = []
        for task in sorted(ctx.snapshot.tasks.values(), key=lambda t: (t.created, t.id)):
            if task.is_closed or task.priority != triage.value:
                continue
            since = priority_set_at(ctx.snapshot, task, triage.value)
            waited = age(ctx, since)
            if waited < limit:
                continue
            findings.append(task_finding(
                self.slug, ctx.snapshot, task, severity="warning",
                summary=(f"{task.monogram} {task.title} has had priority {triage.name} for "
                         f"{describe_age(ctx, waited, 'days')}"),
                **age_facts(ctx, since, waited, threshold_days=days),
                created=iso(task.created),
            ))
        return findings


__all__ = ["UntriagedCheck", "TriageMeetingLeftoversCheck", "UnprioritisedCheck", "followup_deadline",
           "latest_meeting"]
