"""Property tests: any valid generated cycle keeps min..max on duty (or lists a gap), hands over
at most ``per_handoff`` people at a time, and always at the local handoff time."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinicbot.rotation import changes_between, coverage_gaps, on_duty, parse_rotation, shifts_between

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC", "America/Sao_Paulo"]
WINDOW_DAYS = 70


@st.composite
def rotations(draw, with_unavailability: bool = True):
    stagger = draw(st.sampled_from([1, 2, 3, 7]))
    generations = draw(st.integers(1, 3))  # slots overlapping at once
    per_handoff = draw(st.integers(1, 2))
    per_shift = generations * per_handoff
    n = draw(st.integers(per_shift, 9))
    lo = draw(st.integers(1, per_shift))
    hi = per_shift + draw(st.integers(0, 1))
    tz = draw(st.sampled_from(ZONES))
    handoff = time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 30])))
    start = draw(st.dates(date(2024, 1, 1), date(2030, 12, 31)))
    members = [f"m{i}" for i in range(n)]
    order = draw(st.permutations(members))
    text = (f"timezone: {tz}\nhandoff: \"{handoff:%H:%M}\"\non_duty: {{min: {lo}, max: {hi}}}\n"
            f"members: [{', '.join(members)}]\n"
            f"cycle:\n  start: {start}\n  order: [{', '.join(order)}]\n  shift_length: {generations * stagger}d\n"
            f"  per_shift: {per_shift}\n  stagger: {stagger}d\n")
    if with_unavailability:
        away = draw(st.lists(st.tuples(st.sampled_from(members), st.integers(0, WINDOW_DAYS), st.integers(0, 10)),
                             max_size=3))
        if away:
            text += "unavailable:\n" + "".join(
                f"  - {{member: {m}, from: {start + timedelta(days=a)}, to: {start + timedelta(days=a + d)}}}\n"
                for m, a, d in away)
    rot = parse_rotation(text, "prop.yaml")
    return rot, start, per_handoff


def _window(rot, start):
    begin = rot.handoff_at(start)
    return begin, begin + timedelta(days=WINDOW_DAYS)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_instant_has_min_to_max_on_duty_unless_a_gap_is_listed(data):
    rot, start, _ = data.draw(rotations())
    begin, end = _window(rot, start)
    gaps = coverage_gaps(rot, begin, end)
    # Sample instants, plus every boundary and just before it, where off-by-one errors live.
    offsets = data.draw(st.lists(st.integers(0, WINDOW_DAYS * 24 * 60 - 1), min_size=5, max_size=20))
    instants = [begin + timedelta(minutes=o) for o in offsets]
    for s in shifts_between(rot, begin, end):
        instants += [t for t in (s.start, s.end, s.start - timedelta(microseconds=1)) if begin <= t < end]
    for at in instants:
        count = len(on_duty(rot, at))
        assert count <= rot.max_on_duty
        if count < rot.min_on_duty:
            assert any(g.start <= at < g.end and len(g.on_duty) == count for g in gaps), (at, count, gaps)
        else:
            assert not any(g.start <= at < g.end for g in gaps)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_plain_cycle_is_always_fully_staffed_and_hands_over_per_handoff_at_a_time(data):
    rot, start, per_handoff = data.draw(rotations(with_unavailability=False))
    begin, end = _window(rot, start)
    assert coverage_gaps(rot, begin, end) == [] or rot.min_on_duty > rot.cycle.per_shift
    changes = changes_between(rot, begin, end)
    by_instant: dict[datetime, list] = {}
    for c in changes:
        by_instant.setdefault(c.at, []).append(c)
    for at, group in by_instant.items():
        ons = [c for c in group if c.kind == "on"]
        offs = [c for c in group if c.kind == "off"]
        assert len(ons) <= per_handoff and len(offs) <= per_handoff
        assert len(on_duty(rot, at)) == rot.cycle.per_shift
    # Consecutive handoffs are one stagger apart in local dates, at the local handoff time.
    instants = sorted(by_instant)
    tz = ZoneInfo(rot.tz_name)
    days = [rot.duty_date(i) for i in instants]
    assert all((b - a).days == rot.cycle.stagger_days for a, b in zip(days, days[1:]))
    for i in instants:
        assert i == datetime.combine(rot.duty_date(i), rot.handoff, tzinfo=tz).astimezone(timezone.utc)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_changes_applied_to_the_start_give_the_end(data):
    rot, start, _ = data.draw(rotations())
    begin, _ = _window(rot, start)
    a = begin + timedelta(minutes=data.draw(st.integers(-3000, 40000)))
    b = a + timedelta(minutes=data.draw(st.integers(0, 60000)))
    current = {m.username for m in on_duty(rot, a)}
    for c in changes_between(rot, a, b):
        if c.kind == "on":
            assert c.member.username not in current
            current.add(c.member.username)
        else:
            assert c.member.username in current
            current.remove(c.member.username)
    assert current == {m.username for m in on_duty(rot, b)}
