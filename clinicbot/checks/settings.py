"""The ``checks:`` section of the config: per check, whether it runs, its thresholds, and the
delivery keys the handler side owns.

::

    checks:
      untriaged:
        hours: 24                 # a threshold of the check (see `clinicbot check --list`)
        business_hours: true      # count the threshold in the team's working hours
        handlers: [comment, chat] # default [console]: nothing is posted unless configured
        repetition_seconds: 86400 # remind again after a day; null = fire once per episode
        escalation:
          - {after_repetitions: 2, handlers: [email]}
        exempt: {tags: ["#clinicbot-ignore"], priorities: [wish], tasks: [T123]}  # see checks/exempt.py
      rotation-notice: false      # shorthand for {enabled: false}
      my-check:
        path: "mypackage.checks:overdue"   # a custom check: function (context) -> [Finding]

Thresholds are checked against the check's ``defaults`` (unknown keys and wrong types are
errors naming ``checks.<slug>.<key>``); the handler keys are checked for type only — what
they mean is the handler side's business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from clinicbot.checks.exempt import Exemptions, parse_exempt
from clinicbot.checks.hours import BusinessHours, team_business_hours
from clinicbot.errors import ConfigError

# move, untag and todo: task edits planned by jobs/check.py (docs/actions.md); off unless configured.
HANDLERS = ("comment", "subscribe", "chat", "email", "console", "move", "untag", "todo")
DEFAULT_HANDLERS: tuple[str, ...] = ("console",)
# Keys every check accepts besides its thresholds.
COMMON_KEYS = ("enabled", "business_hours", "handlers", "repetition_seconds", "escalation", "exempt")
CUSTOM_KEYS = ("path",)
# Thresholds a check may leave at None to inherit the team's setting of the same name.
TEAM_KEYS = ("timezone", "meeting_weekday", "meeting_time")

ErrorFactory = Callable[[str, str], ConfigError]


def default_error(key: str, message: str) -> ConfigError:
    return ConfigError("<config>", key, message)


@dataclass(frozen=True)
class CheckSettings:
    slug: str
    enabled: bool = True
    thresholds: Mapping[str, Any] = field(default_factory=dict)  # check defaults merged with the config
    handlers: tuple[str, ...] = DEFAULT_HANDLERS
    repetition_seconds: int | None = None  # None: fire once per episode
    escalation: tuple[Mapping[str, Any], ...] = ()  # validated copies of the config's steps
    business_hours: bool = False
    path: str | None = None  # "package.module:function" for a custom check
    exempt: Exemptions = field(default_factory=Exemptions)  # tasks the check leaves alone (checks/exempt.py)
    # makes the errors of names resolved per run (a board the check names) say the config file
    error: ErrorFactory = field(default=default_error, compare=False, repr=False)


@dataclass(frozen=True)
class TeamSettings:
    """The team-wide settings checks depend on: timezone, working hours, the weekly meeting."""

    timezone: str = "UTC"
    business_hours: BusinessHours = field(default_factory=lambda: BusinessHours("UTC"))
    meeting_weekday: str = "thu"
    meeting_time: str = "15:00"

    @classmethod
    def from_config(cls, config: Any, rotation: Any = None) -> "TeamSettings":
        """``team.timezone`` wins, then the rotation file's timezone, then UTC (as config.py documents)."""
        tz = config.get("team.timezone") or _rotation_tz(rotation) or "UTC"
        return cls(
            timezone=tz,
            # working hours, public holidays (`holidays:`) and the rotation's unavailability
            business_hours=team_business_hours(config, tz, rotation),
            meeting_weekday=config.get("team.meeting_weekday"),
            meeting_time=config.get("team.meeting_time"),
        )

    def values(self) -> dict[str, Any]:
        return {"timezone": self.timezone, "meeting_weekday": self.meeting_weekday, "meeting_time": self.meeting_time}


def _rotation_tz(rotation: Any) -> str | None:
    from clinicbot.checks.notices import rotation_zone_name

    return rotation_zone_name(rotation) if rotation is not None else None


# -- type checks --------------------------------------------------------------------------------

_TYPE_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "a string",
               list: "a list", dict: "a mapping"}


def _kinds_of(check: Any, key: str, default: Any) -> tuple[type, ...] | None:
    declared = (getattr(check, "setting_types", None) or {}).get(key)
    if declared is not None:
        return declared if isinstance(declared, tuple) else (declared,)
    if default is None:
        return None  # anything goes; a validator may still object
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, (int, float)):
        return (int, float)  # "hours: 1.5" is as sensible as "hours: 2"
    return (type(default),)


def _type_problem(value: Any, kinds: tuple[type, ...] | None) -> str | None:
    if kinds is None:
        return None
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds)
    if ok:
        return None
    words = " or ".join(_TYPE_WORDS.get(k, k.__name__) for k in kinds)
    return f"must be {words}, not {value!r}"


def _threshold(check: Any, slug: str, key: str, value: Any, error: ErrorFactory) -> Any:
    defaults = getattr(check, "defaults", {}) or {}
    where = f"checks.{slug}.{key}"
    if value is None and defaults.get(key) is None:
        return None  # "meeting_time: null": keep the default (the team's setting)
    problem = _type_problem(value, _kinds_of(check, key, defaults.get(key)))
    if problem:
        raise error(where, problem)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        raise error(where, "must be 0 or more")
    validator = (getattr(check, "validators", None) or {}).get(key)
    if validator is not None and value is not None:
        problem = validator(value)
        if problem:
            raise error(where, problem)
    return value


def _handlers(value: Any, where: str, error: ErrorFactory) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(h, str) for h in value):
        raise error(where, f"must be a list of handler names ({', '.join(HANDLERS)}), not {value!r}")
    bad = [h for h in value if h not in HANDLERS]
    if bad:
        raise error(where, f"unknown handler(s) {', '.join(bad)}; handlers are: {', '.join(HANDLERS)}")
    return tuple(value)


def _whole(value: Any, where: str, error: ErrorFactory, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(where, f"must be a whole number, not {value!r}")
    if value < minimum:
        raise error(where, f"must be {minimum} or more")
    return value


def _escalation(value: Any, where: str, error: ErrorFactory) -> tuple[Mapping[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise error(where, "must be a list of steps like {after_repetitions: 2, handlers: [email]}")
    steps = []
    for i, step in enumerate(value):
        here = f"{where}[{i}]"
        if not isinstance(step, dict):
            raise error(here, "must be a mapping like {after_repetitions: 2, handlers: [email]}")
        unknown = sorted(set(step) - {"after_repetitions", "after_seconds", "handlers"})
        if unknown:
            raise error(f"{here}.{unknown[0]}", "unknown key; known keys: after_repetitions, after_seconds, handlers")
        triggers = [k for k in ("after_repetitions", "after_seconds") if k in step]
        if len(triggers) != 1:
            raise error(here, "give exactly one of after_repetitions or after_seconds")
        trigger = triggers[0]
        _whole(step[trigger], f"{here}.{trigger}", error, minimum=1 if trigger == "after_repetitions" else 0)
        if "handlers" not in step:
            raise error(f"{here}.handlers", "missing; say which handlers the escalation uses")
        _handlers(step["handlers"], f"{here}.handlers", error)
        steps.append(dict(step))
    return tuple(steps)


# -- the section ---------------------------------------------------------------------------------


def parse_check_settings(
    section: Mapping[str, Any] | None,
    checks: Iterable[Any],
    *,
    error: ErrorFactory | None = None,
) -> dict[str, CheckSettings]:
    """Validate the ``checks:`` mapping against ``checks`` (built-in, plugin and custom).

    Returns settings for every known check, configured or not, so callers never need to
    special-case a check the config does not mention.
    """
    error = error or default_error
    by_slug = {c.slug: c for c in checks}
    section = section or {}
    if not isinstance(section, Mapping):
        raise error("checks", f"must be a mapping of check slug to settings, not {type(section).__name__}")
    for slug in section:
        if slug not in by_slug:
            raise error(f"checks.{slug}", f"unknown check; known checks: {', '.join(sorted(by_slug))}")

    result: dict[str, CheckSettings] = {}
    for slug, check in by_slug.items():
        raw = section.get(slug)
        if raw is None:
            raw = {}
        elif isinstance(raw, bool):  # "untriaged: false"
            raw = {"enabled": raw}
        elif not isinstance(raw, Mapping):
            raise error(f"checks.{slug}", f"must be a mapping of settings (or true/false), not {raw!r}")
        result[slug] = _one(check, slug, raw, error)
    return result


def _one(check: Any, slug: str, raw: Mapping[str, Any], error: ErrorFactory) -> CheckSettings:
    defaults = dict(getattr(check, "defaults", {}) or {})
    # A custom function that declares no defaults cannot be checked: its keys pass through.
    strict = getattr(check, "strict_settings", True)
    thresholds = dict(defaults)
    for key, value in raw.items():
        if key in COMMON_KEYS or key in CUSTOM_KEYS:
            continue
        if key not in defaults and strict:
            known = sorted(set(defaults) | set(COMMON_KEYS))
            raise error(f"checks.{slug}.{key}", f"unknown key; keys of {slug}: {', '.join(known)}")
        thresholds[key] = _threshold(check, slug, key, value, error) if key in defaults else value

    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise error(f"checks.{slug}.enabled", f"must be true or false, not {enabled!r}")
    business_hours = raw.get("business_hours", False)
    if not isinstance(business_hours, bool):
        raise error(f"checks.{slug}.business_hours", f"must be true or false, not {business_hours!r}")
    handlers = DEFAULT_HANDLERS
    if raw.get("handlers") is not None:
        handlers = _handlers(raw["handlers"], f"checks.{slug}.handlers", error)
    repetition = raw.get("repetition_seconds")
    if repetition is not None:
        repetition = _whole(repetition, f"checks.{slug}.repetition_seconds", error)
    escalation = _escalation(raw.get("escalation"), f"checks.{slug}.escalation", error)
    exempt = parse_exempt(raw.get("exempt"), f"checks.{slug}.exempt", error)
    path = raw.get("path")
    if path is not None and getattr(check, "path", None) is None:
        raise error(f"checks.{slug}.path", f"{slug} is not a custom check; give custom checks a slug of their own")
    return CheckSettings(
        slug=slug,
        enabled=enabled,
        thresholds=thresholds,
        handlers=handlers,
        repetition_seconds=repetition,
        escalation=escalation,
        business_hours=business_hours,
        path=path,
        exempt=exempt,
        error=error,
    )


def merged_thresholds(check: Any, settings: CheckSettings | None, team: TeamSettings | None) -> dict[str, Any]:
    """Defaults < the team's settings (for keys left at None) < the check's config."""
    values = dict(getattr(check, "defaults", {}) or {})
    if settings is not None:
        values.update(settings.thresholds)
    team_values = (team or TeamSettings()).values()
    for key in TEAM_KEYS:
        if key in values and values[key] is None:
            values[key] = team_values[key]
    return values


__all__ = [
    "CheckSettings",
    "TeamSettings",
    "HANDLERS",
    "DEFAULT_HANDLERS",
    "COMMON_KEYS",
    "parse_check_settings",
    "merged_thresholds",
    "default_error",
]
