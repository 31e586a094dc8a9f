"""Working time: how long something waited, counting only the team's business hours.

A task filed on Friday evening has not been ignored for 48 hours on Monday morning; the
team simply was not at work. :class:`BusinessHours` counts only the time inside the team's
working hours on its working days, in the team's own timezone (zoneinfo, so DST is right:
each day's window is placed in local time and measured in UTC).

Checks measure ages through :func:`age` so a check never needs to know whether its
threshold counts wall-clock time or working time: ``ctx.business_hours`` decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo

WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_DAYS = ("mon", "tue", "wed", "thu", "fri")
_ZERO = timedelta(0)


def parse_hhmm(value: str | time) -> time:
    """'09:30' -> time(9, 30). Raises ValueError on anything else."""
    if isinstance(value, time):
        return value
    hh, sep, mm = str(value).strip().partition(":")
    if not sep or not hh.isdigit() or not mm.isdigit() or int(hh) > 23 or int(mm) > 59:
        raise ValueError(f"{value!r} is not a time of day HH:MM")
    return time(int(hh), int(mm))


def parse_weekday(value: str | int) -> int:
    """'thu' / 'Thursday' / 3 -> 3 (Monday is 0, as in datetime.weekday())."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 6:
        return value
    name = str(value).strip().lower()[:3]
    if name not in WEEKDAY_NAMES:
        raise ValueError(f"unknown weekday {value!r}; use mon, tue, wed, thu, fri, sat, sun")
    return WEEKDAY_NAMES.index(name)


def as_zone(tz: str | ZoneInfo | timezone | None) -> Any:
    """A tzinfo from an IANA name (None and '' mean UTC)."""
    if tz is None or tz == "":
        return timezone.utc
    if isinstance(tz, str):
        return ZoneInfo(tz)  # ZoneInfoNotFoundError for unknown names: config validation catches it first
    return tz


@dataclass(frozen=True)
class BusinessHours:
    """Working hours ``start``-``end`` (local time of ``tz``) on ``days`` (0 = Monday).

    ``tz`` may be an IANA name or a tzinfo; ``start``/``end`` may be ``time`` or "HH:MM";
    ``days`` may be weekday numbers or names. ``end`` must be later than ``start`` (a
    window never crosses midnight, as the config validation also requires).
    """

    tz: Any
    start: Any = time(9, 0)
    end: Any = time(17, 0)
    days: Any = DEFAULT_DAYS
    # Seconds of working time per whole local day, by date ordinal: shared by every
    # elapsed() call so a years-old task costs one dict lookup per day, not a zoneinfo lookup.
    _day_cache: dict[int, float] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tz", as_zone(self.tz))
        object.__setattr__(self, "start", parse_hhmm(self.start))
        object.__setattr__(self, "end", parse_hhmm(self.end))
        object.__setattr__(self, "days", frozenset(parse_weekday(d) for d in self.days))
        if self.end <= self.start:
            raise ValueError(f"business hours end {self.end:%H:%M} must be after start {self.start:%H:%M}")

    @classmethod
    def parse(cls, tz: str | None, hours: str = "09:00-17:00", days: Iterable[str] = DEFAULT_DAYS) -> "BusinessHours":
        """From the config's spelling: ``team.timezone``, ``team.business_hours`` ("09:00-17:00"),
        ``team.business_days``."""
        start, _, end = hours.partition("-")
        return cls(tz=tz, start=start.strip(), end=end.strip(), days=tuple(days))

    # -- measuring ---------------------------------------------------------------------------
    @property
    def day_length(self) -> timedelta:
        """Nominal length of one working day: what "1 day" means for a threshold in business days."""
        return datetime.combine(date.min, self.end) - datetime.combine(date.min, self.start)

    def _window(self, day: date) -> tuple[datetime, datetime]:
        # Place the window in local wall time, then convert: across a DST change the same
        # 09:00-17:00 is still 8 real hours, while a window spanning the change is shorter/longer.
        ws = datetime.combine(day, self.start, tzinfo=self.tz).astimezone(timezone.utc)
        we = datetime.combine(day, self.end, tzinfo=self.tz).astimezone(timezone.utc)
        return ws, we

    def _full_day(self, ordinal: int) -> float:
        seconds = self._day_cache.get(ordinal)
        if seconds is None:
            ws, we = self._window(date.fromordinal(ordinal))
            seconds = max(0.0, (we - ws).total_seconds())
            self._day_cache[ordinal] = seconds
        return seconds

    def elapsed(self, start_dt: datetime, end_dt: datetime) -> timedelta:
        """Working time between two aware datetimes (zero if ``end_dt`` is not after ``start_dt``)."""
        if end_dt <= start_dt:
            return _ZERO
        first = start_dt.astimezone(self.tz).date().toordinal()
        last = end_dt.astimezone(self.tz).date().toordinal()
        s_utc = start_dt.astimezone(timezone.utc)
        e_utc = end_dt.astimezone(timezone.utc)
        total = 0.0
        for ordinal in range(first, last + 1):
            if (ordinal - 1) % 7 not in self.days:  # date.fromordinal(1) is a Monday
                continue
            if first < ordinal < last:
                total += self._full_day(ordinal)
                continue
            ws, we = self._window(date.fromordinal(ordinal))
            lo, hi = max(ws, s_utc), min(we, e_utc)
            if hi > lo:
                total += (hi - lo).total_seconds()
        return timedelta(seconds=total)

    def is_working(self, at: datetime) -> bool:
        local = at.astimezone(self.tz)
        return local.weekday() in self.days and self.start <= local.time() < self.end


# -- helpers for checks -------------------------------------------------------------------------


def age(ctx: Any, since: datetime) -> timedelta:
    """How long since ``since`` at ``ctx.now``: working time if the check counts business hours."""
    bh = getattr(ctx, "business_hours", None)
    if bh is not None:
        return bh.elapsed(since, ctx.now)
    return max(_ZERO, ctx.now - since)


def days_threshold(ctx: Any, days: float) -> timedelta:
    """N days as a duration: N × 24 h of wall-clock time, or N working days in business hours
    (a "7 days" threshold should mean a working week and a half, not a month of working hours)."""
    bh = getattr(ctx, "business_hours", None)
    if bh is not None:
        return bh.day_length * days
    return timedelta(days=days)


def in_hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600, 1)


def in_days(ctx: Any, delta: timedelta) -> float:
    """Days as the threshold counts them (working days when business hours apply)."""
    bh = getattr(ctx, "business_hours", None)
    unit = bh.day_length if bh is not None else timedelta(days=1)
    return round(delta / unit, 1)


# -- validators for settings that are times (used by settings.py through a check's `validators`) --


def _parse_error(parse: Callable[[Any], Any], value: Any) -> str | None:
    """What ``parse`` says is wrong with ``value`` (its ValueError's message), or None when it parses."""
    try:
        parse(value)
    except ValueError as exc:
        return str(exc)
    return None


def validate_hhmm(value: Any) -> str | None:
    return _parse_error(parse_hhmm, value)


def validate_weekday(value: Any) -> str | None:
    return _parse_error(parse_weekday, value)


def validate_timezone(value: Any) -> str | None:
    try:
        as_zone(value)
    except (ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        return f"unknown timezone {value!r}; use an IANA name such as Europe/Berlin or UTC"
    return None
