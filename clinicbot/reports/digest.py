"""The daily triage digest as plain data: the engineers on duty's morning list.

:func:`build_digest` is pure: a :class:`Snapshot` (with timelines), the rotation and what the
state remembers (the last digest's time, fired findings) go in, a JSON-able dict comes out. The
same dict is the ``--format json`` output and the context of every template
(:mod:`clinicbot.reports.render`), so what a test checks in the JSON is what people read.
"""

from __future__ import annotations

from datetime import datetime, timezone, tzinfo
from typing import Any, Sequence

from clinicbot.metrics import unbreak_since
from clinicbot.model import Snapshot
from clinicbot.phab.history import Event, Timeline
from clinicbot.reports.common import (
    DIGEST_LOOKBACK,
    RowCaps,
    board_name,
    capped,
    hours,
    iso,
    people,
    person,
    real_names,
    restate_ages,
    task_row,
    unique_tasks,
)
from clinicbot.reports import DIGEST_SECTIONS  # noqa: F401  (the sections built below, in this order)
from clinicbot.reports.finding_lists import Listed, list_sections


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
    caps: RowCaps | None = None,
    lists: Sequence[Listed] = (),
    lists_skipped: Sequence[str] = (),
) -> dict[str, Any]:
    """The engineers on duty's morning list.

    ``since``: when the last digest was delivered (default: 24 hours ago). ``findings``: ledger
    records (``created_at``, ``check_slug``, ``task_id``, ``summary``, ``severity``,
    ``handled_at``), or None when there is no ledger; only those fired after ``since`` show.
    ``caps``: how many rows each section shows (``totals`` keeps every section's count, ``more``
    the "and N more" line of each cut section). ``lists``: the listed checks' current findings,
    one section each (``lists``); ``lists_skipped``: listed slugs that are no check.
    """
    now = snapshot.now
    caps = caps or RowCaps()
    names = real_names(snapshot, rotation)
    since_source = "last digest" if since is not None else "default"
    since = since if since is not None else now - DIGEST_LOOKBACK
    on_duty: list[dict[str, str]] | None = None  # None: no rotation file, so nobody knows
    changes: list[dict[str, Any]] | None = None
    if rotation is not None:
        from clinicbot.rotation import on_duty as rot_on_duty, upcoming_changes

        on_duty = [p for p in (person(m, names) for m in rot_on_duty(rotation, now)) if p]
        changes = [{"at": iso(c.at), "kind": c.kind, "source": c.source, **(person(c.member, names) or {})}
                   for c in upcoming_changes(rotation, now, days=rotation_days)]
    data: dict[str, Any] = {
        "kind": "digest",
        "team": team,
        "now": iso(now),
        "date": now.astimezone(tz).date().isoformat(),
        "timezone": str(tz),
        "base_url": base_url,
        "since": iso(since),
        "since_source": since_source,
        "on_duty": on_duty,
        "totals": {},
        "more": {},
    }
    sections = {
        "unbreak": digest_unbreak(snapshot),
        "inbox": digest_inbox(snapshot),
        "review_queue": digest_review_queue(snapshot),
        "moved_to_meeting": moved_to_meeting(snapshot, since),
        "findings": None if findings is None else fired_since(findings, since, now, snapshot),
    }
    for key, rows in sections.items():
        data[key] = None if rows is None else capped(data, key, rows, caps)
    data["lists"] = list_sections(snapshot, lists, caps, base_url)
    data["lists_skipped"] = list(lists_skipped)
    data["rotation_changes"] = changes
    data["rotation_days"] = rotation_days
    data["people"] = people(names, _usernames(data))
    return data


def _usernames(data: dict[str, Any]) -> set[str]:
    """Everyone a digest row names (author, owner, responder, mover): their display names go in ``people``."""
    found: set[str] = set()
    for key in ("unbreak", "inbox", "review_queue", "moved_to_meeting"):
        for row in data[key] or []:
            found.update(row.get(k) for k in ("author", "owner", "responder", "by") if row.get(k))
    for section in data["lists"]:
        for row in section["rows"]:
            found.update(row.get(k) for k in ("author", "owner") if row.get(k))
    return found


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
            **task_row(snapshot, task),
            "since": iso(start),
            "burning_hours": hours(start, snapshot.now),
            "responded": event is not None,
            "responder": snapshot.username(event.author_phid) if event else None,
            "responder_in_team": bool(event and event.author_phid in snapshot.team_member_phids),
            "responded_at": iso(event.at) if event else None,
            "response_hours": hours(start, event.at) if event else None,
        })
    rows.sort(key=lambda r: (r["since"], r["id"]))
    return rows


def digest_inbox(snapshot: Snapshot) -> list[dict[str, Any]]:
    """Open tasks in inbox columns, oldest (by creation) first."""
    rows = []
    for task, cols in unique_tasks(snapshot.tasks_with_role("inbox")):
        rows.append({**task_row(snapshot, task), "boards": [board_name(snapshot, c) for c in cols]})
    rows.sort(key=lambda r: (r["created"], r["id"]))
    return rows


def digest_review_queue(snapshot: Snapshot) -> list[dict[str, Any]]:
    """Open tasks in review_needed and waiting_for_review columns, longest waiting first.

    A task waiting on two boards is one row: its longest wait (``board``, ``column``, ``role``,
    ``waiting_since``…) and ``places``, every column it waits in; ``boards`` names them."""
    rows: dict[str, dict[str, Any]] = {}
    for role in ("review_needed", "waiting_for_review"):
        for task, col in snapshot.tasks_with_role(role):
            at, approximate = snapshot.entered_column(task, col)
            place = {"board": board_name(snapshot, col), "column": col.name, "role": role, "waiting_since": iso(at),
                     "waiting_hours": hours(at, snapshot.now), "approximate": approximate}
            row = rows.get(task.phid)
            if row is None:
                rows[task.phid] = {**task_row(snapshot, task), **place, "places": [place]}
                continue
            row["places"].append(place)
            if place["waiting_since"] < row["waiting_since"]:
                row.update(place)
    out = list(rows.values())
    for row in out:
        row["places"].sort(key=lambda p: p["waiting_since"])
        row["boards"] = list(dict.fromkeys(p["board"] for p in row["places"]))
    out.sort(key=lambda r: (r["waiting_since"], r["id"]))
    return out


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
    ``arrival`` ``"created"`` (``"tagged"``); a moved one has ``arrival`` ``"moved"``. A task
    moved there on two boards (or twice) is one row: the latest arrival, ``boards`` naming every
    board, ``still_there`` if it is still in one of those columns.
    """
    rows: dict[str, dict[str, Any]] = {}
    columns = snapshot.columns_with_role("triage_meeting_inbox")
    for task in snapshot.tasks.values():
        # A move after ``since`` is an edit after it: an older dateModified means no history to read.
        if task.modified <= since:
            continue
        timeline = snapshot.timelines.get(task.phid)
        if timeline is None:
            continue
        for col in columns:
            for e in timeline.moved_into(col.board_phid, col.phid):
                if not since < e.at <= snapshot.now:
                    continue
                how = arrival(timeline, e)
                by = snapshot.username(e.author_phid) if how == "moved" else None
                here = task.is_open and task.column_on(col.board_phid) == col.phid
                board = board_name(snapshot, col)
                row = rows.get(task.phid)
                if row is None:
                    rows[task.phid] = {**task_row(snapshot, task), "board": board, "by": by or None, "arrival": how,
                                       "at": iso(e.at), "still_there": here, "boards": [board]}
                    continue
                row["still_there"] = row["still_there"] or here
                if board not in row["boards"]:
                    row["boards"].append(board)
                if iso(e.at) > row["at"]:
                    row.update({"board": board, "by": by or None, "arrival": how, "at": iso(e.at)})
    out = sorted(rows.values(), key=lambda r: (r["at"], r["id"]))
    return out


def fired_since(records: Sequence[Any], since: datetime, now: datetime,
                snapshot: Snapshot | None = None) -> list[dict[str, Any]]:
    """Ledger records whose episode started after ``since`` (newest last). ``text`` is the
    summary with its ages in the reports' unit system (the task's title, when the snapshot has
    the task, kept as it is); ``summary`` is the ledger's, unchanged."""
    titles = {t.id: t.title for t in snapshot.tasks.values()} if snapshot is not None else {}
    rows = []
    for r in records:
        created = getattr(r, "created_at", None)
        if created is None or not (since < created <= now):
            continue
        task_id = getattr(r, "task_id", None)
        summary = getattr(r, "summary", "")
        rows.append({"slug": getattr(r, "check_slug", ""), "task": f"T{task_id}" if task_id is not None else None,
                     "id": task_id, "summary": summary, "text": restate_ages(summary, keep=[titles.get(task_id, "")]),
                     "severity": getattr(r, "severity", ""), "fired_at": iso(created),
                     "handled": getattr(r, "handled_at", None) is not None})
    rows.sort(key=lambda r: (r["fired_at"], r["slug"], r["task"] or ""))
    return rows
