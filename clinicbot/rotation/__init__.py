"""rotation.yaml: who is on clinic duty at any moment, and what changes next.

The file is read with ``yaml.compose`` (not ``safe_load``) so every value keeps its line
number: errors and warnings name ``file:line`` and the key. Everything after loading is a
pure function of the parsed :class:`Rotation` and an aware datetime handed in by the caller.

Model (see docs/rotation.md for the user-facing description):

* A *duty day* D runs from the handoff time on local date D to the handoff time on D+1, in
  the team's timezone. Every date in the file means a duty day; ``to`` dates are inclusive.
  Handoff instants are always built from a local date + the handoff time and only then
  converted to UTC, so a DST change never shifts the handoff hour (no "+24 h in UTC").
* Planned duty = the generated ``cycle`` plus the hand-written ``shifts`` (additive).
  ``overrides`` then hand a member's duty in a range to someone else (file order), and
  ``unavailable`` ranges cut members off duty *without* a replacement, so the gap shows up.
* Internally every instant is UTC: Python compares datetimes that share one ZoneInfo object
  by wall clock, which is wrong across a DST fold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from clinicbot.errors import RotationError

__all__ = [
    "DEFAULT_HORIZON", "Change", "Cycle", "ExplicitShift", "Gap", "Member", "Notice", "Override", "Rotation",
    "RotationWarning", "Shift", "Unavailability", "changes_between", "check_members_on_server",
    "coverage_gaps", "load_rotation", "notices", "on_duty", "on_duty_for_event", "parse_rotation", "shifts_between",
    "upcoming_changes", "validate",
]

UTC = timezone.utc
DEFAULT_HORIZON = timedelta(weeks=8)
_TICK = timedelta(microseconds=1)
_USERNAME = re.compile(r"^[A-Za-z0-9._-]+$")
_DURATION = re.compile(r"^\s*(\d+)\s*(d|days?|w|weeks?)\s*$", re.IGNORECASE)

# --------------------------------------------------------------------------------------------
# The parsed file


@dataclass(frozen=True)
class Member:
    username: str
    name: str = ""
    email: str = ""
    chat: str = ""

    @property
    def display(self) -> str:
        return f"{self.name} ({self.username})" if self.name else self.username


@dataclass(frozen=True)
class Cycle:
    """``order`` rotates through; every ``stagger_days`` ``per_handoff`` members rotate on."""

    start: date
    order: tuple[str, ...]
    shift_days: int
    per_shift: int
    stagger_days: int
    until: date | None
    line: int

    @property
    def per_handoff(self) -> int:
        return self.per_shift * self.stagger_days // self.shift_days

    @property
    def generations(self) -> int:  # how many staggered slots overlap at any moment
        return self.shift_days // self.stagger_days


@dataclass(frozen=True)
class ExplicitShift:
    start: datetime
    end: datetime
    members: tuple[str, ...]
    key: str
    line: int


@dataclass(frozen=True)
class Override:
    start: datetime
    end: datetime
    replace: str
    by: str
    reason: str
    key: str
    line: int


@dataclass(frozen=True)
class Unavailability:
    member: str
    start: datetime
    end: datetime
    reason: str
    key: str
    line: int


@dataclass(frozen=True)
class Rotation:
    file: str
    name: str
    tz_name: str
    handoff: time
    min_on_duty: int
    max_on_duty: int
    members: dict[str, Member]  # in file order
    manager: Member | None = None
    product_manager: Member | None = None
    cycle: Cycle | None = None
    shifts: tuple[ExplicitShift, ...] = ()
    overrides: tuple[Override, ...] = ()
    unavailable: tuple[Unavailability, ...] = ()
    lines: dict[str, int] = field(default_factory=dict)  # top-level key -> line

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.tz_name)

    def handoff_at(self, day: date) -> datetime:
        """The handoff instant (UTC) that starts duty day ``day``."""
        return datetime.combine(day, self.handoff, tzinfo=self.tz).astimezone(UTC)

    def duty_date(self, at: datetime) -> date:
        local = _utc(at).astimezone(self.tz)
        return local.date() if local.time() >= self.handoff else local.date() - timedelta(days=1)

    def local(self, at: datetime) -> datetime:
        return _utc(at).astimezone(self.tz)

    def fmt(self, at: datetime) -> str:
        return self.local(at).strftime("%a %Y-%m-%d %H:%M")

    def order_index(self, username: str) -> int:
        names = list(self.members)
        return names.index(username) if username in names else len(names)


# --------------------------------------------------------------------------------------------
# Query results


@dataclass(frozen=True)
class Shift:
    """One member on duty from ``start`` to ``end`` (UTC, end exclusive)."""

    member: Member
    start: datetime
    end: datetime
    source: str  # "cycle", "shift" or "override"
    key: str = ""
    line: int = 0


@dataclass(frozen=True)
class Change:
    at: datetime
    member: Member
    kind: str  # "on" or "off"
    source: str  # "cycle", "shift", "override" or "unavailable"


@dataclass(frozen=True)
class Gap:
    start: datetime
    end: datetime
    on_duty: tuple[str, ...]
    missing: int
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class RotationWarning:
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}, key '{self.key}': {self.message}"


Warning = RotationWarning  # the name the design uses; a data record, not an exception class


@dataclass(frozen=True)
class Notice:
    key: str  # stable: the ledger uses it to tell each member once
    member: Member
    kind: str  # "on" or "off"
    at: datetime
    message: str


# --------------------------------------------------------------------------------------------
# Loading


class _Reader:
    """Typed access to composed YAML nodes; every error carries file, line and key."""

    def __init__(self, file: str, tz: ZoneInfo | None = None):
        self.file = file
        self.tz = tz

    def error(self, node: yaml.Node | None, key: str, message: str) -> RotationError:
        line = node.start_mark.line + 1 if node is not None else None
        return RotationError(self.file, key, message, line=line)

    def mapping(self, node: yaml.Node, key: str, known: Iterable[str],
                required: Iterable[str] = ()) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, key, "must be a mapping (key: value lines)")
        known = tuple(known)
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for k, v in node.value:
            name = str(k.value)
            path = f"{key}.{name}" if key else name
            if name not in known:
                raise self.error(k, path, f"unknown key; known keys here: {', '.join(known)}")
            if name in out:
                raise self.error(k, path, "appears twice; keep one")
            out[name] = (k, v)
        for name in required:
            if name not in out or _is_null(out[name][1]):
                raise self.error(node, f"{key}.{name}" if key else name, "missing; it is required here")
        return out

    def seq(self, node: yaml.Node, key: str) -> list[yaml.Node]:
        if isinstance(node, yaml.ScalarNode) and not _is_null(node):
            return [node]  # "members: alice" is a list of one
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, key, "must be a list")
        return list(node.value)

    def text(self, node: yaml.Node, key: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or _is_null(node):
            raise self.error(node, key, "must be a single value (text)")
        return str(node.value).strip()

    def username(self, node: yaml.Node, key: str) -> str:
        name = self.text(node, key)
        if not _USERNAME.match(name):
            raise self.error(node, key, f"{name!r} is not a Phabricator username; write it without '@' "
                             "(letters, digits, '.', '_' or '-')")
        return name

    def integer(self, node: yaml.Node, key: str, minimum: int) -> int:
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:int":
            raise self.error(node, key, f"must be a whole number, not {getattr(node, 'value', node)!r}")
        try:
            value = int(str(node.value).replace("_", ""))
        except ValueError:
            raise self.error(node, key, f"must be a whole number, not {node.value!r}") from None
        if value < minimum:
            raise self.error(node, key, f"must be {minimum} or more")
        return value

    def days(self, node: yaml.Node, key: str) -> int:
        raw = self.text(node, key)
        if raw.isdigit():
            n = int(raw)
        else:
            m = _DURATION.match(raw)
            if not m:
                raise self.error(node, key, f"{raw!r} is not a duration; write e.g. '3w', '2 weeks', '7d' or 7 (days)")
            n = int(m.group(1)) * (7 if m.group(2).lower().startswith("w") else 1)
        if n <= 0:
            raise self.error(node, key, "must be at least 1 day")
        return n

    def day(self, node: yaml.Node, key: str) -> date:
        raw = self.text(node, key)
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise self.error(node, key, f"{raw!r} is not a date; write YYYY-MM-DD, e.g. 2026-11-02") from None

    def moment(self, node: yaml.Node, key: str) -> date | datetime:
        """A date (a whole duty day) or a date-time (naive = team time)."""
        raw = self.text(node, key)
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
        try:
            dt = datetime.fromisoformat(raw)
        except ValueError:
            raise self.error(node, key, f"{raw!r} is not a date or date-time; write YYYY-MM-DD "
                             "or YYYY-MM-DD HH:MM") from None
        return dt.replace(tzinfo=self.tz) if dt.tzinfo is None else dt


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"rotation queries need an aware datetime, got naive {at!r}")
    return at.astimezone(UTC)


TOP_KEYS = ("name", "timezone", "handoff", "on_duty", "members", "manager", "product_manager",
            "cycle", "shifts", "overrides", "unavailable")
_PERSON_KEYS = ("username", "name", "email", "chat")
_Map = dict[str, tuple[yaml.Node, yaml.Node]]


def _person(r: _Reader, node: yaml.Node, key: str) -> Member:
    if isinstance(node, yaml.ScalarNode):
        return Member(r.username(node, key))
    m = r.mapping(node, key, _PERSON_KEYS, required=("username",))
    opt = {k: r.text(m[k][1], f"{key}.{k}") for k in ("name", "email", "chat") if k in m and not _is_null(m[k][1])}
    return Member(r.username(m["username"][1], f"{key}.username"), **opt)


class _Parser(_Reader):
    """Section by section; later sections use what earlier ones set (zone, handoff, members)."""

    handoff = time(9, 0)
    members: dict[str, Member]

    def known(self, node: yaml.Node, key: str) -> str:
        name = self.username(node, key)
        if name not in self.members:
            raise self.error(node, key, f"unknown member {name!r}; add them under 'members' or fix the spelling "
                             f"(members: {', '.join(self.members)})")
        return name

    def range(self, m: _Map, key: str) -> tuple[datetime, datetime]:
        """from/to -> UTC instants. A date ``from`` starts at its handoff; a date ``to`` is inclusive."""
        f_node, t_node = m["from"][1], m["to"][1]
        f, t = self.moment(f_node, f"{key}.from"), self.moment(t_node, f"{key}.to")

        def at(d: date) -> datetime:
            return datetime.combine(d, self.handoff, tzinfo=self.tz).astimezone(UTC)

        start = f.astimezone(UTC) if isinstance(f, datetime) else at(f)
        end = t.astimezone(UTC) if isinstance(t, datetime) else at(t + timedelta(days=1))
        if end <= start:
            raise self.error(t_node, f"{key}.to", f"ends before it starts ({t_node.value} is before {f_node.value}); "
                             "'to' is the last duty day, inclusive — make it on or after 'from'")
        return start, end

    def timezone(self, node: yaml.Node) -> str:
        name = self.text(node, "timezone")
        try:
            self.tz = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise self.error(node, "timezone", f"unknown timezone {name!r}; use an IANA name such as "
                             "Europe/Berlin") from None
        return name

    def handoff_time(self, node: yaml.Node) -> None:
        raw = self.text(node, "handoff")
        try:
            self.handoff = time.fromisoformat(raw if len(raw) != 4 else "0" + raw)  # accept 9:00
        except ValueError:
            raise self.error(node, "handoff", f"{raw!r} is not a time of day; write HH:MM, e.g. \"09:00\"") from None
        if self.handoff.tzinfo is not None:
            raise self.error(node, "handoff", "give a local time without offset; the zone is 'timezone'")

    def bounds(self, node: yaml.Node) -> tuple[int, int]:
        od = self.mapping(node, "on_duty", ("min", "max"))
        lo = self.integer(od["min"][1], "on_duty.min", 0) if "min" in od else 2
        hi = self.integer(od["max"][1], "on_duty.max", 1) if "max" in od else max(3, lo)
        if hi < lo:
            raise self.error(node, "on_duty.max", f"max ({hi}) is less than min ({lo}); raise max or lower min")
        return lo, hi

    def member_list(self, node: yaml.Node) -> None:
        self.members = {}
        for i, item in enumerate(self.seq(node, "members")):
            member = _person(self, item, f"members[{i}]")
            if member.username in self.members:
                raise self.error(item, f"members[{i}]", f"{member.username} is listed twice; keep one entry")
            self.members[member.username] = member
        if not self.members:
            raise self.error(node, "members", "is empty; list the engineers who take clinic duty")

    def cycle(self, node: yaml.Node, hi: int) -> Cycle:
        c = self.mapping(node, "cycle", ("start", "order", "shift_length", "per_shift", "stagger", "until"),
                         required=("start", "order", "shift_length", "per_shift"))
        order = tuple(self.known(n, f"cycle.order[{i}]") for i, n in enumerate(self.seq(c["order"][1], "cycle.order")))
        shift_days = self.days(c["shift_length"][1], "cycle.shift_length")
        per_shift = self.integer(c["per_shift"][1], "cycle.per_shift", 1)
        stagger = self.days(c["stagger"][1], "cycle.stagger") if "stagger" in c else shift_days
        if shift_days % stagger or (per_shift * stagger) % shift_days:
            raise self.error(c.get("stagger", c["shift_length"])[1], "cycle.stagger",
                             f"a {shift_days}-day shift staggered every {stagger} days cannot keep {per_shift} on "
                             "duty; shift_length must be a multiple of stagger and per_shift × stagger a multiple of "
                             "shift_length (e.g. per_shift 3, shift_length 3w, stagger 1w)")
        if per_shift > hi:
            raise self.error(c["per_shift"][1], "cycle.per_shift",
                             f"{per_shift} is more than on_duty.max ({hi}); lower it or raise max")
        if len(order) < per_shift:
            raise self.error(c["order"][1], "cycle.order",
                             f"lists {len(order)} members but per_shift is {per_shift}; add members")
        until = self.day(c["until"][1], "cycle.until") if "until" in c else None
        start = self.day(c["start"][1], "cycle.start")
        if until is not None and until < start:
            raise self.error(c["until"][1], "cycle.until",
                             "is before cycle.start; it is the last duty day of the cycle")
        return Cycle(start, order, shift_days, per_shift, stagger, until, node.start_mark.line + 1)

    def shift(self, node: yaml.Node, key: str) -> ExplicitShift:
        m = self.mapping(node, key, ("from", "to", "members", "note"), required=("from", "to", "members"))
        start, end = self.range(m, key)
        items = self.seq(m["members"][1], f"{key}.members")
        names = tuple(self.known(n, f"{key}.members[{j}]") for j, n in enumerate(items))
        if len(set(names)) != len(names):
            raise self.error(m["members"][1], f"{key}.members", "names a member twice")
        return ExplicitShift(start, end, names, key, node.start_mark.line + 1)

    def override(self, node: yaml.Node, key: str) -> Override:
        m = self.mapping(node, key, ("from", "to", "replace", "with", "reason"),
                         required=("from", "to", "replace", "with"))
        start, end = self.range(m, key)
        old, new = self.known(m["replace"][1], f"{key}.replace"), self.known(m["with"][1], f"{key}.with")
        if old == new:
            raise self.error(m["with"][1], f"{key}.with", f"replaces {old} with {old}; name someone else")
        reason = self.text(m["reason"][1], f"{key}.reason") if "reason" in m else ""
        return Override(start, end, old, new, reason, key, node.start_mark.line + 1)

    def unavailable(self, node: yaml.Node, key: str) -> list[Unavailability]:
        m = self.mapping(node, key, ("member", "members", "from", "to", "reason"), required=("from", "to"))
        if ("member" in m) == ("members" in m):
            raise self.error(node, f"{key}.member", "give either 'member' or 'members'")
        mk = "member" if "member" in m else "members"
        names = [self.known(n, f"{key}.{mk}") for n in self.seq(m[mk][1], f"{key}.{mk}")]
        start, end = self.range(m, key)
        reason = self.text(m["reason"][1], f"{key}.reason") if "reason" in m else ""
        return [Unavailability(n, start, end, reason, key, node.start_mark.line + 1) for n in names]


def parse_rotation(text: str, file: str = "rotation.yaml") -> Rotation:
    """Parse and check rotation.yaml text; raise RotationError naming file, line and key."""
    r = _Parser(file)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise RotationError(file, None, f"invalid YAML: {problem}; fix the syntax",
                            line=mark.line + 1 if mark else None) from None
    if root is None:
        raise RotationError(file, None, "is empty; start from the example rotation.yaml")
    top = r.mapping(root, "", TOP_KEYS, required=("timezone", "members"))
    tz_name = r.timezone(top["timezone"][1])
    if "handoff" in top:
        r.handoff_time(top["handoff"][1])
    lo, hi = r.bounds(top["on_duty"][1]) if "on_duty" in top else (2, 3)
    r.member_list(top["members"][1])
    people = {k: _person(r, top[k][1], k) for k in ("manager", "product_manager")
              if k in top and not _is_null(top[k][1])}

    def items(name: str) -> list[yaml.Node]:
        return r.seq(top[name][1], name) if name in top and not _is_null(top[name][1]) else []

    cycle = r.cycle(top["cycle"][1], hi) if "cycle" in top else None
    shifts = tuple(r.shift(n, f"shifts[{i}]") for i, n in enumerate(items("shifts")))
    overrides = tuple(r.override(n, f"overrides[{i}]") for i, n in enumerate(items("overrides")))
    unavailable = tuple(u for i, n in enumerate(items("unavailable")) for u in r.unavailable(n, f"unavailable[{i}]"))
    if cycle is None and not shifts:
        raise r.error(root, "cycle", "no 'cycle' and no 'shifts': nobody would ever be on duty; add one of them")

    rot = Rotation(
        file=file, name=r.text(top["name"][1], "name") if "name" in top else "Clinic duty",
        tz_name=tz_name, handoff=r.handoff, min_on_duty=lo, max_on_duty=hi, members=r.members,
        manager=people.get("manager"), product_manager=people.get("product_manager"), cycle=cycle,
        shifts=shifts, overrides=overrides, unavailable=unavailable,
        lines={k: kn.start_mark.line + 1 for k, (kn, _) in top.items()},
    )
    _check_contradictions(rot)
    return rot


def load_rotation(path: str | Path) -> Rotation:
    from clinicbot.config import read_utf8

    path = Path(path)
    try:
        text = read_utf8(path, lambda msg, line: RotationError(str(path), None, msg, line=line))
    except FileNotFoundError:
        raise RotationError(str(path), None, "file not found; create it (see the example rotation.yaml) "
                            "or point the 'rotation' setting / --rotation at it") from None
    except IsADirectoryError:
        raise RotationError(str(path), None, "is a directory; point 'rotation' / --rotation at the file") from None
    except OSError as exc:
        raise RotationError(str(path), None, f"cannot read: {exc.strerror}") from None
    return parse_rotation(text, str(path))


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


# --------------------------------------------------------------------------------------------
# Queries


def shifts_between(rot: Rotation, start: datetime, end: datetime) -> list[Shift]:
    """Member-shifts (after overrides and unavailability) that overlap [start, end)."""
    return _sort(rot, _pieces(rot, _utc(start), _utc(end)))


def on_duty(rot: Rotation, at: datetime) -> list[Member]:
    """Who is on duty at ``at`` (members-list order)."""
    at = _utc(at)
    names = {p.member.username for p in _pieces(rot, at, at + _TICK) if p.start <= at < p.end}
    return [m for u, m in rot.members.items() if u in names]


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
        if u.member == username and (u.start <= at < u.end if kind == "off" else u.end == at):
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
        now_on = {p.member.username for p in actual if p.start <= a < p.end}
        if len(now_on) >= rot.min_on_duty:
            continue
        names = tuple(u for u in rot.members if u in now_on)
        away = {p.member.username for p in planned if p.start <= a < p.end} - now_on
        reasons = tuple(sorted(f"{u.member} unavailable" + (f" ({u.reason})" if u.reason else "")
                               for u in rot.unavailable if u.member in away and u.start <= a < u.end))
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


def _check_contradictions(rot: Rotation) -> None:
    """Errors that hold forever: a member on duty twice at once, or more than max on duty."""
    windows = []
    if rot.shifts:
        windows.append((min(s.start for s in rot.shifts), max(s.end for s in rot.shifts)))
    if rot.cycle:
        c = rot.cycle  # the cycle repeats after len(order) slots; check one round and a bit
        span = (len(c.order) + c.generations + 1) * c.stagger_days + c.shift_days
        windows.append((rot.handoff_at(c.start), rot.handoff_at(c.start + timedelta(days=span))))
    for ws, we in windows:
        pieces = sorted(_planned(rot, ws, we), key=lambda p: (p.start, p.key))
        by_member: dict[str, Shift] = {}
        for p in sorted(pieces, key=lambda p: (p.member.username, p.start)):
            prev = by_member.get(p.member.username)
            if prev is not None and p.start < prev.end:
                # Blame the hand-written shift rather than the generated cycle: that is what to edit.
                blame, other = (prev, p) if p.source == "cycle" and prev.source != "cycle" else (p, prev)
                raise RotationError(
                    rot.file, blame.key, f"contradicts {other.key}: {p.member.username} would be on duty twice from "
                    f"{rot.fmt(p.start)} to {rot.fmt(min(p.end, prev.end))}; remove them from one", line=blame.line)
            if prev is None or p.end > prev.end:
                by_member[p.member.username] = p
        for p in pieces:
            on = [q for q in pieces if q.start <= p.start < q.end]
            if len(on) > rot.max_on_duty:
                blame = max(on, key=lambda q: (q.source != "cycle", q.start))
                names = ", ".join(q.member.username for q in on)
                raise RotationError(
                    rot.file, blame.key, f"{len(on)} engineers would be on duty from {rot.fmt(p.start)} ({names}) "
                    f"but on_duty.max is {rot.max_on_duty}; shorten or remove a shift, or raise on_duty.max",
                    line=blame.line)


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
        fields = user.get("fields") or {}
        found[str(fields.get("username", "")).lower()] = user
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
