"""The weekly triage meeting agenda as plain data (pure, like the digest)."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone, tzinfo
from typing import Any, Mapping, Sequence

from clinicbot.escape import one_line
from clinicbot.model import Snapshot
from clinicbot.reports.common import (EXCERPT_CHARS, WEEKDAYS, RowCaps, board_name, iso, people, person, real_names,
                                      task_row, unique_tasks)
from clinicbot.reports.finding_lists import Listed, list_sections
from clinicbot.reports.digest import arrival

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
    caps: RowCaps | None = None,
    lists: Sequence[Listed] = (),
    lists_skipped: Sequence[str] = (),
) -> dict[str, Any]:
    """Every open task in a triage_meeting_inbox column, in the order it arrived there.

    ``previous``: the previous agenda as stored ({meeting, tasks}); tasks on it are flagged
    ``carried_over``, and those no longer in the column are listed as ``left``. ``lists``: the
    listed checks' findings, a section each (``lists``), cut at ``caps`` (the items never are).
    """
    tag_names = {b.phid: b.name for b in snapshot.boards.values()}
    tag_names.update(project_names or {})
    names = real_names(snapshot, rotation)
    exclude = snapshot.non_human_phids()
    previous_ids = set(previous.get("tasks", [])) if previous else set()
    items = []
    for task, cols in unique_tasks(snapshot.tasks_with_role("triage_meeting_inbox")):
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
            **task_row(snapshot, task),
            "board": board_name(snapshot, col),
            "boards": [board_name(snapshot, c) for c in cols],  # a task in two boards' meeting inbox: one item
            "moved_by": snapshot.username(moved_by) or None,
            "arrival": how,  # "moved", "created", "tagged", or None when the history does not say
            "moved_at": iso(at),
            "approximate": approximate,
            "tags": sorted({tag_names.get(p, "") for p in task.project_phids} - {""}),
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

        attendees = {"on_duty": [p for p in (person(m, names) for m in rot_on_duty(rotation, meeting_at)) if p],
                     "manager": person(getattr(rotation, "manager", None), names),
                     "product_manager": person(getattr(rotation, "product_manager", None), names)}
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
        "lists": list_sections(snapshot, lists, caps or RowCaps(), base_url),
        "lists_skipped": list(lists_skipped),
        "people": people(names, [u for r in items for u in (r["moved_by"], r["owner"], r["author"],
                                                               (r["last_comment"] or {}).get("author"))]),
    }


def agenda_task_ids(agenda: Mapping[str, Any]) -> list[int]:
    return [int(r["id"]) for r in agenda["items"]]


# --------------------------------------------------------------------------------------------
# Metrics report

