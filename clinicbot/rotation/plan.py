"""Planning: the cycle + the explicit shifts -> overrides -> unavailability, as pieces of duty."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Iterable

from clinicbot.rotation.types import Override, Rotation, Shift


# --------------------------------------------------------------------------------------------
# Planning: cycle + shifts -> overrides -> unavailability


def _cycle_shifts(rot: Rotation, start: datetime, end: datetime) -> list[Shift]:
    c = rot.cycle
    if c is None:
        return []
    s, n, g, p = c.stagger_days, len(c.order), c.per_handoff, c.generations
    d0, d1 = (rot.duty_date(start) - c.start).days, (rot.duty_date(end) - c.start).days
    # Slot i starts on local date start + i*stagger. The first p-1 slots begin before the start
    # date and are clipped to it, so the first per_shift names of `order` are all on at start.
    lo, hi = max(-(p - 1), (d0 - c.shift_days) // s - 1), d1 // s + 1
    stop = rot.handoff_at(c.until + timedelta(days=1)) if c.until else None
    out = []
    for i in range(lo, hi + 1):
        first = c.start + timedelta(days=i * s)
        a = rot.handoff_at(max(first, c.start))
        b = rot.handoff_at(first + timedelta(days=c.shift_days))
        if stop is not None:
            b = min(b, stop)
        if a >= b or a >= end or b <= start:
            continue
        for j in range(g):
            name = c.order[((i + p - 1) * g + j) % n]
            out.append(Shift(rot.members[name], a, b, "cycle", "cycle", c.line))
    return out


def _planned(rot: Rotation, start: datetime, end: datetime) -> list[Shift]:
    out = _cycle_shifts(rot, start, end)
    for sh in rot.shifts:
        if sh.start < end and sh.end > start:
            out += [Shift(rot.members[n], sh.start, sh.end, "shift", sh.key, sh.line) for n in sh.members]
    return out


def _cut(pieces: list[Shift], username: str, a: datetime, b: datetime) -> tuple[list[Shift], list[Shift]]:
    """Split ``username``'s pieces at [a, b): (kept pieces, the parts inside [a, b))."""
    kept, taken = [], []
    for p in pieces:
        if p.member.username != username or p.end <= a or p.start >= b:
            kept.append(p)
            continue
        if p.start < a:
            kept.append(_with(p, end=a))
        if p.end > b:
            kept.append(_with(p, start=b))
        taken.append(_with(p, start=max(p.start, a), end=min(p.end, b)))
    return kept, taken


def _with(p: Shift, **kw: Any) -> Shift:
    return Shift(**{**p.__dict__, **kw})


def _pieces(rot: Rotation, start: datetime, end: datetime, *, overrides: Iterable[Override] | None = None,
            unavailable: bool = True) -> list[Shift]:
    # Shifts stay whole (not clipped to the window) so callers see real start/end times. Every
    # override and unavailability is applied, not only those inside the window: one outside it
    # can still shorten a shift that reaches into the window. Both lists are short.
    pieces = _planned(rot, start, end)
    for o in rot.overrides if overrides is None else overrides:
        pieces, taken = _cut(pieces, o.replace, o.start, o.end)
        pieces += [Shift(rot.members[o.by], t.start, t.end, "override", o.key, o.line) for t in taken]
    if unavailable:
        for u in rot.unavailable:
            pieces, _ = _cut(pieces, u.member, u.start, u.end)
    return [p for p in pieces if p.start < end and p.end > start]


def _sort(rot: Rotation, pieces: Iterable[Shift]) -> list[Shift]:
    return sorted(pieces, key=lambda p: (p.start, rot.order_index(p.member.username), p.end))


def _merged(pieces: Iterable[Shift]) -> dict[str, list[list[Any]]]:
    """Per member: [start, end, first piece, last piece] with back-to-back pieces joined."""
    out: dict[str, list[list[Any]]] = {}
    for p in sorted(pieces, key=lambda p: (p.member.username, p.start)):
        runs = out.setdefault(p.member.username, [])
        if runs and p.start <= runs[-1][1]:
            if p.end > runs[-1][1]:
                runs[-1][1], runs[-1][3] = p.end, p
        else:
            runs.append([p.start, p.end, p, p])
    return out

