"""Queries over a parsed rotation: who is on duty, what changes, gaps, notices, validation, the server check."""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from datetime import datetime, timedelta
from typing import Any, Callable

from clinicbot.phab.boards import parse_user
from clinicbot.rotation.plan import _merged, _pieces, _sort
from clinicbot.rotation.types import (
    _TICK,
    DEFAULT_HORIZON,
    UTC,
    Change,
    Gap,
    Member,
    Notice,
    Rotation,
    RotationWarning,
    Shift,
    _utc,
)


# --------------------------------------------------------------------------------------------
# Queries


def shifts_between(rot: Rotation, start: datetime, end: datetime) -> list[Shift]:
    """Member-shifts (after overrides and unavailability) that overlap [start, end)."""
    return _sort(rot, _pieces(rot, _utc(start), _utc(end)))


def on_duty(rot: Rotation, at: datetime) -> list[Member]:
    """Who is on duty at ``at`` (members-list order)."""
    at = _utc(at)
    names = {p.member.username for p in _pieces(rot, at, at + _TICK) if p.covers(at)}
    return [m for u, m in rot.members.items() if u in names]


def duty_lookup(rot: Rotation, start: datetime, end: datetime) -> Callable[[datetime], list[Member]]:
    """``at -> on_duty(rot, at)`` for many times: the rotation is planned once for [start, end].

    Who is on duty changes only at a piece's start or end, so the answers are kept per stretch
    between those instants and found by bisection (on_duty plans the rotation around each time it is
    asked: the metrics ask for ~25,000 arrival times at 100,000 tasks). Outside [start, end] it
    asks :func:`on_duty`. Same answers: each planned piece is derived from its own shift (overrides
    and unavailability cut pieces one by one), so a wider planning window only adds pieces.
    """
    start, end = _utc(start), _utc(end)
    pieces = _pieces(rot, start, end + _TICK)
    cuts = sorted({start} | {t for p in pieces for t in (p.start, p.end) if start < t <= end})
    order = list(rot.members.items())
    # One sweep over the cuts (a year's window has thousands of pieces): a piece covers a cut
    # from its start (inclusive) to its end (exclusive), as Shift.covers says.
    by_start, by_end = sorted(pieces, key=lambda p: p.start), sorted(pieces, key=lambda p: p.end)
    on: Counter[str] = Counter()
    i = j = 0
    answers = []
    for cut in cuts:
        while i < len(by_start) and by_start[i].start <= cut:
            on[by_start[i].member.username] += 1
            i += 1
        while j < len(by_end) and by_end[j].end <= cut:
            on[by_end[j].member.username] -= 1
            j += 1
        answers.append([m for u, m in order if on[u] > 0])

    def lookup(at: datetime) -> list[Member]:
        if at.tzinfo is not UTC:  # the metrics' times are UTC already
            at = _utc(at)
        if not start <= at <= end:
            return on_duty(rot, at)
        return list(answers[bisect_right(cuts, at) - 1])

    return lookup


def on_duty_for_event(rot: Rotation, event_at: datetime | int) -> list[Member]:
    """Who was on duty when a task event happened (a datetime or a Conduit epoch)."""
    if isinstance(event_at, (int, float)):
        event_at = datetime.fromtimestamp(event_at, tz=UTC)
    return on_duty(rot, event_at)


def changes_between(rot: Rotation, start: datetime, end: datetime) -> list[Change]:
    """Who rotates on/off in (start, end]: applying them to on_duty(start) gives on_duty(end)."""
    start, end = _utc(start), _utc(end)
    out = []
    for runs in _merged(_pieces(rot, start - _TICK, end + _TICK)).values():
        for a, b, first, last in runs:
            if start < a <= end:
                out.append(Change(a, first.member, "on", _why(rot, first.member.username, a, "on", first.source)))
            if start < b <= end:
                out.append(Change(b, last.member, "off", _why(rot, last.member.username, b, "off", last.source)))
    return sorted(out, key=lambda c: (c.at, c.kind != "off", rot.order_index(c.member.username)))


def _why(rot: Rotation, username: str, at: datetime, kind: str, source: str) -> str:
    # Overrides are applied before unavailability, so an override that covers a vacation wins.
    if any(o.replace == username and (o.start if kind == "off" else o.end) == at for o in rot.overrides):
        return "override"
    for u in rot.unavailable:
        if u.member == username and (u.covers(at) if kind == "off" else u.end == at):
            return "unavailable"
    return source


def upcoming_changes(rot: Rotation, now: datetime, days: int = 7) -> list[Change]:
    return changes_between(rot, now, _utc(now) + timedelta(days=days))


def coverage_gaps(rot: Rotation, start: datetime, end: datetime) -> list[Gap]:
    """Stretches of [start, end) with fewer than ``on_duty.min`` engineers on duty."""
    start, end = _utc(start), _utc(end)
    actual = _pieces(rot, start, end)
    planned = _pieces(rot, start, end, unavailable=False)
    cuts = sorted({start, end} | {t for p in actual + planned for t in (p.start, p.end) if start < t < end})
    gaps: list[Gap] = []
    for a, b in zip(cuts, cuts[1:]):
        now_on = {p.member.username for p in actual if p.covers(a)}
        if len(now_on) >= rot.min_on_duty:
            continue
        names = tuple(u for u in rot.members if u in now_on)
        away = {p.member.username for p in planned if p.covers(a)} - now_on
        reasons = tuple(sorted(f"{u.member} unavailable" + (f" ({u.reason})" if u.reason else "")
                               for u in rot.unavailable if u.member in away and u.covers(a)))
        gap = Gap(a, b, names, rot.min_on_duty - len(names), reasons)
        if gaps and gaps[-1].end == a and gaps[-1].on_duty == names and gaps[-1].reasons == reasons:
            gap = Gap(gaps.pop().start, b, names, gap.missing, reasons)
        gaps.append(gap)
    return gaps


def notices(rot: Rotation, now: datetime, days: int = 7) -> list[Notice]:
    """Members rotating on or off within ``days``; ``key`` is stable across runs."""
    out = []
    for ch in upcoming_changes(rot, now, days):
        with_ = ", ".join(m.username for m in on_duty(rot, ch.at) if m != ch.member) or "nobody"
        when = f"{rot.fmt(ch.at)} ({rot.tz_name})"
        if ch.kind == "on":
            msg = f"{ch.member.username} rotates ON clinic duty {when}; on duty with: {with_}"
        else:
            msg = f"{ch.member.username} rotates OFF clinic duty {when}; on duty after: {with_}"
        if ch.source in ("override", "unavailable"):
            msg += f" ({ch.source})"
        key = f"{ch.member.username}:{ch.kind}:{rot.local(ch.at).date().isoformat()}"
        out.append(Notice(key, ch.member, ch.kind, ch.at, msg))
    return out


# --------------------------------------------------------------------------------------------
# Validation


def validate(rot: Rotation, now: datetime, horizon: timedelta = DEFAULT_HORIZON) -> list[RotationWarning]:
    """Warnings (data, not exceptions) about [now, now + horizon).

    Coverage gaps, members scheduled while unavailable, overrides without effect or whose
    replacement is already on duty.
    """
    now = _utc(now)
    end = now + horizon
    out: list[RotationWarning] = []
    for i, o in enumerate(rot.overrides):
        if o.end <= now:
            continue
        before = _pieces(rot, o.start, o.end, overrides=rot.overrides[:i], unavailable=False)
        if not any(p.member.username == o.replace for p in before):
            out.append(RotationWarning(rot.file, o.line, o.key, f"has no effect: {o.replace} is not on duty "
                                       f"between {rot.fmt(o.start)} and {rot.fmt(o.end)}; check the dates"))
        elif any(p.member.username == o.by for p in before):
            out.append(RotationWarning(rot.file, o.line, o.key, f"{o.by} is already on duty during part of this "
                                       "override, so the team is one short then; pick someone else"))
    for u in rot.unavailable:
        a, b = max(u.start, now), min(u.end, end)
        if a >= b:
            continue
        clash = [p for p in _pieces(rot, a, b, unavailable=False) if p.member.username == u.member]
        if clash:
            s, e = max(a, min(p.start for p in clash)), min(b, max(p.end for p in clash))
            why = f" ({u.reason})" if u.reason else ""
            out.append(RotationWarning(rot.file, u.line, u.key, f"{u.member} is scheduled on duty {rot.fmt(s)} – "
                                       f"{rot.fmt(e)} while unavailable{why}; they are taken off duty then — add an "
                                       f"override (replace: {u.member}, with: someone) to fill the gap"))
    for g in coverage_gaps(rot, now, end):
        who = ", ".join(g.on_duty) or "nobody"
        why = f"; {'; '.join(g.reasons)}" if g.reasons else ""
        out.append(RotationWarning(rot.file, rot.lines.get("on_duty"), "on_duty.min",
                                   f"only {len(g.on_duty)} on duty (min {rot.min_on_duty}) from {rot.fmt(g.start)} to "
                                   f"{rot.fmt(g.end)} ({rot.tz_name}): {who}{why}"))
    return out


# --------------------------------------------------------------------------------------------
# The server


def check_members_on_server(rot: Rotation, client: Any) -> list[str]:
    """Problems with the rotation's people on the server. Soft findings start with "warning:"."""
    people = list(rot.members.values()) + [p for p in (rot.manager, rot.product_manager) if p]
    wanted = list(dict.fromkeys(p.username for p in people))
    found: dict[str, dict[str, Any]] = {}
    for user in client.search("user.search", constraints={"usernames": wanted}, attachments={"availability": True}):
        parse_user(user, availability=True)  # the shape we rely on, or one clear ConduitShapeError
        found[str(user["fields"]["username"]).lower()] = user
    out = []
    for name in wanted:
        user = found.get(name.lower())
        if user is None:  # user.search silently drops unknown usernames
            out.append(f"{rot.file}: {name} is not a user on the server; fix the username in the rotation")
            continue
        roles = (user.get("fields") or {}).get("roles") or []
        if "disabled" in roles:
            out.append(f"{rot.file}: {name} is a disabled account; remove them from the rotation")
        avail = ((user.get("attachments") or {}).get("availability") or {})
        if avail.get("value") == "away":
            until = avail.get("until")
            when = f" until {rot.fmt(datetime.fromtimestamp(int(until), tz=UTC))}" if until else ""
            out.append(f"warning: {name} is away{when} (Phabricator availability); check the rotation's 'unavailable'")
    return out
