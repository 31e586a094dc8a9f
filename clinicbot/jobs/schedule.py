"""The schedule (config section ``schedule:``) and the job table: what `serve`, `serve --once`,
`serve --print-crontab`, `status` and `doctor` share.

The schedule comes from the config's ``schedule:`` section, in the team's timezone::

    schedule:
      timezone: Europe/Berlin          # default: team.timezone, else the rotation's, else UTC
      misfire_grace_seconds: 21600     # a job late by more than this is skipped, not run late
      lock_wait_seconds: 300           # how long a job waits for another run's state lock
      jobs:
        checks: "0 9-16 * * mon-fri"   # a crontab line (5 fields; weekday 0 or 7 = Sunday, as in cron)
        digest: {cron: "0 9 * * mon-fri", misfire_grace_seconds: 7200}
        sync: {minute: "*/15"}         # or APScheduler CronTrigger fields (second, minute, hour, ...)
        metrics: false                 # disabled
      sync: {overlap_seconds: 600, reconcile_hours: 24, concurrency: 4}

Each job calls exactly the function its CLI command calls (:data:`JOBS`); wiring a new one is
one line there. How they are run (APScheduler settings, the lock, catch-up) is ``scheduler.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, Callable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from clinicbot.config import WEEKDAYS, Config
from clinicbot.errors import ClinicbotError
from clinicbot.jobs.check import run_check_job
from clinicbot.jobs.reports import agenda_job, digest_job, metrics_job
from clinicbot.jobs.sync import sync_job
from clinicbot.sync import SyncSettings

DEFAULT_GRACE = 6 * 3600
DEFAULT_LOCK_WAIT = 300  # seconds a scheduled job waits for the state lock


def rotation_job(app: Any, *, apply: bool) -> Any:
    """`clinicbot check --only rotation-notice`."""
    return run_check_job(app, apply=apply, only="rotation-notice")


# job name -> the function the job's CLI command calls (`clinicbot sync`, `check`, `digest`,
# `agenda`, `metrics`, `check --only rotation-notice`), called as ``function(app, apply=...)``.
JOBS: dict[str, Callable[..., Any]] = {
    "sync": sync_job,
    "checks": run_check_job,
    "digest": digest_job,
    "agenda": agenda_job,
    "metrics": metrics_job,
    "rotation": rotation_job,
}
CRON_FIELDS = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")


# --------------------------------------------------------------------------------------------
# The schedule (config section `schedule:`)


@dataclass(frozen=True)
class JobPlan:
    name: str
    fields: Mapping[str, str]  # CronTrigger keyword arguments
    grace: int  # misfire grace, seconds
    enabled: bool = True
    source: str = "default"  # "default" or "config"

    def describe(self) -> str:
        if not self.enabled:
            return "disabled"
        if set(self.fields) <= {"minute", "hour", "day", "month", "day_of_week"}:
            return " ".join(str(self.fields.get(k, "*")) for k in ("minute", "hour", "day", "month", "day_of_week"))
        return ", ".join(f"{k}={v}" for k, v in self.fields.items())


@dataclass(frozen=True)
class Schedule:
    timezone: tzinfo
    jobs: dict[str, JobPlan]
    sync: SyncSettings = field(default_factory=SyncSettings)
    lock_wait: float = DEFAULT_LOCK_WAIT

    def trigger(self, name: str) -> CronTrigger:
        return CronTrigger(timezone=self.timezone, **self.jobs[name].fields)

    def next_run(self, name: str, after: datetime) -> datetime | None:
        if not self.jobs[name].enabled:
            return None
        nxt: datetime | None = self.trigger(name).get_next_fire_time(None, after)
        return nxt

    def previous_run(self, name: str, now: datetime, lookback: timedelta | None = None) -> datetime | None:
        """The latest scheduled time at or before ``now``, looking back ``lookback`` (default:
        the job's grace window)."""
        plan = self.jobs[name]
        if not plan.enabled:
            return None
        trig = self.trigger(name)
        t = trig.get_next_fire_time(None, now - (lookback or timedelta(seconds=plan.grace)))
        last = None
        while t is not None and t <= now:
            last = t
            t = trig.get_next_fire_time(t, t + timedelta(seconds=1))
        return last


def _cron_weekday(expr: str, key: str, config: Config) -> str:
    """Crontab weekdays (0 and 7 = Sunday) -> APScheduler names: APScheduler 3 counts 0 as *Monday*.

    Numeric parts (``1-5``, ``*/2``, ``0,6``) are expanded with cron's numbering and written as
    names (``mon,tue,...``); names (``mon-fri``) pass through unchanged.
    """
    if expr in ("*", "?"):
        return "*"
    cron_days: set[int] = set()
    named: list[str] = []
    for part in expr.split(","):
        base, slash, step_text = part.partition("/")
        if slash and not step_text.isdigit():
            raise config.error(key, f"cannot read weekday {part!r}")
        step = int(step_text) if slash else 1
        if base == "*":
            lo, hi = 0, 6
        elif base.isdigit() or (base.count("-") == 1 and all(x.isdigit() for x in base.split("-"))):
            lo_text, _, hi_text = base.partition("-")
            lo, hi = int(lo_text), int(hi_text or lo_text)
            if hi > 7 or lo > hi or step < 1:
                raise config.error(key, f"weekday {part!r} is not a range within 0-7")
        elif not any(c.isdigit() for c in part):
            named.append(part)
            continue
        else:
            raise config.error(key, f"cannot read weekday {part!r}; use 0-7 (0 = Sunday) or names like mon-fri")
        cron_days.update(d % 7 for d in range(lo, hi + 1, step))
    order = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    names = [name for i, name in enumerate(order) if (i + 1) % 7 in cron_days]
    return ",".join(names + named)


def _parse_job_value(name: str, value: Any, default: JobPlan, config: Config) -> JobPlan:
    key = f"schedule.jobs.{name}"
    if value is False or value is None or value in ("off", "disabled"):
        return JobPlan(name, default.fields, default.grace, enabled=False, source="config")
    grace = default.grace
    if isinstance(value, str):
        value = {"cron": value}
    if not isinstance(value, dict):
        raise config.error(key, "must be a crontab line, a mapping (cron: ..., or CronTrigger fields), or false")
    value = dict(value)
    enabled = value.pop("enabled", True)
    if not isinstance(enabled, bool):
        raise config.error(f"{key}.enabled", "must be true or false")
    if "misfire_grace_seconds" in value:
        grace = value.pop("misfire_grace_seconds")
        if isinstance(grace, bool) or not isinstance(grace, int) or grace < 1:
            raise config.error(f"{key}.misfire_grace_seconds", "must be a whole number of seconds, at least 1")
    fields_: dict[str, str] = {}
    if "cron" in value:
        cron = value.pop("cron")
        parts = str(cron).split()
        if len(parts) != 5:
            raise config.error(key, f"{cron!r} is not a crontab line (minute hour day month weekday)")
        fields_ = dict(zip(("minute", "hour", "day", "month", "day_of_week"), parts))
        fields_["day_of_week"] = _cron_weekday(fields_["day_of_week"], key, config)
        if value:
            raise config.error(f"{key}.{sorted(value)[0]}", "give either cron: or CronTrigger fields, not both")
    else:
        for k, v in value.items():
            if k not in CRON_FIELDS:
                raise config.error(f"{key}.{k}", f"unknown key; use cron, enabled, misfire_grace_seconds or "
                                   f"CronTrigger fields: {', '.join(CRON_FIELDS)}")
            fields_[k] = str(v)
        if not fields_:
            fields_ = dict(default.fields)
        # CronTrigger fills fields *smaller* than the largest given with their minimum: {hour: 9}
        # means 09:00:00, as a person expects.
    try:
        CronTrigger(timezone=timezone.utc, **fields_)
    except (ValueError, TypeError) as exc:
        raise config.error(key, f"invalid schedule: {exc}") from None
    return JobPlan(name, fields_, int(grace), enabled=enabled, source="config")


def team_timezone(config: Config) -> tzinfo:
    """schedule.timezone, else team.timezone, else the rotation file's timezone, else UTC."""
    name = config.section("schedule").get("timezone") or config.get("team.timezone")
    if name:
        try:
            return ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            raise config.error("schedule.timezone", f"unknown timezone {name!r}; use an IANA name such as "
                               "Europe/Berlin or UTC") from None
    try:
        from clinicbot.rotation import load_rotation

        return load_rotation(config.rotation_path).tz
    except (ImportError, ClinicbotError, OSError):
        return timezone.utc


def default_jobs(config: Config, grace: int) -> dict[str, JobPlan]:
    """Defaults from the team settings: checks hourly in business hours, digest at the start of
    the business day, agenda the day before the meeting at the meeting's time, metrics and
    rotation notices daily, and a sync every 15 minutes to keep the cache (and sightings) fresh."""
    start, _, end = config.get("team.business_hours").partition("-")
    sh, sm = (int(x) for x in start.strip().split(":"))
    eh, em = (int(x) for x in end.strip().split(":"))
    last_hour = eh if em > sm else eh - 1  # the last full hour that starts inside business hours
    days = ",".join(d.lower()[:3] for d in config.get("team.business_days"))
    meeting_day = WEEKDAYS.index(config.get("team.meeting_weekday").lower()[:3])
    mh, mm = (int(x) for x in config.get("team.meeting_time").split(":"))
    eve = WEEKDAYS[(meeting_day - 1) % 7]
    plans = {
        "sync": {"minute": "*/15"},
        "checks": {"minute": str(sm), "hour": f"{sh}-{max(sh, last_hour)}", "day_of_week": days},
        "digest": {"minute": str(sm), "hour": str(sh), "day_of_week": days},
        "agenda": {"minute": str(mm), "hour": str(mh), "day_of_week": eve},
        "metrics": {"minute": "0", "hour": "7"},
        "rotation": {"minute": str(sm), "hour": str(sh)},
    }
    return {name: JobPlan(name, f, grace) for name, f in plans.items()}


def schedule_of(config: Config) -> Schedule:
    """The config's schedule: the one :func:`load_config` validated (``Config.typed``), else parsed now."""
    typed = config.typed.get("schedule")
    return typed if isinstance(typed, Schedule) else parse_schedule(config)


def parse_schedule(config: Config) -> Schedule:
    raw = config.section("schedule")
    known = {"timezone", "misfire_grace_seconds", "lock_wait_seconds", "jobs", "sync"}
    for key in raw:
        if key not in known:
            raise config.error(f"schedule.{key}", f"unknown key; known keys: {', '.join(sorted(known))}")
    grace = raw.get("misfire_grace_seconds", DEFAULT_GRACE)
    if isinstance(grace, bool) or not isinstance(grace, int) or grace < 1:
        raise config.error("schedule.misfire_grace_seconds", "must be a whole number of seconds, at least 1")
    lock_wait = raw.get("lock_wait_seconds", DEFAULT_LOCK_WAIT)
    if isinstance(lock_wait, bool) or not isinstance(lock_wait, (int, float)) or not 0 <= lock_wait <= 86400:
        raise config.error("schedule.lock_wait_seconds", "must be a number of seconds from 0 (do not wait) to 86400")
    jobs = default_jobs(config, grace)
    given = raw.get("jobs") or {}
    if not isinstance(given, dict):
        raise config.error("schedule.jobs", "must map a job name to its schedule")
    for name, value in given.items():
        if name not in jobs:
            raise config.error(f"schedule.jobs.{name}", f"unknown job; jobs are: {', '.join(JOBS)}")
        jobs[name] = _parse_job_value(name, value, jobs[name], config)
    return Schedule(timezone=team_timezone(config), jobs=jobs, sync=SyncSettings.from_config(config),
                    lock_wait=float(lock_wait))



def crontab(schedule: Schedule, command: str) -> str:
    """The schedule as crontab lines (for running from cron instead of `serve`)."""
    tz = getattr(schedule.timezone, "key", None) or str(schedule.timezone)
    # Comments on lines of their own: cron takes an inline "# ..." as part of a variable's value.
    lines = ["# clinicbot jobs, generated by `clinicbot serve --print-crontab`",
             "# CRON_TZ works with cronie and fcron; with Debian's cron, convert the hours to the system timezone",
             f"CRON_TZ={tz}"]
    for name, plan in schedule.jobs.items():
        if not plan.enabled:
            lines.append(f"# {name}: disabled")
            continue
        f = plan.fields
        if set(f) - {"minute", "hour", "day", "month", "day_of_week"} or (f.get("second") not in (None, "0")):
            lines.append(f"# {name}: {plan.describe()} cannot be written as a crontab line")
            continue
        when = " ".join(str(f.get(k, "*" if k != "minute" else "0"))
                        for k in ("minute", "hour", "day", "month", "day_of_week"))
        lines.append(f"{when} {command} serve --once {name}")
    return "\n".join(lines) + "\n"
