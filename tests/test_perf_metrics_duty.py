"""The metrics ask who was on duty at every arrival in the window (~25,000 times at 100,000 tasks):
``duty_lookup`` plans the rotation once for the window and must answer exactly as ``on_duty`` does,
at every handoff, override and unavailability boundary and just before it, and outside the window."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinicbot.rotation import on_duty, parse_rotation, shifts_between
from clinicbot.rotation import plan as rotation_plan
from clinicbot.rotation.query import duty_lookup
from test_rotation import BASE, berlin
from test_rotation_props import WINDOW_DAYS, _window, rotations

EXTRAS = """\
shifts:
  - {from: 2026-11-20, to: "2026-11-24 15:00", members: [heidi]}
overrides:
  - {from: 2026-11-11, to: 2026-11-12, replace: bob, with: heidi, reason: dentist}
  - {from: 2026-11-16, to: 2026-11-22, replace: erin, with: frank}
  - {from: 2026-11-23, to: 2026-11-29, replace: frank, with: erin}
unavailable:
  - {member: carol, from: 2026-11-05, to: 2026-11-06}
  - {member: heidi, from: "2026-11-22 13:00", to: 2026-11-22}
"""


def _instants(rot, begin, end):
    """Every boundary of a planned piece (and a microsecond before and after), plus each hour."""
    cuts = {t for p in shifts_between(rot, begin, end) for t in (p.start, p.end)}
    tick = timedelta(microseconds=1)
    hours = [begin + timedelta(hours=h) for h in range(int((end - begin).total_seconds() // 3600) + 1)]
    return sorted({t + d for t in cuts for d in (-tick, timedelta(0), tick)} | set(hours) | {begin, end})


def test_duty_lookup_agrees_with_on_duty_with_shifts_overrides_and_unavailability():
    rot = parse_rotation(BASE.replace("max: 3", "max: 4") + EXTRAS, "r.yaml")
    begin, end = berlin(2026, 11, 1), berlin(2026, 12, 1)
    lookup = duty_lookup(rot, begin, end)
    instants = _instants(rot, begin - timedelta(days=2), end + timedelta(days=2))  # outside too
    assert len(instants) > 700
    seen = set()
    for at in instants:
        got = lookup(at)
        assert got == on_duty(rot, at), at
        seen.add(tuple(m.username for m in got))
    assert len(seen) > 10  # the overrides and the unavailability changed the answers


def test_duty_lookup_plans_the_rotation_once(monkeypatch):
    rot = parse_rotation(BASE.replace("max: 3", "max: 4") + EXTRAS, "r.yaml")
    begin, end = berlin(2026, 11, 1), berlin(2026, 12, 1)
    calls = []
    real = rotation_plan._cycle_shifts
    monkeypatch.setattr(rotation_plan, "_cycle_shifts", lambda *a: calls.append(a) or real(*a))
    lookup = duty_lookup(rot, begin, end)
    for h in range(0, 30 * 24, 5):
        lookup(begin + timedelta(hours=h))
    assert len(calls) == 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_duty_lookup_agrees_with_on_duty_for_generated_cycles(data):
    rot, start, _ = data.draw(rotations())
    begin, end = _window(rot, start)
    lo = data.draw(st.integers(0, WINDOW_DAYS - 1))
    hi = data.draw(st.integers(lo + 1, WINDOW_DAYS))
    a, b = begin + timedelta(days=lo, hours=3), begin + timedelta(days=hi)
    lookup = duty_lookup(rot, a, b)
    for at in _instants(rot, a - timedelta(hours=30), b + timedelta(hours=30)):
        assert lookup(at) == on_duty(rot, at), at


def test_a_long_window_is_planned_in_one_sweep_and_agrees(monkeypatch):
    """``--window 3650`` is allowed: the answers come from one sweep over the pieces, not from
    asking every piece at every boundary (cuts x pieces: 10^7 for ten years)."""
    from clinicbot.rotation.types import Shift

    rot = parse_rotation(BASE.replace("max: 3", "max: 4") + EXTRAS, "r.yaml")
    begin, end = berlin(2026, 6, 1), berlin(2027, 7, 1)
    asked = []
    real = Shift.covers
    monkeypatch.setattr(Shift, "covers", lambda self, at: asked.append(1) or real(self, at))
    lookup = duty_lookup(rot, begin, end)
    assert not asked
    monkeypatch.setattr(Shift, "covers", real)
    instants = _instants(rot, begin, end)[::7]
    assert len(instants) > 1000
    for at in instants:
        assert lookup(at) == on_duty(rot, at), at
