"""Loading rotation.yaml: ``yaml.compose`` keeps every value's line, so errors name ``file:line`` and the key."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from clinicbot.errors import RotationError
from clinicbot.rotation.plan import _planned
from clinicbot.rotation.types import UTC, Cycle, ExplicitShift, Member, Override, Rotation, Shift, Unavailability

_USERNAME = re.compile(r"^[A-Za-z0-9._-]+$")
_DURATION = re.compile(r"^\s*(\d+)\s*(d|days?|w|weeks?)\s*$", re.IGNORECASE)


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
            on = [q for q in pieces if q.covers(p.start)]
            if len(on) > rot.max_on_duty:
                blame = max(on, key=lambda q: (q.source != "cycle", q.start))
                names = ", ".join(q.member.username for q in on)
                raise RotationError(
                    rot.file, blame.key, f"{len(on)} engineers would be on duty from {rot.fmt(p.start)} ({names}) "
                    f"but on_duty.max is {rot.max_on_duty}; shorten or remove a shift, or raise on_duty.max",
                    line=blame.line)
