"""rotation-notice: one finding per upcoming on/off change, subject = the notice's key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from checkdata import SECOND, SnapshotBuilder, at, days, keys, run_check
from clinicbot.checks.notices import RotationNoticeCheck
from clinicbot.rotation import parse_rotation

ROTATION = parse_rotation("""\
timezone: Europe/Berlin
handoff: "09:00"
on_duty: {min: 2, max: 3}
members:
  - {username: alice, name: Alice A., email: alice@example.org, chat: "@alice"}
  - bob
  - carol
  - dave
cycle:
  start: 2026-11-02
  order: [alice, bob, carol, dave]
  shift_length: 3w
  per_shift: 3
  stagger: 1w
""", "rotation.yaml")
HANDOFF = at("2026-11-09 09:00", "Europe/Berlin")  # alice off, dave on
NOTICE = RotationNoticeCheck()


def _run(now: datetime, **kw):
    return run_check(NOTICE, SnapshotBuilder(now).build(), rotation=ROTATION, **kw)


def test_one_finding_per_notice_with_the_notice_key_as_subject():
    f = _run(at("2026-11-05 12:00"))
    assert keys(f) == ["rotation-notice:-:alice:off:2026-11-09", "rotation-notice:-:dave:on:2026-11-09"]
    off, on = f
    assert off.task_id is None and off.task_phid is None and off.severity == "info"
    assert off.subject == "alice:off:2026-11-09"
    assert off.summary == "Alice A. (alice) goes off duty on Mon 2026-11-09 09:00 (Europe/Berlin)"
    assert on.summary == "dave goes on duty on Mon 2026-11-09 09:00 (Europe/Berlin)"
    assert off.facts["kind"] == "off" and off.facts["who"] == "alice" and off.facts["email"] == "alice@example.org"
    assert off.facts["chat"] == "@alice" and off.facts["name"] == "Alice A."
    assert off.facts["at_local"] == "Mon 2026-11-09 09:00 (Europe/Berlin)" and off.facts["timezone"] == "Europe/Berlin"
    assert off.facts["notice_key"] == "alice:off:2026-11-09"
    assert "rotates OFF" in off.facts["message"]
    assert off.facts["in_days"] == round((HANDOFF - at("2026-11-05 12:00")) / timedelta(days=1), 1)


def test_only_changes_within_the_window():
    def on_the_ninth(findings):
        return [f.subject for f in findings if f.subject.endswith("2026-11-09")]

    # (the cycle's start on 2 November is inside the window a week before the 9th)
    assert on_the_ninth(_run(HANDOFF - days(7) - SECOND)) == []
    assert len(on_the_ninth(_run(HANDOFF - days(7) + SECOND))) == 2
    assert _run(HANDOFF - days(3) - SECOND, days=3) == []
    assert len(_run(HANDOFF - days(2), days=3)) == 2


def test_no_rotation_no_findings():
    assert run_check(NOTICE, SnapshotBuilder(at("2026-11-05 12:00")).build()) == []


def test_another_notices_source_can_be_plugged_in():
    @dataclass
    class Member:
        username: str
        name: str = ""
        email: str = ""
        chat: str = ""

    @dataclass
    class Notice:
        key: str
        member: Member
        kind: str
        at: datetime

    @dataclass
    class Rot:
        timezone: str = "UTC"

    seen = {}

    def notices(rot, now, days=7):
        seen["days"] = days
        return [Notice("erin:on:2024-05-10", Member("erin"), "on", now + timedelta(days=2))]

    check = RotationNoticeCheck(notices)
    f = run_check(check, SnapshotBuilder(at("2024-05-08 12:00")).build(), rotation=Rot(), days=5)
    assert seen == {"days": 5}
    assert keys(f) == ["rotation-notice:-:erin:on:2024-05-10"]
    assert f[0].summary == "erin goes on duty on Fri 2024-05-10 12:00 (UTC)" and f[0].facts["message"] == ""
