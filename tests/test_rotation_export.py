"""iCalendar and Remarkup exports of the rotation."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from icalendar import Calendar

from clinicbot.rotation import load_rotation, parse_rotation, shifts_between
from clinicbot.rotation.export import (calendar_bytes, replace_section, schedule_window, shift_uid, wiki_section,
                                       write_atomic)

EXAMPLE = Path(__file__).parent.parent / "rotation.yaml"
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 12, 20, 12, 0, tzinfo=timezone.utc)


def _events(data: bytes):
    cal = Calendar.from_ical(data)
    return [c for c in cal.walk("VEVENT")]


def test_ical_parses_one_event_per_member_shift_with_team_timezone():
    rot = load_rotation(EXAMPLE)
    start, end = NOW - timedelta(weeks=2), NOW + timedelta(weeks=12)
    events = _events(calendar_bytes(rot, start, end, now=NOW))
    shifts = shifts_between(rot, start, end)
    assert len(events) == len(shifts) > 10
    assert [str(e["UID"]) for e in events] == [shift_uid(s) for s in shifts]
    for ev, sh in zip(events, shifts):
        dtstart, dtend = ev.decoded("DTSTART"), ev.decoded("DTEND")
        assert ev["DTSTART"].params["TZID"] == "Europe/Berlin"
        assert dtstart == sh.start and dtend == sh.end
        assert sh.member.username in str(ev["SUMMARY"])
    cal = Calendar.from_ical(calendar_bytes(rot, start, end, now=NOW))
    assert [str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")] == ["Europe/Berlin"]
    # A regular shift starts at 09:00 local, in winter and in summer.
    local = {ev.decoded("DTSTART").astimezone(BERLIN).strftime("%H:%M") for ev in events}
    assert local == {"09:00"}


def test_regenerating_keeps_the_uids():
    rot = load_rotation(EXAMPLE)
    start, end = NOW, NOW + timedelta(weeks=8)
    first = {str(e["UID"]): e for e in _events(calendar_bytes(rot, start, end, now=NOW))}
    again = {str(e["UID"]): e for e in _events(calendar_bytes(rot, start, end, now=NOW + timedelta(hours=5)))}
    assert first.keys() == again.keys()
    # A week later the window has moved; the shifts both runs see keep their UIDs.
    later = {str(e["UID"]) for e in _events(calendar_bytes(rot, start + timedelta(weeks=1), end + timedelta(weeks=1),
                                                           now=NOW + timedelta(weeks=1)))}
    common = shifts_between(rot, start + timedelta(weeks=1), end)
    assert {shift_uid(s) for s in common} <= first.keys() & later


def test_override_piece_is_its_own_event():
    rot = load_rotation(EXAMPLE)
    events = _events(calendar_bytes(rot, NOW, NOW + timedelta(weeks=3), now=NOW))
    dave = [e for e in events if "dave" in str(e["UID"])]
    assert [e.decoded("DTSTART").astimezone(BERLIN).day for e in dave] == [24, 4]
    alice = next(e for e in events if "alice" in str(e["UID"]))
    assert alice.decoded("DTEND").astimezone(BERLIN) == datetime(2026, 12, 24, 9, tzinfo=BERLIN)


def test_write_atomic_leaves_no_temp_files(tmp_path):
    target = tmp_path / "rotation.ics"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["rotation.ics"]


def test_wiki_section_is_the_files_schedule_not_todays():
    rot = load_rotation(EXAMPLE)
    text = wiki_section(rot)
    assert text.startswith("= Current Clinic Duty Rotation =\n")
    assert "On duty now" not in text and "Next shifts" not in text  # nothing relative to a "now"
    regular = text.split("**Regular rotation**")[1].split("**Schedule")[0]
    assert "From Mon 2026-11-02 09:00: 3 on duty; every 1 week 1 engineer rotates on" in regular
    assert "each serves 3 weeks" in regular and "comes round again every 8 weeks" in regular
    # The window comes from the file: its first exception (2026-12-24) to one round of the
    # cycle after its last one (frank's vacation ends 2027-02-13), on a cycle handoff.
    assert schedule_window(rot) == (datetime(2026, 12, 24, 8, tzinfo=timezone.utc),
                                    datetime(2027, 4, 12, 7, tzinfo=timezone.utc), True)
    schedule = text.split("**Schedule from Thu 2026-12-24 09:00 to Mon 2027-04-12 09:00**")[1]
    assert "| `Bob Brown (bob)` | Mon 2026-12-21 09:00 | Mon 2027-01-11 09:00 | regular rotation |" in schedule
    assert "| `Dave Davis (dave)` | Thu 2026-12-24 09:00 | Mon 2027-01-04 09:00 | covering (override) |" in schedule
    assert "After that the regular rotation goes on in the same order." in schedule
    assert "@" not in text  # usernames are plain text: publishing pings nobody
    assert "Manager: `Mona Martinez (mona)`" in text


def test_wiki_section_changes_only_with_the_facts():
    text = EXAMPLE.read_text()
    base = wiki_section(parse_rotation(text, "rotation.yaml"))
    assert wiki_section(parse_rotation(text, "rotation.yaml")) == base
    # A new override is a new fact: the page changes.
    swap = text.replace("unavailable:\n", "  - {from: 2027-01-18, to: 2027-01-24, replace: erin, with: alice}\n"
                                          "unavailable:\n", 1)
    changed = wiki_section(parse_rotation(swap, "rotation.yaml"))
    assert changed != base
    assert "| `Alice Anderson (alice)` | Mon 2027-01-18 09:00 | Mon 2027-01-25 09:00 | covering (override) |" in changed
    # So is a new manager.
    assert wiki_section(parse_rotation(text.replace("name: Mona Martinez", "name: Mona M."), "rotation.yaml")) != base


def test_wiki_section_is_the_same_whatever_the_clock(monkeypatch):
    # Nothing reads the wall clock either: freeze datetime.now far in the future and compare.
    import clinicbot.rotation.export as export_mod
    import clinicbot.rotation.parse as parse_mod
    import clinicbot.rotation.plan as plan_mod
    import clinicbot.rotation.query as query_mod
    import clinicbot.rotation.types as types_mod

    rot = load_rotation(EXAMPLE)
    base = wiki_section(rot)

    class Later(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2031, 5, 5, 5, 5, tzinfo=tz or timezone.utc)

        @classmethod
        def utcnow(cls):
            return datetime(2031, 5, 5, 5, 5)

    for module in (types_mod, parse_mod, plan_mod, query_mod, export_mod):  # every module of the package
        monkeypatch.setattr(module, "datetime", Later)
    assert wiki_section(rot) == base


def test_wiki_section_lists_gaps_and_replaces_itself():
    text = EXAMPLE.read_text() + "  - {member: bob, from: 2027-01-05, to: 2027-01-06, reason: sick}\n"
    rot = parse_rotation(text.replace("min: 2", "min: 3"), "rotation.yaml")
    section = wiki_section(rot)
    gaps = section.split("**Coverage gaps (fewer than 3 on duty)**")[1]
    assert ("- Tue 2027-01-05 09:00 to Thu 2027-01-07 09:00: `carol`, `dave` — `bob unavailable (sick)`"
            in gaps)
    page = "= Team =\n\nhello\n"
    once = replace_section(page, section)
    assert once.startswith(page) and replace_section(once, section) == once


def test_wiki_section_of_hand_written_shifts_says_where_the_plan_ends():
    text = """\
timezone: UTC
on_duty: {min: 1, max: 2}
members: [ann, ben]
shifts:
  - {from: 2027-03-01, to: 2027-03-07, members: [ann]}
  - {from: 2027-03-08, to: 2027-03-14, members: [ben]}
"""
    section = wiki_section(parse_rotation(text, "r.yaml"))
    assert "**Regular rotation**" not in section
    assert "**Schedule from Mon 2027-03-01 09:00 to Mon 2027-03-15 09:00**" in section
    assert "| `ben` | Mon 2027-03-08 09:00 | Mon 2027-03-15 09:00 | hand-planned shift |" in section
    assert "Nothing is planned after Mon 2027-03-15 09:00." in section


def test_wiki_section_names_are_inert_and_cannot_split_cells():
    text = EXAMPLE.read_text().replace("name: Alice Anderson", "name: \"**Al** | @bob {F1} [[ http://x | y ]]\"")
    section = wiki_section(parse_rotation(text, "rotation.yaml"))
    row = next(line for line in section.splitlines() if "Al**" in line and line.startswith("|"))
    assert row.count("|") == 5  # the name's "|" does not add a cell
    assert "`**Al**" in row  # inside inline monospace: shown, not rendered


def test_written_files_are_readable_by_others(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        target = tmp_path / "index.html"
        write_atomic(target, "<html></html>")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644 and target.read_text() == "<html></html>"
