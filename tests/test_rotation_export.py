"""iCalendar and Remarkup exports of the rotation."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from icalendar import Calendar

from clinicbot.rotation import load_rotation, parse_rotation, shifts_between
from clinicbot.rotation_export import calendar_bytes, replace_section, shift_uid, wiki_section, write_atomic

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


def test_wiki_section_shows_now_and_next_without_mentions():
    rot = load_rotation(EXAMPLE)
    text = wiki_section(rot, NOW)
    assert text.startswith("= Current Clinic Duty Rotation =\n")
    now_part = text.split("**On duty now**")[1].split("**Next shifts")[0]
    for name in ("grace", "heidi", "alice"):
        assert name in now_part
    next_part = text.split("**Next shifts")[1]
    assert "Bob Brown (bob) | Mon 2026-12-21 09:00" in next_part
    assert "Dave Davis (dave) | Thu 2026-12-24 09:00 | Mon 2027-01-04 09:00 | covering (override)" in next_part
    assert "@" not in text  # usernames are plain text: publishing pings nobody
    assert "Mona Martinez (mona)" in text
    # No run timestamp: the section only changes when the rotation does.
    assert wiki_section(rot, NOW + timedelta(hours=6)) == text
    assert wiki_section(rot, datetime(2026, 12, 21, 8, 30, tzinfo=timezone.utc)) != text


def test_wiki_section_lists_gaps_and_replaces_itself():
    text = EXAMPLE.read_text() + "  - {member: bob, from: 2027-01-05, to: 2027-01-06, reason: sick}\n"
    rot = parse_rotation(text.replace("min: 2", "min: 3"), "rotation.yaml")
    section = wiki_section(rot, NOW + timedelta(weeks=1))
    gaps = section.split("**Coverage gaps (fewer than 3 on duty)**")[1]
    assert "- Tue 2027-01-05 09:00 to Thu 2027-01-07 09:00: carol, dave — bob unavailable (sick)" in gaps
    page = "= Team =\n\nhello\n"
    once = replace_section(page, section)
    assert once.startswith(page) and replace_section(once, section) == once


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
