"""The rotation as an iCalendar file and as a Remarkup wiki section.

The calendar is a function of the rotation and the window asked for; writing the file
(atomically) and publishing the section (``clinicbot.phab.wiki``) happen at the edges.

Calendar clients update an event in place only when its UID stays the same, so a UID is
derived from the member and the shift's start instant, never from a counter or the run.

The wiki section is a function of the rotation file alone: it takes no ``now``. Its schedule
covers a window fixed by the file's own dates (see :func:`schedule_window`), never "today + N
weeks", so the page text changes only when the file does, and a daily publish makes no new
Phriction version until then.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from math import gcd
from pathlib import Path

from icalendar import Calendar, Event

from clinicbot.state.fileio import write_atomic
from clinicbot.escape import remarkup_cell
from clinicbot.rotation import Rotation, Shift, coverage_gaps, shifts_between
from clinicbot.phab.wiki import replace_section

__all__ = ["SECTION_TITLE", "calendar", "calendar_bytes", "replace_section", "schedule_window", "shift_uid",
           "wiki_section", "write_atomic"]

SECTION_TITLE = "Current Clinic Duty Rotation"
_SOURCE_TEXT = {"cycle": "regular rotation", "shift": "hand-planned shift", "override": "covering (override)"}


# --------------------------------------------------------------------------------------------
# iCalendar


def shift_uid(shift: Shift) -> str:
    start = shift.start.strftime("%Y%m%dT%H%M%SZ")  # shift.start is UTC
    return f"clinic-duty-{shift.member.username}-{start}@clinicbot"


def calendar(rot: Rotation, start: datetime, end: datetime, *, now: datetime) -> Calendar:
    """One VEVENT per member-shift overlapping [start, end), times in the team's timezone."""
    cal = Calendar()
    cal.add("prodid", "-//clinicbot//clinic duty rotation//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", rot.name)
    cal.add("x-wr-timezone", rot.tz_name)
    # An override can hand a member a piece that starts where their own shift starts (validate()
    # warns about it); one event per UID, the longer one.
    by_uid: dict[str, Shift] = {}
    for sh in shifts_between(rot, start, end):
        uid = shift_uid(sh)
        if uid not in by_uid or sh.end > by_uid[uid].end:
            by_uid[uid] = sh
    shifts = list(by_uid.values())
    for sh in shifts:
        ev = Event()
        ev.add("uid", shift_uid(sh))
        ev.add("dtstamp", now.astimezone(timezone.utc))
        ev.add("dtstart", rot.local(sh.start))
        ev.add("dtend", rot.local(sh.end))
        ev.add("summary", f"Clinic duty: {sh.member.display}")
        note = _SOURCE_TEXT.get(sh.source, sh.source)
        ev.add("description", f"{sh.member.username} on clinic duty ({note}, {sh.key} in {Path(rot.file).name}). "
                              f"Handoff at {rot.handoff:%H:%M} {rot.tz_name}.")
        ev.add("categories", ["Clinic duty"])
        ev.add("transp", "TRANSPARENT")  # being on duty does not make you busy
        cal.add_component(ev)
    if shifts:
        first = min(s.start for s in shifts) - timedelta(days=1)
        last = max(s.end for s in shifts) + timedelta(days=1)
        cal.add_missing_timezones(first_date=first.date(), last_date=last.date())
    return cal


def calendar_bytes(rot: Rotation, start: datetime, end: datetime, *, now: datetime) -> bytes:
    return bytes(calendar(rot, start, end, now=now).to_ical())


# --------------------------------------------------------------------------------------------
# Remarkup


def _cell(text: str) -> str:
    # Names come from rotation.yaml: shown inert (no @mention, no link) and unable to split a cell.
    return remarkup_cell(text)


def _duration(days: int) -> str:
    if days % 7 == 0:
        weeks = days // 7
        return f"{weeks} week" + ("s" if weeks != 1 else "")
    return f"{days} day" + ("s" if days != 1 else "")


def _round_days(rot: Rotation) -> int:
    """Days until the cycle's order comes round again (the pattern repeats from then on)."""
    c = rot.cycle
    assert c is not None
    n, g = len(c.order), max(1, c.per_handoff)
    return n // gcd(n, g) * c.stagger_days


def schedule_window(rot: Rotation) -> tuple[datetime, datetime, bool]:
    """(start, end, open_ended): the span the wiki schedule covers, from the file's dates only.

    It starts at the earliest hand-written shift, override or unavailability (the cycle's start
    when there are none) and ends at the latest of their ends (the cycle's end when it has an
    ``until``). An open-ended cycle adds one full round of its order after that, so every
    member's regular shift shows at least once after the last exception. ``open_ended`` is True
    when the cycle goes on past ``end``.
    """
    dated = [(x.start, x.end) for x in (*rot.shifts, *rot.overrides, *rot.unavailable)]
    c = rot.cycle
    cycle_start = rot.handoff_at(c.start) if c else None
    start = min(a for a, _ in dated) if dated else cycle_start
    end = max(b for _, b in dated) if dated else cycle_start
    assert start is not None and end is not None  # a rotation has a cycle or shifts (load_rotation)
    if c is None:
        return start, end, False
    if c.until is not None:
        return start, max(end, rot.handoff_at(c.until + timedelta(days=1))), False
    # One round after the last exception, ending at one of the cycle's own handoffs.
    days = (rot.duty_date(max(end, rot.handoff_at(c.start))) - c.start).days + _round_days(rot)
    days = -(-days // c.stagger_days) * c.stagger_days
    return start, rot.handoff_at(c.start + timedelta(days=days)), True


def wiki_section(rot: Rotation, *, title: str = SECTION_TITLE) -> str:
    """``= Current Clinic Duty Rotation =``: the regular rotation, the schedule, gaps and contacts.

    Nothing in it depends on when it is generated (no "now", no "generated at", no horizon from
    today): publishing it again with the same file changes nothing.
    """
    start, end, open_ended = schedule_window(rot)
    lines = [f"= {title} =", "",
             f"//Generated by clinicbot from {Path(rot.file).name}; edit that file, not this section. "
             f"Handoff at {rot.handoff:%H:%M} ({rot.tz_name}); {rot.min_on_duty} to {rot.max_on_duty} "
             f"engineers on duty.//", ""]
    c = rot.cycle
    if c is not None:
        order = ", ".join(_cell(rot.members[u].display) for u in c.order)
        rotate = f"{c.per_handoff} engineer rotates" if c.per_handoff == 1 else f"{c.per_handoff} engineers rotate"
        lines += ["**Regular rotation**", "",
                  f"From {rot.fmt(rot.handoff_at(c.start))}"
                  + (f" to {rot.fmt(rot.handoff_at(c.until + timedelta(days=1)))}" if c.until else "")
                  + f": {c.per_shift} on duty; every {_duration(c.stagger_days)} {rotate} on, in this order, "
                  f"and each serves {_duration(c.shift_days)}: {order}. The order comes round again every "
                  f"{_duration(_round_days(rot))}.", ""]
    lines += [f"**Schedule from {rot.fmt(start)} to {rot.fmt(end)}**", ""]
    shifts = shifts_between(rot, start, end)
    if shifts:
        lines += ["| Engineer | From | Until | |", "| --- | --- | --- | --- |"]
        lines += [f"| {_cell(s.member.display)} | {rot.fmt(s.start)} | {rot.fmt(s.end)} | "
                  f"{_SOURCE_TEXT.get(s.source, s.source)} |" for s in shifts]
    else:
        lines.append("Nobody is on duty in this span.")
    if open_ended:
        lines += ["", "After that the regular rotation goes on in the same order."]
    else:
        lines += ["", f"Nothing is planned after {rot.fmt(end)}."]
    gaps = coverage_gaps(rot, start, end)
    if gaps:
        lines += ["", f"**Coverage gaps (fewer than {rot.min_on_duty} on duty)**", ""]
        for g in gaps:
            who = ", ".join(_cell(u) for u in g.on_duty) or "nobody"
            why = f" — {_cell('; '.join(g.reasons))}" if g.reasons else ""
            lines.append(f"- {rot.fmt(g.start)} to {rot.fmt(g.end)}: {who}{why}")
    contacts = [f"{label}: {_cell(p.display)}" for label, p in (("Manager", rot.manager),
                                                                 ("Product manager", rot.product_manager)) if p]
    if contacts:
        lines += ["", ". ".join(contacts) + "."]
    return "\n".join(lines) + "\n"
