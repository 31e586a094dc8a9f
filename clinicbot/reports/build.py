"""Reports as plain data: the daily triage digest, the weekly triage meeting agenda, the metrics report.

Each ``build_*`` function is pure: a :class:`Snapshot` (with timelines), the rotation and
whatever the state remembers (the last digest's time, the previous agenda, fired findings)
go in, a JSON-able dict comes out. The same dict is the ``--format json`` output and the
context of every template (``report_render.py``), so what a test checks in the JSON is what
people read. Times are ISO 8601 UTC strings, durations are hours (floats), task text is raw
(templates escape it for their medium).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone, tzinfo
from typing import Any, Iterable, Mapping, Sequence

from clinicbot.escape import one_line
from clinicbot.phab.history import Event, Timeline
from clinicbot.metrics import Metrics, hours_between, unbreak_since
from clinicbot.model import Column, Person, Snapshot, Task

DIGEST_LOOKBACK = timedelta(hours=24)  # "since the last digest" when no digest was delivered yet
EXCERPT_CHARS = 200
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _person(member: Any) -> dict[str, str] | None:
    """A rotation Member (or anything with .username/.name/.email/.chat) as plain data."""
    if member is None:
        return None
    return Person(member.username, getattr(member, "name", "") or "", getattr(member, "email", "") or "",
                  getattr(member, "chat", "") or "").to_dict()


def iso(at: datetime | None) -> str | None:
    return at.astimezone(timezone.utc).isoformat() if at is not None else None


def _hours(start: datetime, end: datetime) -> float:
    return round(hours_between(start, end), 2)


def _task(snapshot: Snapshot, task: Task) -> dict[str, Any]:
    """The fields every report row shows about a task."""
    return {
        "task": task.monogram,
        "id": task.id,
        "title": task.title,
        "status": task.status_name,
        "priority": task.priority_name,
        "priority_value": task.priority,
        "author": snapshot.username(task.author_phid) or None,
        "owner": snapshot.username(task.owner_phid) or None,
        "created": iso(task.created),
        "age_hours": _hours(task.created, snapshot.now),
    }


def _unique_tasks(pairs: Iterable[tuple[Task, Column]]) -> list[tuple[Task, list[Column]]]:
    """A task in the inbox of two boards is one row naming both boards."""
    out: dict[str, tuple[Task, list[Column]]] = {}
    for task, col in pairs:
        out.setdefault(task.phid, (task, []))[1].append(col)
    return list(out.values())


def _board_name(snapshot: Snapshot, col: Column) -> str:
    board = snapshot.boards.get(col.board_phid)
    return board.name if board else col.board_phid


# --------------------------------------------------------------------------------------------
# Daily digest


def build_digest(
    snapshot: Snapshot,
    *,
    team: str,
    rotation: Any = None,
    since: datetime | None = None,
    findings: Sequence[Any] | None = None,
    tz: tzinfo = timezone.utc,
    base_url: str = "",
    rotation_days: int = 7,
) -> dict[str, Any]:
    """The engineers on duty's morning list.

    ``since``: when the last digest was delivered (default: 24 hours ago). ``findings``: ledger
    records (``created_at``, ``check_slug``, ``task_id``, ``summary``, ``severity``,
    ``handled_at``), or None when there is no ledger; only those fired after ``since`` show.
    """
    now = snapshot.now
    since_source = "last digest" if since is not None else "default"
    since = since if since is not None else now - DIGEST_LOOKBACK
    on_duty: list[dict[str, str]] | None = None  # None: no rotation file, so nobody knows
    changes: list[dict[str, Any]] | None = None
    if rotation is not None:
        from clinicbot.rotation import on_duty as rot_on_duty, upcoming_changes

        on_duty = [p for p in (_person(m) for m in rot_on_duty(rotation, now)) if p]
        changes = [{"at": iso(c.at), "kind": c.kind, "source": c.source, **(_person(c.member) or {})}
                   for c in upcoming_changes(rotation, now, days=rotation_days)]
    return {
        "kind": "digest",
        "team": team,
        "now": iso(now),
        "date": now.astimezone(tz).date().isoformat(),
        "timezone": str(tz),
        "base_url": base_url,
        "since": iso(since),
        "since_source": since_source,
        "on_duty": on_duty,
        "unbreak": digest_unbreak(snapshot),
        "inbox": digest_inbox(snapshot),
        "review_queue": digest_review_queue(snapshot),
        "moved_to_meeting": moved_to_meeting(snapshot, since),
        "findings": None if findings is None else fired_since(findings, since, now),
        "rotation_changes": changes,
        "rotation_days": rotation_days,
    }


def digest_unbreak(snapshot: Snapshot) -> list[dict[str, Any]]:
    """Open Unbreak Now! tasks on the boards, longest-burning first, with their first response.

    A response is the first comment, claim, priority/status change or move by a person other
    than the author (bots excluded), team member or not — the row says which.
    """
    ubn = snapshot.priority_by_keyword("unbreak")
    if ubn is None:
        return []
    rows = []
    exclude_base = snapshot.non_human_phids()
    for task in snapshot.tasks.values():
        if task.is_closed or task.priority != ubn.value:
            continue
        start = unbreak_since(snapshot, task) or task.created
        timeline = snapshot.timelines.get(task.phid)
        exclude = set(exclude_base) | ({task.author_phid} if task.author_phid else set())
        event = timeline.first_response(start, exclude=exclude) if timeline is not None else None
        rows.append({
            **_task(snapshot, task),
            "since": iso(start),
            "burning_hours": _hours(start, snapshot.now),
            "responded": event is not None,
            "responder": snapshot.username(event.author_phid) if event else None,
            "responder_in_team": bool(event and event.author_phid in snapshot.team_member_phids),
            "responded_at": iso(event.at) if event else None,
            "response_hours": _hours(start, event.at) if event else None,
        })
    rows.sort(key=lambda r: (r["since"], r["id"]))
    return rows


def digest_inbox(snapshot: Snapshot) -> list[dict[str, Any]]:
    """Open tasks in inbox columns, oldest (by creation) first."""
    rows = []
    for task, cols in _unique_tasks(snapshot.tasks_with_role("inbox")):
        rows.append({**_task(snapshot, task), "boards": [_board_name(snapshot, c) for c in cols]})
    rows.sort(key=lambda r: (r["created"], r["id"]))
    return rows


def digest_review_queue(snapshot: Snapshot) -> list[dict[str, Any]]:
    """Open tasks in review_needed and waiting_for_review columns, longest waiting first."""
    rows = []
    for role in ("review_needed", "waiting_for_review"):
        for task, col in snapshot.tasks_with_role(role):
            at, approximate = snapshot.entered_column(task, col)
            rows.append({**_task(snapshot, task), "board": _board_name(snapshot, col), "column": col.name,
                         "role": role, "waiting_since": iso(at), "waiting_hours": _hours(at, snapshot.now),
                         "approximate": approximate})
    rows.sort(key=lambda r: (r["waiting_since"], r["id"]))
    return rows


def _same_edit(a: Event, b: Event) -> bool:
    """One edit: the same transaction group, or (a history without group ids) the same second."""
    if a.group_id and b.group_id:
        return a.group_id == b.group_id
    return int(a.at.timestamp()) == int(b.at.timestamp())


def arrival(timeline: Timeline, move: Event) -> str:
    """How a column event put the task in its column: ``"moved"``, ``"created"`` or ``"tagged"``.

    Phorge records where a task is placed when it is created into a column (or tagged with the
    board's project) as a column transaction of that same edit, authored by whoever created or
    tagged it, with no source column (``fromColumnPHIDs: []``). Nobody *moved* it there, so such
    a placement has no mover (docs/reports.md). A placement with no source column that belongs
    to neither edit is still a move by its author.
    """
    if move.from_column_phids:
        return "moved"
    for e in timeline.events:
        if e.kind == "created" and _same_edit(e, move):
            return "created"
    for e in timeline.events:
        if e.kind == "projects" and move.board_phid in (e.new or ()) and _same_edit(e, move):
            return "tagged"
    return "moved"


def moved_to_meeting(snapshot: Snapshot, since: datetime) -> list[dict[str, Any]]:
    """Moves into a triage_meeting_inbox column after ``since`` (up to now), oldest first.

    A task that has left the column again is still listed (``still_there`` False): someone
    thought it needed the meeting, and the engineers on duty should know it was handled. A task
    created (or tagged) straight into the column is listed too, with no mover (``by`` None) and
    ``arrival`` ``"created"`` (``"tagged"``); a moved one has ``arrival`` ``"moved"``.
    """
    rows = []
    columns = snapshot.columns_with_role("triage_meeting_inbox")
    for task in snapshot.tasks.values():
        timeline = snapshot.timelines.get(task.phid)
        if timeline is None:
            continue
        for col in columns:
            for e in timeline.moved_into(col.board_phid, col.phid):
                if since < e.at <= snapshot.now:
                    how = arrival(timeline, e)
                    by = snapshot.username(e.author_phid) if how == "moved" else None
                    rows.append({**_task(snapshot, task), "board": _board_name(snapshot, col), "by": by or None,
                                 "arrival": how, "at": iso(e.at),
                                 "still_there": task.is_open and task.column_on(col.board_phid) == col.phid})
    rows.sort(key=lambda r: (r["at"], r["id"]))
    return rows


def fired_since(records: Sequence[Any], since: datetime, now: datetime) -> list[dict[str, Any]]:
    """Ledger records whose episode started after ``since`` (newest last)."""
    rows = []
    for r in records:
        created = getattr(r, "created_at", None)
        if created is None or not (since < created <= now):
            continue
        task_id = getattr(r, "task_id", None)
        rows.append({"slug": getattr(r, "check_slug", ""), "task": f"T{task_id}" if task_id is not None else None,
                     "summary": getattr(r, "summary", ""), "severity": getattr(r, "severity", ""),
                     "fired_at": iso(created), "handled": getattr(r, "handled_at", None) is not None})
    rows.sort(key=lambda r: (r["fired_at"], r["slug"], r["task"] or ""))
    return rows


# --------------------------------------------------------------------------------------------
# Weekly triage meeting agenda


def next_meeting(now: datetime, weekday: str, start: str, tz: tzinfo) -> datetime:
    """The meeting on today's local date if it is the meeting day, else the next meeting day.

    Today counts all day long, so the agenda printed after the meeting still shows the meeting
    that just happened (its notes are usually written then); pass ``--date`` for another one.
    """
    local = now.astimezone(tz)
    target = WEEKDAYS.index(weekday.lower()[:3])
    day = local.date() + timedelta(days=(target - local.weekday()) % 7)
    hh, mm = (int(x) for x in start.split(":"))
    return datetime.combine(day, time(hh, mm), tz)


def build_agenda(
    snapshot: Snapshot,
    *,
    team: str,
    meeting_at: datetime,
    rotation: Any = None,
    previous: Mapping[str, Any] | None = None,
    project_names: Mapping[str, str] | None = None,
    tz: tzinfo = timezone.utc,
    base_url: str = "",
    excerpt_chars: int = EXCERPT_CHARS,
) -> dict[str, Any]:
    """Every open task in a triage_meeting_inbox column, in the order it arrived there.

    ``previous``: the previous agenda as stored ({meeting, tasks}); tasks on it are flagged
    ``carried_over``, and those no longer in the column are listed as ``left``.
    """
    names = {b.phid: b.name for b in snapshot.boards.values()}
    names.update(project_names or {})
    exclude = snapshot.non_human_phids()
    previous_ids = set(previous.get("tasks", [])) if previous else set()
    items = []
    for task, cols in _unique_tasks(snapshot.tasks_with_role("triage_meeting_inbox")):
        col = cols[0]
        at, approximate = snapshot.entered_column(task, col)
        timeline = snapshot.timelines.get(task.phid)
        moves = timeline.moved_into(col.board_phid, col.phid) if timeline is not None else []
        # The mover is known only if the last move into the column is what put it there now, and
        # only if it was a move: a task created or tagged into the column has no mover.
        last = moves[-1] if moves and moves[-1].at == at else None
        how = arrival(timeline, last) if timeline is not None and last is not None else None
        moved_by = last.author_phid if last is not None and how == "moved" else None
        comment = timeline.last_comment(exclude=exclude) if timeline is not None else None
        items.append({
            **_task(snapshot, task),
            "board": _board_name(snapshot, col),
            "moved_by": snapshot.username(moved_by) or None,
            "arrival": how,  # "moved", "created", "tagged", or None when the history does not say
            "moved_at": iso(at),
            "approximate": approximate,
            "tags": sorted({names.get(p, "") for p in task.project_phids} - {""}),
            "last_comment": None if comment is None else {
                "author": snapshot.username(comment.author_phid), "at": iso(comment.at),
                "excerpt": one_line(comment.text or "", excerpt_chars)},
            "carried_over": task.id in previous_ids,
        })
    items.sort(key=lambda r: (r["moved_at"], r["id"]))
    current = {r["id"] for r in items}
    attendees: dict[str, Any] | None = None  # None: no rotation file
    if rotation is not None:
        from clinicbot.rotation import on_duty as rot_on_duty

        attendees = {"on_duty": [p for p in (_person(m) for m in rot_on_duty(rotation, meeting_at)) if p],
                     "manager": _person(getattr(rotation, "manager", None)),
                     "product_manager": _person(getattr(rotation, "product_manager", None))}
    return {
        "kind": "agenda",
        "team": team,
        "now": iso(snapshot.now),
        "meeting_date": meeting_at.astimezone(tz).date().isoformat(),
        "meeting_at": iso(meeting_at),
        "timezone": str(tz),
        "base_url": base_url,
        "attendees": attendees,
        "previous_meeting": previous.get("meeting") if previous else None,
        "items": items,
        "carried_over": sum(1 for r in items if r["carried_over"]),
        "left": sorted(previous_ids - current),
    }


def agenda_task_ids(agenda: Mapping[str, Any]) -> list[int]:
    return [int(r["id"]) for r in agenda["items"]]


# --------------------------------------------------------------------------------------------
# Metrics report


def build_metrics_report(
    metrics: Metrics,
    *,
    team: str,
    history: Sequence[Mapping[str, Any]] = (),
    sla_hours: Mapping[str, float] | None = None,
    tz: tzinfo = timezone.utc,
    base_url: str = "",
) -> dict[str, Any]:
    """The metrics plus what the page draws from: the stored history and the SLAs."""
    data = metrics.to_dict()
    sla = dict(sla_hours or {})
    for key, stat in (("unbreak_now", data["unbreak_response"]), ("review", data["review_response"])):
        limit = sla.get(key)
        stat["sla_hours"] = limit
        stat["p90_within_sla"] = None if limit is None or stat["p90"] is None else stat["p90"] <= limit
    return {
        "kind": "metrics",
        "team": team,
        "date": metrics.now.astimezone(tz).date().isoformat(),
        "timezone": str(tz),
        "base_url": base_url,
        "sla_hours": sla,
        **data,
        "history": [dict(h) for h in history],
    }
