"""rotation.yaml: parsing, who is on duty, changes, gaps, notices, errors with file:line and key."""

from __future__ import annotations

import textwrap
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from clinicbot.errors import ConduitShapeError

from clinicbot.errors import EXIT_CONFIG, RotationError
from clinicbot.rotation import (
    RotationWarning,
    changes_between,
    check_members_on_server,
    coverage_gaps,
    load_rotation,
    notices,
    on_duty,
    on_duty_for_event,
    parse_rotation,
    shifts_between,
    upcoming_changes,
    validate,
)

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "rotation.yaml"
BERLIN = ZoneInfo("Europe/Berlin")
UTC = timezone.utc

BASE = """\
timezone: Europe/Berlin
handoff: "09:00"
on_duty: {min: 2, max: 3}
members: [alice, bob, carol, dave, erin, frank, grace, heidi]
cycle:
  start: 2026-11-02
  order: [alice, bob, carol, dave, erin, frank, grace, heidi]
  shift_length: 3w
  per_shift: 3
  stagger: 1w
"""


def rot_of(extra: str = "", base: str = BASE):
    return parse_rotation(base + textwrap.dedent(extra), "team/rotation.yaml")


def berlin(y: int, m: int, d: int, hh: int = 12, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=BERLIN)


def names(members) -> list[str]:
    return sorted(m.username for m in members)


# --------------------------------------------------------------------------------------------
# The example file


def test_example_rotation_loads_and_has_no_warnings():
    rot = load_rotation(EXAMPLE)
    assert rot.tz_name == "Europe/Berlin" and rot.handoff.hour == 9
    assert (rot.min_on_duty, rot.max_on_duty) == (2, 3)
    assert list(rot.members) == ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
    assert rot.manager.username == "mona" and rot.product_manager.username == "pete"
    now = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
    assert validate(rot, now) == []
    assert validate(rot, now, timedelta(weeks=30)) == []
    assert 2 <= len(on_duty(rot, now)) <= 3


def test_example_override_covers_the_holidays():
    rot = load_rotation(EXAMPLE)
    assert names(on_duty(rot, berlin(2026, 12, 24, 8, 59))) == ["alice", "bob", "heidi"]
    assert names(on_duty(rot, berlin(2026, 12, 24, 9, 0))) == ["bob", "dave", "heidi"]
    assert coverage_gaps(rot, berlin(2026, 12, 1), berlin(2027, 2, 1)) == []


# --------------------------------------------------------------------------------------------
# The cycle


def test_cycle_starts_with_the_first_per_shift_members_and_staggers_weekly():
    rot = rot_of()
    assert on_duty(rot, berlin(2026, 11, 2, 8, 59)) == []
    assert names(on_duty(rot, berlin(2026, 11, 2, 9, 0))) == ["alice", "bob", "carol"]
    assert names(on_duty(rot, berlin(2026, 11, 9, 9, 0))) == ["bob", "carol", "dave"]
    assert names(on_duty(rot, berlin(2026, 11, 16, 9, 0))) == ["carol", "dave", "erin"]
    # After a full round, alice comes back.
    assert "alice" in names(on_duty(rot, berlin(2026, 12, 14, 9, 0)))


def test_every_regular_shift_is_three_weeks():
    rot = rot_of()
    shifts = shifts_between(rot, berlin(2026, 11, 23), berlin(2027, 3, 1))
    assert shifts and all(s.source == "cycle" for s in shifts)
    starts = [s for s in shifts if s.start >= berlin(2026, 11, 23, 9)]
    assert all((s.end - s.start) == timedelta(weeks=3) for s in starts)  # no DST inside this window


def test_all_at_once_cycle_without_stagger():
    rot = rot_of(base=BASE.replace("  stagger: 1w\n", "").replace("3w", "1w").replace("per_shift: 3", "per_shift: 2"))
    assert names(on_duty(rot, berlin(2026, 11, 2, 10))) == ["alice", "bob"]
    assert names(on_duty(rot, berlin(2026, 11, 9, 10))) == ["carol", "dave"]
    changes = changes_between(rot, berlin(2026, 11, 3), berlin(2026, 11, 10))
    assert [(c.member.username, c.kind) for c in changes] == [("alice", "off"), ("bob", "off"), ("carol", "on"),
                                                              ("dave", "on")]


def test_cycle_until_ends_it():
    rot = rot_of(base=BASE + "  until: 2026-11-29\n")
    assert len(on_duty(rot, berlin(2026, 11, 30, 8))) == 3
    assert on_duty(rot, berlin(2026, 11, 30, 9)) == []


def test_on_duty_for_event_accepts_an_epoch_and_naive_datetimes_are_refused():
    rot = rot_of()
    at = berlin(2026, 11, 10, 14)
    assert on_duty_for_event(rot, int(at.timestamp())) == on_duty(rot, at) == on_duty_for_event(rot, at)
    with pytest.raises(ValueError):
        on_duty(rot, datetime(2026, 11, 10, 14))


def test_changes_bring_on_duty_from_start_to_end():
    rot = load_rotation(EXAMPLE)
    start, end = berlin(2026, 12, 1), berlin(2027, 2, 20)
    current = set(names(on_duty(rot, start)))
    for ch in changes_between(rot, start, end):
        (current.add if ch.kind == "on" else current.discard)(ch.member.username)
    assert current == set(names(on_duty(rot, end)))


# --------------------------------------------------------------------------------------------
# DST: Europe/Berlin goes to summer time on 2026-03-29 and back on 2026-10-25.


@pytest.mark.parametrize("before, after", [((2026, 3, 23), (2026, 3, 30)), ((2026, 10, 19), (2026, 10, 26))])
def test_weekly_handoff_is_at_nine_local_on_both_sides_of_a_dst_change(before, after):
    rot = rot_of(base=BASE.replace("2026-11-02", "2026-01-05"))
    changes = changes_between(rot, datetime(*before, tzinfo=BERLIN), datetime(*after, 23, tzinfo=BERLIN))
    instants = sorted({c.at for c in changes})
    assert [i.astimezone(BERLIN).date() for i in instants] == [date(*before), date(*after)]
    assert all((i.astimezone(BERLIN).hour, i.astimezone(BERLIN).minute) == (9, 0) for i in instants)
    utc_hours = [i.astimezone(UTC).hour for i in instants]
    assert utc_hours == ([8, 7] if before[1] == 3 else [7, 8])  # the UTC hour moves, the local one does not
    assert instants[1] - instants[0] != timedelta(weeks=1)  # 167 or 169 hours: not "+ 7 x 24 h in UTC"


def test_daily_handoffs_across_the_dst_weekend_stay_at_local_handoff_time():
    base = BASE.replace("2026-11-02", "2026-03-26").replace("3w", "2d").replace("1w", "1d").replace(
        "per_shift: 3", "per_shift: 2").replace('"09:00"', '"08:30"')
    rot = rot_of(base=base)
    changes = changes_between(rot, berlin(2026, 3, 26), berlin(2026, 4, 2))
    local = sorted({c.at.astimezone(BERLIN) for c in changes})
    assert [d.day for d in local] == [27, 28, 29, 30, 31, 1, 2]
    assert {(d.hour, d.minute) for d in local} == {(8, 30)}


# --------------------------------------------------------------------------------------------
# Shifts, overrides, unavailability


def test_explicit_shifts_without_a_cycle():
    rot = parse_rotation(textwrap.dedent("""\
        timezone: Europe/Berlin
        members: [alice, bob, carol]
        on_duty: {min: 1, max: 2}
        shifts:
          - {from: 2026-12-01, to: 2026-12-07, members: [alice, bob]}
          - {from: 2026-12-08, to: 2026-12-14, members: carol}
    """), "r.yaml")
    assert names(on_duty(rot, berlin(2026, 12, 7, 23))) == ["alice", "bob"]
    assert names(on_duty(rot, berlin(2026, 12, 8, 9))) == ["carol"]  # to is inclusive: Dec 7 ends Dec 8 09:00
    assert names(on_duty(rot, berlin(2026, 12, 15, 9))) == []
    assert [s.source for s in shifts_between(rot, berlin(2026, 12, 1), berlin(2026, 12, 20))] == ["shift"] * 3


def test_explicit_shift_adds_to_the_cycle_and_date_times_are_allowed():
    rot = rot_of("""\
        shifts:
          - from: 2026-10-26
            to: "2026-11-02 09:00"
            members: [heidi]
    """)
    assert names(on_duty(rot, berlin(2026, 10, 27))) == ["heidi"]
    assert names(on_duty(rot, berlin(2026, 11, 2, 9, 30))) == ["alice", "bob", "carol"]


def test_override_replaces_a_member_for_a_date_range():
    rot = rot_of("""\
        overrides:
          - {from: 2026-11-11, to: 2026-11-12, replace: bob, with: heidi, reason: dentist}
    """)
    assert names(on_duty(rot, berlin(2026, 11, 11, 8))) == ["bob", "carol", "dave"]
    assert names(on_duty(rot, berlin(2026, 11, 11, 10))) == ["carol", "dave", "heidi"]
    assert names(on_duty(rot, berlin(2026, 11, 13, 9))) == ["bob", "carol", "dave"]
    heidi = [s for s in shifts_between(rot, berlin(2026, 11, 10), berlin(2026, 11, 14)) if s.member.username == "heidi"]
    assert [(s.source, s.key) for s in heidi] == [("override", "overrides[0]")]
    changes = changes_between(rot, berlin(2026, 11, 10), berlin(2026, 11, 14))
    kinds = [(c.member.username, c.kind, c.source) for c in changes]
    assert kinds == [("bob", "off", "override"), ("heidi", "on", "override"), ("heidi", "off", "override"),
                     ("bob", "on", "override")]


def test_swap_is_two_overrides():
    rot = rot_of("""\
        overrides:
          - {from: 2026-11-16, to: 2026-11-22, replace: erin, with: frank}
          - {from: 2026-11-23, to: 2026-11-29, replace: frank, with: erin}
    """)
    assert "frank" in names(on_duty(rot, berlin(2026, 11, 17)))
    assert "erin" not in names(on_duty(rot, berlin(2026, 11, 17)))
    week2 = names(on_duty(rot, berlin(2026, 11, 24)))
    assert "erin" in week2 and "frank" not in week2


def test_unavailable_member_is_off_duty_and_the_gap_is_reported():
    rot = rot_of("""\
        unavailable:
          - member: carol
            from: 2026-11-18
            to: 2026-11-19
            reason: conference
    """)
    assert names(on_duty(rot, berlin(2026, 11, 18, 12))) == ["dave", "erin"]
    rot_min3 = rot_of("""\
        unavailable:
          - {member: carol, from: 2026-11-18, to: 2026-11-19, reason: conference}
    """, base=BASE.replace("min: 2", "min: 3"))
    gaps = coverage_gaps(rot_min3, berlin(2026, 11, 16), berlin(2026, 11, 30))
    assert len(gaps) == 1
    g = gaps[0]
    assert (g.start, g.end) == (berlin(2026, 11, 18, 9), berlin(2026, 11, 20, 9))
    assert g.on_duty == ("dave", "erin") and g.missing == 1 and g.reasons == ("carol unavailable (conference)",)

    warnings = validate(rot_min3, berlin(2026, 11, 10))
    assert [w.key for w in warnings] == ["unavailable[0]", "on_duty.min"]
    w = warnings[0]
    assert isinstance(w, RotationWarning) and w.file == "team/rotation.yaml"
    assert w.line == BASE.count("\n") + 2  # the "- member: carol" line
    assert "carol is scheduled on duty" in w.message and "override" in w.message
    assert "team/rotation.yaml:" in str(w) and "key 'unavailable[0]'" in str(w)
    assert "from Wed 2026-11-18 09:00 to Fri 2026-11-20 09:00" in warnings[1].message


def test_unavailable_several_members_at_once():
    rot = rot_of("""\
        unavailable:
          - {members: [alice, bob, carol], from: 2026-11-03, to: 2026-11-03, reason: team offsite}
    """)
    assert on_duty(rot, berlin(2026, 11, 3, 12)) == []
    assert len(on_duty(rot, berlin(2026, 11, 4, 12))) == 3


def test_override_warnings_no_effect_and_already_on_duty():
    rot = rot_of("""\
        overrides:
          - {from: 2026-11-03, to: 2026-11-04, replace: heidi, with: grace}
          - {from: 2026-11-03, to: 2026-11-04, replace: alice, with: bob}
    """)
    warnings = validate(rot, berlin(2026, 11, 1))
    by_key = {w.key: w for w in warnings}
    assert "has no effect" in by_key["overrides[0]"].message
    assert "already on duty" in by_key["overrides[1]"].message


def test_gaps_horizon_defaults_to_eight_weeks():
    rot = rot_of(base=BASE + "  until: 2027-03-01\n")
    assert validate(rot, berlin(2026, 12, 1)) == []
    assert [w.key for w in validate(rot, berlin(2027, 1, 10))] == ["on_duty.min"]


# --------------------------------------------------------------------------------------------
# Notices


def test_notices_within_days_with_stable_keys():
    rot = load_rotation(EXAMPLE)
    first = notices(rot, berlin(2026, 12, 17, 12), days=7)
    assert [n.key for n in first] == ["grace:off:2026-12-21", "bob:on:2026-12-21", "alice:off:2026-12-24",
                                      "dave:on:2026-12-24"]
    later = notices(rot, berlin(2026, 12, 20, 12), days=7)
    assert {n.key for n in first} <= {n.key for n in later} | {"x"}  # same change -> same key on another run
    bob = next(n for n in first if n.member.username == "bob")
    assert bob.kind == "on" and bob.at == berlin(2026, 12, 21, 9)
    assert "Mon 2026-12-21 09:00" in bob.message and "Europe/Berlin" in bob.message
    assert notices(rot, berlin(2026, 12, 17, 12), days=2) == []
    assert len(upcoming_changes(rot, berlin(2026, 12, 17, 12), days=14)) == 6


# --------------------------------------------------------------------------------------------
# Errors: file, line and key; exit code 2


def _error(text: str) -> RotationError:
    with pytest.raises(RotationError) as info:
        parse_rotation(text, "conf/rotation.yaml")
    err = info.value
    assert err.exit_code == EXIT_CONFIG
    assert "\n" not in str(err)
    return err


BROKEN = [
    # (name, edit of BASE or full text, key, line)
    ("unknown top-level key", BASE + "handof: '10:00'\n", "handof", 11),
    ("unknown nested key", BASE.replace("  stagger: 1w", "  staggr: 1w"), "cycle.staggr", 10),
    ("bad timezone", BASE.replace("Europe/Berlin", "Europe/Berlim"), "timezone", 1),
    ("bad time", BASE.replace('"09:00"', '"25:00"'), "handoff", 2),
    ("bad date", BASE.replace("2026-11-02", "2026-11-31"), "cycle.start", 6),
    ("bad min/max", BASE.replace("min: 2, max: 3", "min: 3, max: 2"), "on_duty.max", 3),
    ("unknown member in order", BASE.replace("order: [alice,", "order: [alise,"), "cycle.order[0]", 7),
    ("stagger does not fit", BASE.replace("stagger: 1w", "stagger: 2w"), "cycle.stagger", 10),
    ("per_shift over max", BASE.replace("max: 3", "max: 2"), "cycle.per_shift", 9),
    ("shift ends before it starts", BASE + "shifts:\n  - from: 2026-12-10\n    to: 2026-12-01\n    members: [alice]\n",
     "shifts[0].to", 13),
    ("override names an unknown member",
     BASE + "overrides:\n  - from: 2026-12-01\n    to: 2026-12-02\n    replace: alice\n    with: mallory\n",
     "overrides[0].with", 15),
    ("unavailability names an unknown member",
     BASE + "unavailable:\n  - {member: zed, from: 2026-12-01, to: 2026-12-02}\n", "unavailable[0].member", 12),
    ("overlapping contradictory shifts",
     BASE + "shifts:\n  - {from: 2027-01-01, to: 2027-01-10, members: [heidi]}\n"
            "  - {from: 2027-01-05, to: 2027-01-20, members: [heidi]}\n", "shifts[1]", 13),
    ("shift contradicts the cycle", BASE + "shifts:\n  - {from: 2026-11-03, to: 2026-11-04, members: [alice]}\n",
     "shifts[0]", 12),
    ("shift before its cycle twin", BASE + "shifts:\n  - {from: 2026-11-01, to: 2026-11-04, members: [carol]}\n",
     "shifts[0]", 12),
    ("too many on duty", BASE + "shifts:\n  - {from: 2026-11-03, to: 2026-11-04, members: [heidi]}\n",
     "shifts[0]", 12),
    ("override replaces with itself",
     BASE + "overrides:\n  - {from: 2026-12-01, to: 2026-12-02, replace: bob, with: bob}\n", "overrides[0].with", 12),
    ("duplicate member", BASE.replace("members: [alice, bob,", "members: [alice, alice,"), "members[1]", 4),
    ("no cycle and no shifts", "timezone: UTC\nmembers: [a, b]\n", "cycle", 1),
    ("missing timezone", BASE.replace("timezone: Europe/Berlin\n", ""), "timezone", 1),
    ("invalid YAML", BASE + "shifts: [\n", None, 12),
    ("not a number", BASE.replace("per_shift: 3", "per_shift: three"), "cycle.per_shift", 9),
]


@pytest.mark.parametrize("name, text, key, line", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_rotation_names_file_line_and_key(name, text, key, line):
    err = _error(text)
    assert err.file == "conf/rotation.yaml"
    assert err.key == key
    assert err.line == line, str(err)
    assert str(err).startswith(f"conf/rotation.yaml:{line}")
    if key:
        assert f"key '{key}'" in str(err)


def test_error_messages_say_what_to_do():
    text = {b[0]: b[1] for b in BROKEN}
    assert "inclusive" in str(_error(text["shift ends before it starts"]))
    assert "add them under 'members'" in str(_error(text["override names an unknown member"]))
    assert "IANA" in str(_error(text["bad timezone"]))
    assert "known keys" in str(_error(text["unknown top-level key"]))
    msg = str(_error(text["overlapping contradictory shifts"]))
    assert "heidi" in msg and "shifts[0]" in msg and "twice" in msg
    assert "contradicts cycle" in str(_error(text["shift before its cycle twin"]))
    assert "on_duty.max is 3" in str(_error(text["too many on duty"]))


def test_missing_file_is_a_rotation_error(tmp_path):
    with pytest.raises(RotationError, match="file not found"):
        load_rotation(tmp_path / "nope.yaml")


# --------------------------------------------------------------------------------------------
# Members on the server


class FakeUsers:
    def __init__(self, users):
        self.users = users
        self.calls = []

    def search(self, method, constraints=None, attachments=None, **kw):
        self.calls.append((method, constraints, attachments))
        wanted = set(constraints["usernames"])
        return iter(u for u in self.users if u["fields"]["username"] in wanted)


def _user(name, availability="available", until=None):
    return {"phid": f"PHID-USER-{name}", "fields": {"username": name, "roles": ["verified", "approved", "activated"]},
            "attachments": {"availability": {"value": availability, "until": until}}}


def test_check_members_on_server_reports_missing_and_away(rec):
    rot = load_rotation(EXAMPLE)
    present = ["alice", "bob", "carol", "dave", "erin", "frank", "heidi", "mona"]
    users = [_user(n) for n in present]
    users[1] = _user("bob", "away", 1796000000)
    client = FakeUsers(users)
    problems = check_members_on_server(rot, client)
    method, constraints, attachments = client.calls[0]
    assert method == "user.search" and attachments == {"availability": True}
    assert constraints["usernames"] == present[:6] + ["grace", "heidi", "mona", "pete"]
    assert len(problems) == 3
    assert any("grace is not a user" in p for p in problems)
    assert any("pete is not a user" in p for p in problems)
    assert any(p.startswith("warning: bob is away until") for p in problems)
    # The recorded answer to the same kind of call (availability attached) parses too: carol is found.
    recorded = rec("user.search--phids-availability")["response"]["result"]["data"]
    problems = check_members_on_server(rot, FakeUsers(recorded))
    assert sum("is not a user" in p for p in problems) == 9 and not any("carol is" in p for p in problems)
    # An answer without the attachment we asked for is a wrong shape, not "everyone is available".
    bare = rec("user.search--usernames")["response"]["result"]["data"]
    with pytest.raises(ConduitShapeError, match="attachments.availability"):
        check_members_on_server(rot, FakeUsers(bare))


def test_example_team_exists_in_the_sandbox():
    sandbox = pytest.importorskip("clinicbot.sandbox")
    from clinicbot.phab.conduit import ConduitClient

    now = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    sb = sandbox.Sandbox(scenario=sandbox.generate_scenario(now, size=30))
    url = sb.start()
    try:
        problems = check_members_on_server(load_rotation(EXAMPLE), ConduitClient(url, sb.token))
    finally:
        sb.stop()
    assert all(p.startswith("warning: ") and " is away" in p for p in problems), problems
