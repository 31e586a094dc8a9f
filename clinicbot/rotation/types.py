"""rotation.yaml's parsed form (:class:`Rotation` and its parts) and the query results.

Every instant is UTC (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from clinicbot.model import Person

UTC = timezone.utc
DEFAULT_HORIZON = timedelta(weeks=8)
_TICK = timedelta(microseconds=1)

# --------------------------------------------------------------------------------------------
# The parsed file


Member = Person  # a rotation file's ``members:`` entry is a Person (clinicbot.model)


class Covering:
    """Anything with ``start`` and ``end`` (UTC, end exclusive): does it cover an instant?"""

    start: datetime
    end: datetime

    def covers(self, at: datetime) -> bool:
        return self.start <= at < self.end


@dataclass(frozen=True)
class Span(Covering):
    """A time span first: explicit shifts, overrides and coverage gaps are one plus their details."""

    start: datetime
    end: datetime


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
class ExplicitShift(Span):
    members: tuple[str, ...]
    key: str
    line: int


@dataclass(frozen=True)
class Override(Span):
    replace: str
    by: str
    reason: str
    key: str
    line: int


@dataclass(frozen=True)
class Unavailability(Covering):
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
class Shift(Covering):
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
class Gap(Span):
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


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"rotation queries need an aware datetime, got naive {at!r}")
    return at.astimezone(UTC)


