"""Workload checks: claimed work should move.

- ``cookie-licking``: an engineer owns more than ``max_claimed`` open tasks on the watched
  boards (one finding per engineer), or claimed a task and has done nothing on it for
  ``idle_days`` (one finding per task, subject = the engineer).
- ``stale-in-progress``: a task in a ``doing`` or ``blocked`` column has had no human
  activity for ``days``.

"Activity" is always human: clinicbot's own comments and the ``ignored_users`` bump a task's
dateModified but never count, so the bot reminding people cannot hide the staleness it reports.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from clinicbot.checks._common import (
    age_facts,
    column_facts,
    created_at,
    describe_age,
    exempt,
    iso,
    is_engineer,
    on_watched_board,
    other_places,
    placements,
    plural,
    setting,
    task_finding,
    valid_roles,
    where,
)
from clinicbot.checks.base import CheckContext, Finding
from clinicbot.checks.hours import age, days_threshold
from clinicbot.model import Snapshot, Task

# Columns where an owner is legitimately waiting on others (reviews, deployment), where the
# work is done, or that stale-in-progress already watches: an idle owner there is not licking.
IDLE_EXCLUDED_ROLES = ["doing", "blocked", "review_needed", "review_in_progress", "waiting_for_review",
                       "waiting_for_deployment", "done"]


def _roles_of(snapshot: Snapshot, task: Task) -> set[str]:
    roles = set()
    for board_phid, column_phid in task.columns.items():
        board = snapshot.boards.get(board_phid)
        column = board.column(column_phid) if board else None
        if column is not None and column.role:
            roles.add(column.role)
    return roles


def _claimed_at(snapshot: Snapshot, task: Task) -> tuple[datetime, str]:
    """When the current owner got the task (the latest owner change to them), and by whom."""
    timeline = snapshot.timelines.get(task.phid)
    if timeline is None:
        # No history: the last modification is the latest the claim can be, which under-states
        # idleness and so never accuses anyone wrongly.
        return task.modified, ""
    claims = [e for e in timeline.of_kind("owner") if e.new == task.owner_phid]
    if claims:
        last = max(claims, key=lambda e: e.at)
        return last.at, snapshot.username(last.author_phid)
    return created_at(snapshot, task), snapshot.username(task.author_phid)


def _owner_last_action(snapshot: Snapshot, task: Task, since: datetime) -> datetime:
    timeline = snapshot.timelines.get(task.phid)
    if timeline is None:
        return since
    # (Un)subscribing is not work on the task; everything else the owner does is.
    mine = [e.at for e in timeline.events
            if e.author_phid == task.owner_phid and e.at >= since and e.kind != "subscribers"]
    return max(mine, default=since)


class CookieLickingCheck:
    slug = "cookie-licking"
    description = ("An engineer owns more than `max_claimed` open tasks on the watched boards, or claimed "
                   "a task and has done nothing on it for `idle_days`.")
    defaults: Mapping[str, Any] = {"max_claimed": 5, "idle_days": 14, "idle_excluded_roles": IDLE_EXCLUDED_ROLES}
    setting_types: Mapping[str, Any] = {"max_claimed": int, "idle_days": (int, float), "idle_excluded_roles": list}
    validators: Mapping[str, Any] = {"idle_excluded_roles": valid_roles}

    def run(self, ctx: CheckContext) -> list[Finding]:
        snapshot = ctx.snapshot
        max_claimed = setting(ctx, "max_claimed", 5)
        idle_days = setting(ctx, "idle_days", 14)
        excluded = set(setting(ctx, "idle_excluded_roles", IDLE_EXCLUDED_ROLES))
        limit = days_threshold(ctx, idle_days)

        owned: dict[str, list[Task]] = {}
        idle: list[Finding] = []
        non_human = snapshot.non_human_phids()
        for task in sorted(snapshot.tasks.values(), key=lambda t: (t.created, t.id)):
            if task.is_closed or not on_watched_board(snapshot, task) or \
                    not is_engineer(snapshot, task.owner_phid, non_human):
                continue
            if exempt(ctx, task):  # not counted among the owner's tasks either
                continue
            owner = task.owner_phid
            assert owner is not None
            roles = _roles_of(snapshot, task)
            # An open task in a Done column waits for closing (or deployment), not for its owner.
            if "done" not in roles:
                owned.setdefault(owner, []).append(task)
            if roles & excluded:
                continue
            claimed, claimed_by = _claimed_at(snapshot, task)
            last = _owner_last_action(snapshot, task, claimed)
            username = snapshot.username(owner)
            waited = age(ctx, last, person=username)  # the owner's own time away does not count
            if waited < limit:
                continue
            idle.append(task_finding(
                self.slug, snapshot, task, severity="info", subject=username,
                summary=(f"{username} claimed {task.monogram} {task.title} and has done nothing on it "
                         f"for {describe_age(ctx, waited, 'days')}"),
                **age_facts(ctx, last, waited, threshold_days=idle_days),
                reason="idle",
                who=username,
                owner_phid=owner,
                claimed_at=iso(claimed),
                claimed_by=claimed_by,
                last_action_at=iso(last),
            ))

        overloaded: list[Finding] = []
        for owner, tasks in owned.items():
            if len(tasks) <= max_claimed:
                continue
            username = snapshot.username(owner)
            overloaded.append(Finding(
                slug=self.slug,
                task_phid=None,
                task_id=None,
                severity="info",
                summary=f"{username} owns {plural(len(tasks), 'open task')} on the watched boards (more than {max_claimed})",
                facts={
                    "reason": "too-many",
                    "who": username,
                    "owner": username,
                    "owner_phid": owner,
                    "count": len(tasks),
                    "max_claimed": max_claimed,
                    "tasks": [{"task": t.monogram, "task_id": t.id, "title": t.title} for t in tasks],
                    "task_monograms": [t.monogram for t in tasks],
                },
                subject=username,
            ))
        overloaded.sort(key=lambda f: f.subject)
        return overloaded + idle


class StaleInProgressCheck:
    slug = "stale-in-progress"
    description = "A task in a doing or blocked column has had no human activity for `days`."
    defaults: Mapping[str, Any] = {"days": 14}

    def run(self, ctx: CheckContext) -> list[Finding]:
        snapshot = ctx.snapshot
        days = setting(ctx, "days", 14)
        limit = days_threshold(ctx, days)
        non_human = snapshot.non_human_phids()
        findings = []
        for entries in placements(snapshot, ["doing", "blocked"]).values():
            task, column = entries[0]
            # Work in progress waits on its owner: their listed time away does not count.
            person = snapshot.username(task.owner_phid) or None
            if age(ctx, task.created, person=person) < limit:
                # Nothing happens to a task before it is created (its history starts with it), so it
                # cannot have been idle for longer than it exists: its history need not be read.
                # (dateModified is no such bound: clinicbot's own comments bump it.)
                continue
            timeline = snapshot.timelines.get(task.phid)
            actor = ""
            kind = ""
            if timeline is None:
                # dateModified is never earlier than the last human action: conservative.
                last = task.modified
            else:
                event = timeline.last_activity(exclude=non_human)
                if event is not None:
                    last, actor, kind = event.at, snapshot.username(event.author_phid), event.kind
                else:
                    last = created_at(snapshot, task)
            waited = age(ctx, last, person=person)
            if waited < limit:
                continue
            findings.append(task_finding(
                self.slug, snapshot, task, severity="info",
                summary=(f"{task.monogram} {task.title} in {where(snapshot, column)} has had no activity "
                         f"for {describe_age(ctx, waited, 'days')}"),
                **column_facts(snapshot, column),
                **age_facts(ctx, last, waited, threshold_days=days),
                last_activity_at=iso(last),
                last_actor=actor,
                last_activity_kind=kind,
                other_places=other_places(snapshot, entries, column),
            ))
        return findings


__all__ = ["CookieLickingCheck", "StaleInProgressCheck", "IDLE_EXCLUDED_ROLES"]
