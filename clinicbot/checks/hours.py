"""Working time: how long something waited, counting only the team's business hours.

A task filed on Friday evening has not been ignored for 48 hours on Monday morning; the
team simply was not at work. :class:`BusinessHours` counts only the time inside the team's
working hours on its working days, in the team's own timezone (zoneinfo, so DST is right:
each day's window is placed in local time and measured in UTC).

Days off. Working time also skips the team's **public holidays** (the config's ``holidays:``
section: a country and optionally a region, from the ``holidays`` package; whole local days) and
the **unavailability** listed in the rotation file (``unavailable:``): for a threshold about the
team, the time when *every* member is away (an offsite, a winter break); for one about a person
(``age(ctx, since, person=username)``: an owner idling), that person's own time away.

Checks measure ages through :func:`age` so a check never needs to know whether its
threshold counts wall-clock time or working time: ``ctx.business_hours`` decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Callable, Iterable, Mapping, Sequence
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
    region: HolidayRegion | None = None  # public holidays: whole local days without working time
    # (username, start, end) of each listed unavailability (UTC, end exclusive), and the members
    # whose common absence stops the team's clock.
    away: tuple[tuple[str, datetime, datetime], ...] = ()
    members: tuple[str, ...] = ()
    # Seconds of working time per whole local day, by date ordinal: shared by every
    # elapsed() call so a years-old task costs one dict lookup per day, not a zoneinfo lookup.
    _day_cache: dict[int, float] = field(default_factory=dict, init=False, repr=False, compare=False)

    _holiday_cache: dict[int, bool] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tz", as_zone(self.tz))
        object.__setattr__(self, "away", tuple(sorted(self.away)))
        object.__setattr__(self, "members", tuple(sorted(set(self.members))))
        object.__setattr__(self, "start", parse_hhmm(self.start))
        object.__setattr__(self, "end", parse_hhmm(self.end))
        object.__setattr__(self, "days", frozenset(parse_weekday(d) for d in self.days))
        if self.end <= self.start:
            raise ValueError(f"business hours end {self.end:%H:%M} must be after start {self.start:%H:%M}")

    @classmethod
    def parse(cls, tz: str | None, hours: str = "09:00-17:00", days: Iterable[str] = DEFAULT_DAYS, *,
              region: HolidayRegion | None = None, rotation: Any = None) -> "BusinessHours":
        """From the config's spelling: ``team.timezone``, ``team.business_hours`` ("09:00-17:00"),
        ``team.business_days``; the ``holidays:`` section's region and the rotation's ``unavailable``."""
        start, _, end = hours.partition("-")
        away = tuple((u.member, u.start, u.end) for u in getattr(rotation, "unavailable", ()))
        return cls(tz=tz, start=start.strip(), end=end.strip(), days=tuple(days), region=region, away=away,
                   members=tuple(getattr(rotation, "members", None) or ()))

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

    def is_holiday(self, day: date) -> bool:
        """A public holiday of the configured region (no working time that day)."""
        if self.region is None:
            return False
        ordinal = day.toordinal()
        known = self._holiday_cache.get(ordinal)
        if known is None:
            known = self._holiday_cache[ordinal] = day in self.region.calendar()
        return known

    def away_spans(self, person: str | None = None) -> list[tuple[datetime, datetime]]:
        """When ``person`` is away (their listed unavailability, merged); ``None``: when every member
        of the team is away at once (nobody was at work). No members listed: never."""
        if person is not None:
            return _merge((a, b) for who, a, b in self.away if who == person)
        if not self.members:
            return []
        common: list[tuple[datetime, datetime]] | None = None
        for member in self.members:
            mine = _merge((a, b) for who, a, b in self.away if who == member)
            common = mine if common is None else _intersect(common, mine)
            if not common:
                return []
        return common or []

    def elapsed(self, start_dt: datetime, end_dt: datetime, *, person: str | None = None) -> timedelta:
        """Working time between two aware datetimes (zero if ``end_dt`` is not after ``start_dt``):
        working hours of working days, not on a public holiday, minus the time away (``person``'s,
        or the whole team's: :meth:`away_spans`)."""
        total = self._working(start_dt, end_dt)
        for a, b in self.away_spans(person):
            lo, hi = max(a, start_dt), min(b, end_dt)
            if hi > lo:
                total -= self._working(lo, hi)
        return max(_ZERO, total)

    def _working(self, start_dt: datetime, end_dt: datetime) -> timedelta:
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
            if self.region is not None and self.is_holiday(date.fromordinal(ordinal)):
                continue
            if first < ordinal < last:
                total += self._full_day(ordinal)
                continue
            ws, we = self._window(date.fromordinal(ordinal))
            lo, hi = max(ws, s_utc), min(we, e_utc)
            if hi > lo:
                total += (hi - lo).total_seconds()
        return timedelta(seconds=total)

    def is_working(self, at: datetime, *, person: str | None = None) -> bool:
        local = at.astimezone(self.tz)
        if local.weekday() not in self.days or not self.start <= local.time() < self.end:
            return False
        if self.is_holiday(local.date()):
            return False
        return not any(a <= at < b for a, b in self.away_spans(person))


def _merge(spans: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _intersect(xs: Sequence[tuple[datetime, datetime]], ys: Sequence[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """The instants in both lists of merged, sorted spans."""
    out, i, j = [], 0, 0
    while i < len(xs) and j < len(ys):
        lo, hi = max(xs[i][0], ys[j][0]), min(xs[i][1], ys[j][1])
        if hi > lo:
            out.append((lo, hi))
        if xs[i][1] < ys[j][1]:
            i += 1
        else:
            j += 1
    return out


# -- public holidays (the config's `holidays:` section) -----------------------------------------


@dataclass(frozen=True)
class HolidayRegion:
    """A country (ISO 3166-1 code, as the ``holidays`` package names it) and optionally one of its
    regions (the package's subdivision code: BY for Bavaria, CA for California, SCT for Scotland)."""

    country: str
    subdivision: str | None = None

    def calendar(self) -> Any:
        """The ``holidays`` calendar (years filled in as they are asked about)."""
        import holidays

        return _calendar(holidays, self.country, self.subdivision)

    def name_of(self, day: date) -> str | None:
        """The holiday's name on ``day``, or None."""
        return self.calendar().get(day)


_CALENDARS: dict[tuple[str, str | None], Any] = {}


def _calendar(module: Any, country: str, subdivision: str | None) -> Any:
    key = (country, subdivision)
    if key not in _CALENDARS:
        _CALENDARS[key] = module.country_holidays(country, subdiv=subdivision)
    return _CALENDARS[key]


def parse_holidays(section: Mapping[str, Any], error: Callable[[str, str], Exception]) -> HolidayRegion | None:
    """The ``holidays:`` section (``{country: DE, subdivision: BY}``; empty: none), checked against
    the ``holidays`` package: an unknown key, country or region is ``error(key, message)``."""
    if not section:
        return None
    unknown = sorted(set(section) - {"country", "subdivision"})
    if unknown:
        raise error(f"holidays.{unknown[0]}", "unknown key; known keys: country, subdivision")
    country, subdivision = section.get("country"), section.get("subdivision")
    if not isinstance(country, str) or not country.strip():
        raise error("holidays.country", "give the country's ISO 3166 code, such as DE, US or GB")
    if subdivision is not None and (not isinstance(subdivision, str) or not subdivision.strip()):
        raise error("holidays.subdivision", f"must be a region code such as BY, not {subdivision!r}")
    try:
        import holidays
    except ImportError:  # a declared dependency; only a broken installation lacks it
        raise error("holidays", "the 'holidays' package is not installed; pip install holidays") from None
    country = country.strip().upper()
    subdivision = subdivision.strip().upper() if subdivision else None
    try:
        _calendar(holidays, country, subdivision)
    except NotImplementedError:
        regions = holidays.list_supported_countries().get(country)
        if regions is None:
            raise error("holidays.country", f"unknown country {country!r}; use an ISO 3166 code the holidays "
                        "package knows, such as DE, US or GB") from None
        raise error("holidays.subdivision", f"unknown region {subdivision!r} of {country}; "
                    + (f"one of {', '.join(regions)}" if regions else f"{country} has no regions: leave it out")) from None
    return HolidayRegion(country, subdivision)


def holidays_section(config: Any) -> HolidayRegion | None:
    """The validator of the ``holidays:`` section (registered in ``jobs/sections.py``)."""
    return parse_holidays(config.section("holidays"), config.error)


def team_business_hours(config: Any, tz: str, rotation: Any = None) -> BusinessHours:
    """The team's working time from the config (``team.*``, ``holidays:``) and the rotation's
    ``unavailable`` list."""
    region = config.typed["holidays"] if "holidays" in getattr(config, "typed", {}) else holidays_section(config)
    return BusinessHours.parse(tz, config.get("team.business_hours"), config.get("team.business_days"),
                               region=region, rotation=rotation)


# -- helpers for checks -------------------------------------------------------------------------


def age(ctx: Any, since: datetime, *, person: str | None = None) -> timedelta:
    """How long since ``since`` at ``ctx.now``: working time if the check counts business hours.
    ``person`` (a username): the wait is that person's (an owner's), so their own time away does
    not count; otherwise the time the whole team was away does not."""
    bh = getattr(ctx, "business_hours", None)
    if bh is not None:
        return bh.elapsed(since, ctx.now, person=person)
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
