"""``untag-candidate``: old tasks tagged with the team's project on which nothing real has happened
since a date.

"Real activity" is what a person did to the task. Not real (the clinic-duty process lists these):

- anything by automation: Herald and daemons (authors that are not users, ``PHID-APPS-…``),
  clinicbot itself, accounts marked as bots and ``team.ignored_users``;
- (un)subscribing;
- tag changes (``projects``), and the column moves that come with them (a move in the same
  transaction group as a tag change, as when a milestone is set).

Everything else a person does counts: creating, commenting, editing title, description, status,
priority, owner or points, moving between columns.

Settings (``checks.untag-candidate``): ``since`` (a date ``YYYY-MM-DD``: no real activity on or
after it) or ``days`` (default 365: no real activity for that long; used when ``since`` is not
set); ``projects``: which tags are candidates for removal (names, ``#hashtags`` or PHIDs; default:
the team's projects, ``team.projects`` or the watched boards).

One finding per open task carrying one of those projects. A task whose history could not be
fetched is judged by its ``dateModified`` (bumped by bots too, so it can only make a task look
more active than it is: never a false candidate). Facts: ``last_activity`` (ISO time or None),
``last_activity_kind``, ``last_actor``, ``cutoff``, ``untag_phids`` and ``untag`` (the projects'
names). The ``untag`` handler (off unless configured) removes those tags (``projects.remove``).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any, Mapping

from clinicbot.checks._common import setting, task_finding
from clinicbot.checks.base import CheckContext, Finding
from clinicbot.checks.migration import parse_day
from clinicbot.model import Snapshot
from clinicbot.timeline import Event, Timeline

NOT_ACTIVITY = frozenset({"subscribers", "projects"})


def real_activity(timeline: Timeline, exclude: frozenset[str]) -> Event | None:
    """The latest event a person did to the task (see the module docstring), or None."""
    tag_groups = {e.group_id for e in timeline.events if e.kind == "projects" and e.group_id}
    tag_moments = {(e.at, e.author_phid) for e in timeline.events if e.kind == "projects"}
    for e in reversed(timeline.events):
        author = e.author_phid or ""
        if e.kind in NOT_ACTIVITY or not author.startswith("PHID-USER-") or author in exclude:
            continue
        if e.kind == "column" and ((e.group_id and e.group_id in tag_groups) or (e.at, e.author_phid) in tag_moments):
            continue  # the move a tag change made
        return e
    return None


def cutoff(ctx: CheckContext) -> datetime:
    day = setting(ctx, "since", None)
    if day:
        return datetime.combine(date.fromisoformat(day), datetime.min.time(), timezone.utc)
    return ctx.now - timedelta(days=float(setting(ctx, "days", 365)))


def watched_projects(snapshot: Snapshot, refs: list[str]) -> set[str]:
    """The PHIDs of ``refs`` among the team's projects and the watched boards; all team projects if empty."""
    if not refs:
        return set(snapshot.team_project_phids) or set(snapshot.boards)
    out = set()
    for ref in refs:
        for board in snapshot.boards.values():
            if ref in (board.phid, f"#{board.slug}", board.slug) or board.name.casefold() == ref.casefold():
                out.add(board.phid)
        if ref.startswith("PHID-PROJ-"):
            out.add(ref)
    if not out:
        raise ValueError(f"checks.untag-candidate.projects: none of {', '.join(refs)} is a watched board or a PHID")
    return out


class UntagCandidateCheck:
    """An old task tagged with the team's project has had no real activity since a date (only automation, subscribers or tags)."""

    slug = "untag-candidate"
    description = ("An old task tagged with the team's project has had no real activity since a date "
                   "(only automation, subscriber or tag changes).")
    defaults: Mapping[str, Any] = {"since": None, "days": 365, "projects": []}
    setting_types = {"since": (str,)}
    validators = {"since": parse_day,
                  "projects": lambda v: None if all(isinstance(p, str) and p for p in v) else "must be a list of names"}

    def run(self, ctx: CheckContext) -> list[Finding]:
        snapshot = ctx.snapshot
        limit = cutoff(ctx)
        wanted = watched_projects(snapshot, list(setting(ctx, "projects", [])))
        exclude = snapshot.non_human_phids()
        findings = []
        for task in sorted(snapshot.tasks.values(), key=lambda t: t.id):
            tagged = [p for p in task.project_phids if p in wanted]
            if task.is_closed or not tagged or task.created >= limit:
                # Created on or after the cutoff: its creation (or, with a history, any activity,
                # never earlier than the task) is recent enough, so its history is not read.
                continue
            timeline = snapshot.timelines.get(task.phid)
            last = real_activity(timeline, exclude) if timeline is not None else None
            at = last.at if last is not None else None
            # Without history: dateModified. With it but nothing human ever: the creation time.
            judged = at if at is not None else task.created if timeline is not None else task.modified
            if judged >= limit:
                continue
            names = [snapshot.boards[p].name if p in snapshot.boards else p for p in tagged]
            when = at.date().isoformat() if at is not None else "ever"
            findings.append(task_finding(
                self.slug, snapshot, task, severity="info",
                summary=(f"{task.monogram} {task.title}: no real activity since {when} (before {limit.date().isoformat()});"
                         f" untag {', '.join(names)}?"),
                last_activity=at.isoformat() if at is not None else None,
                last_activity_kind=last.kind if last is not None else None,
                last_actor=snapshot.username(last.author_phid) if last is not None else "",
                cutoff=limit.isoformat(), untag_phids=tagged, untag=names,
            ))
        return findings


__all__ = ["UntagCandidateCheck", "real_activity"]
