"""`clinicbot serve`: one long-lived process that runs the bot's jobs on a schedule (APScheduler 3).

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

Why these APScheduler settings:

* ``coalesce=True``: a laptop that slept through five hourly checks runs one, not five.
* ``misfire_grace_time``: a job more than this late is skipped; the next one runs on time.
* ``max_instances=1`` and one job thread (:class:`SerialExecutor`): jobs never overlap. They share
  the Conduit client and the ledger, which has one writer; a job that is still running when its
  next run is due is skipped with a warning, not stacked up.
* The job thread holds the state lock for the life of the process: a second ``serve`` or a
  writing one-shot command is refused with the holder's PID. (``StateLock`` is re-entrant per
  *thread*, so the jobs, running in that thread, may take it again through the ledger.)
* The scheduler thread never sleeps more than :data:`MAX_SLEEP` seconds: ``Event.wait`` measures
  monotonic time, which stands still while a machine is suspended, so an uncapped wait would
  oversleep by however long the laptop was closed.
* SIGTERM/SIGINT: the running job finishes, queued ones are dropped, the process exits 0.
* After a restart a job whose most recent scheduled time fell inside the grace window while
  the process was down runs once (APScheduler keeps its jobs in memory and would not know),
  and so does one whose run at that time started but never finished (killed mid-run): the
  run history (``runs`` in the cache) tells.
* The lock is *waited for*, up to ``schedule.lock_wait_seconds`` (default 300): timers and
  crontab lines start several ``serve --once`` jobs at 09:00, and a job refused by the lock
  would be lost for the day. ``serve`` waits the same at start (a one-shot job may be finishing
  when systemd starts it); interactive commands are refused at once.

Each job calls exactly the function its CLI command calls (:data:`JOB_TARGETS`); wiring a new
one is one line there.
"""

from __future__ import annotations

import functools
import importlib
import logging
import queue
import signal
import sys
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, Callable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.executors.base import BaseExecutor, run_job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger

from clinicbot.config import WEEKDAYS, Config
from clinicbot.errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, ClinicbotError
from clinicbot.sync import CacheStore, SyncSettings, cache_path

log = logging.getLogger(__name__)

MAX_SLEEP = 60.0  # seconds; see the module docstring (suspend)
DEFAULT_GRACE = 6 * 3600
DEFAULT_LOCK_WAIT = 300  # seconds a scheduled job waits for the state lock

# job name -> "module:function[?keyword=value]" — the function the job's CLI command calls
# (`clinicbot sync`, `check`, `digest`, `agenda`, `metrics`, `check --only rotation-notice`).
# Called as ``function(app, apply=..., **keywords)``. A target that is not importable (a feature
# not installed) makes the job "unavailable": logged at start, shown by `clinicbot status`.
JOB_TARGETS: dict[str, str] = {
    "sync": "clinicbot.cli.ops:sync_job",
    "checks": "clinicbot.jobs.check:run_check_job",
    "digest": "clinicbot.reports.build:run_digest_job",
    "agenda": "clinicbot.reports.build:run_agenda_job",
    "metrics": "clinicbot.reports.build:run_metrics_job",
    "rotation": "clinicbot.jobs.check:run_check_job?only=rotation-notice",
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
            raise config.error(f"schedule.jobs.{name}", f"unknown job; jobs are: {', '.join(JOB_TARGETS)}")
        jobs[name] = _parse_job_value(name, value, jobs[name], config)
    return Schedule(timezone=team_timezone(config), jobs=jobs, sync=SyncSettings.from_config(config),
                    lock_wait=float(lock_wait))


# --------------------------------------------------------------------------------------------
# Running one job: what serve, `serve --once` and the tests share


def resolve_target(target: str) -> Callable[..., Any] | None:
    """"module:function[?key=value&...]" -> the function (with those keywords bound), or None."""
    path, _, query = target.partition("?")
    module, _, name = path.partition(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return None
    fn = getattr(mod, name, None)
    if fn is None or not query:
        return fn
    keywords = dict(pair.partition("=")[::2] for pair in query.split("&"))
    return functools.partial(fn, **keywords)


@dataclass
class JobOutcome:
    job: str
    outcome: str  # "ok", "failed", "unavailable", "skipped"
    exit_code: int
    seconds: float = 0.0
    calls: int = 0
    detail: str = ""
    result: Any = None  # what the job function returned (e.g. a SyncResult)


def _judge(result: Any) -> tuple[str, int, str]:
    """(outcome, exit code, detail) from what a job function returned.

    Job functions return what their CLI command turns into an exit code. A plain int is an exit
    status: anything but 0 failed (a report job returns 1 when a delivery failed). A result
    object with ``exit_code`` (CheckRunResult) follows the `check` command: 1 means findings
    fired — the job did its work, "ok" — and 2+ that it could not; one listing ``failures`` (a
    check that crashed) is "partial".
    """
    if isinstance(result, int) and not isinstance(result, bool):
        return ("ok" if result == EXIT_OK else "failed"), result, (f"exit {result}" if result else "")
    code = getattr(result, "exit_code", EXIT_OK)
    code = code if isinstance(code, int) else EXIT_OK
    parts = []
    summary = getattr(result, "summary", None)
    if callable(summary):
        parts.append(str(summary()))
    for attr in ("findings", "actions", "failures"):
        value = getattr(result, attr, None)
        if isinstance(value, (list, tuple)):
            parts.append(f"{len(value)} {attr}")
    if code:
        parts.append(f"exit {code}")
    outcome = "ok" if code in (EXIT_OK, EXIT_FAILURE) else "failed"
    if outcome == "ok" and getattr(result, "failures", None):
        outcome = "partial"
    return outcome, code, ", ".join(parts)


class JobRunner:
    """Runs a named job: records the run, counts Conduit calls, logs one line, never raises."""

    def __init__(self, app: Any, *, apply: bool, clock: Callable[[], datetime] | None = None,
                 targets: Mapping[str, Callable[..., Any] | str] | None = None, record: bool = True,
                 log_failures: bool = True):
        """``log_failures=False``: a failure the caller prints itself (a one-shot command's one
        line on stderr) is not logged too; a bug's traceback still is."""
        self.log_failures = log_failures
        self.app = app
        self.apply = apply
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.targets: dict[str, Callable[..., Any] | str] = dict(JOB_TARGETS)
        self.targets.update(targets or {})
        self.record = record
        self.stopping = threading.Event()

    def target(self, name: str) -> Callable[..., Any] | None:
        t = self.targets.get(name)
        return resolve_target(t) if isinstance(t, str) else t

    def _stats(self) -> tuple[int, int]:
        client = getattr(self.app, "_client", None)
        if client is None:
            return 0, 0
        return sum(client.stats.calls.values()), client.stats.total

    def run(self, name: str) -> JobOutcome:
        extra = {"job": name}
        if self.stopping.is_set():
            log.info("job %s: not started, shutting down", name, extra=extra)
            return JobOutcome(name, "skipped", EXIT_OK)
        fn = self.target(name)
        if fn is None:
            log.warning("job %s: unavailable (%s not found)", name, self.targets.get(name), extra=extra)
            return JobOutcome(name, "unavailable", EXIT_FAILURE, detail=f"{self.targets.get(name)} not found")
        started = self.clock()
        mono = time.monotonic()
        calls0, attempts0 = self._stats()
        try:
            run_id = self._record_start(name, started)
        except ClinicbotError as exc:  # the state directory is unusable: the job could not record anything
            if self.log_failures:
                log.error("job %s not run: %s", name, exc, extra=extra)
            return JobOutcome(name, "failed", exc.exit_code, detail=str(exc))
        outcome, code, detail, result = "ok", EXIT_OK, "", None
        try:
            result = fn(self.app, apply=self.apply)
            outcome, code, detail = _judge(result)
        except ClinicbotError as exc:
            outcome, code, detail = "failed", exc.exit_code, str(exc)
            if self.log_failures:
                log.error("job %s failed: %s", name, exc, extra=extra)
        except OSError as exc:  # a file the job could not read or write: one line, no traceback
            outcome, code, detail = "failed", EXIT_CONFIG, _os_error_line(exc)
            if self.log_failures:
                log.error("job %s failed: %s", name, detail, extra=extra)
        except Exception as exc:  # a bug in one job must not stop the others
            outcome, code, detail = "failed", EXIT_FAILURE, f"{type(exc).__name__}: {exc}"
            log.exception("job %s failed: %s", name, detail, extra=extra)
        seconds = time.monotonic() - mono
        calls1, attempts1 = self._stats()
        try:
            self._record_end(run_id, started + timedelta(seconds=seconds), outcome, calls1 - calls0,
                             attempts1 - attempts0, detail)
        except ClinicbotError as exc:
            if self.log_failures:
                log.error("job %s: %s", name, exc, extra=extra)
            if outcome != "failed":
                outcome, code, detail = "failed", exc.exit_code, str(exc)
        if outcome in ("ok", "partial"):
            log.info("job %s: %s in %.1f s, %d Conduit call(s)%s", name, outcome, seconds, calls1 - calls0,
                     f" ({detail})" if detail and not detail.startswith("sync ") else "", extra=extra)
        return JobOutcome(name, outcome, code, seconds, calls1 - calls0, detail, result)

    # -- the run history (in the cache DB; see sync.CacheStore) ----------------------------
    def _store(self) -> CacheStore | None:
        """The run history's store. A damaged cache is rebuilt on open (CacheStore); what is left
        to raise is a StateError about the state directory itself (read-only, full, removed),
        which stops the job: its own writes would fail the same way."""
        if not self.record:
            return None
        return CacheStore(cache_path(self.app.config()))

    def _record_start(self, name: str, started: datetime) -> int | None:
        store = self._store()
        if store is None:
            return None
        with store:
            store.close_stale_runs()
            store.prune_runs()
            return store.run_started(name, started.timestamp())

    def _record_end(self, run_id: int | None, finished: datetime, outcome: str, calls: int, attempts: int,
                    detail: str) -> None:
        if run_id is None:
            return
        store = self._store()
        if store is None:
            return
        with store:
            store.run_finished(run_id, finished=finished.timestamp(), outcome=outcome, calls=calls,
                               attempts=attempts, detail=detail)


def _os_error_line(exc: OSError) -> str:
    where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
    return f"{where}{exc.strerror or exc}"


# --------------------------------------------------------------------------------------------
# APScheduler plumbing


class SerialExecutor(BaseExecutor):  # type: ignore[misc]
    """One job thread for the life of the scheduler: jobs run one at a time, in submission order.

    The thread enters ``hold()`` (the state lock) before running anything and leaves it when
    the executor shuts down; if it cannot, :meth:`start` raises (so `serve` fails fast with the
    holder's PID). On shutdown the running job finishes and queued ones are dropped.
    """

    def __init__(self, hold: Callable[[], AbstractContextManager[Any]] | None = None):
        super().__init__()
        self._hold = hold or nullcontext
        self._queue: queue.Queue[tuple[Any, list[datetime]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()
        self.busy = threading.Event()

    def start(self, scheduler: Any, alias: str) -> None:
        super().start(scheduler, alias)
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._loop, args=(ready, failure), name="clinicbot-jobs", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            raise failure[0]

    def _loop(self, ready: threading.Event, failure: list[BaseException]) -> None:
        try:
            held = self._hold()
            held.__enter__()
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            return
        ready.set()
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                job, run_times = item
                if self.stopping.is_set():
                    self._run_job_success(job.id, [])  # dropped: shutting down
                    continue
                self.busy.set()
                try:
                    events = run_job(job, job._jobstore_alias, run_times, self._logger.name)
                except BaseException:
                    self._run_job_error(job.id, *sys.exc_info()[1:])
                else:
                    self._run_job_success(job.id, events)
                finally:
                    self.busy.clear()
        finally:
            held.__exit__(None, None, None)

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        self._queue.put((job, run_times))

    def shutdown(self, wait: bool = True) -> None:
        self.stopping.set()
        self._queue.put(None)
        if wait and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()


class CappedBackgroundScheduler(BackgroundScheduler):  # type: ignore[misc]
    """BackgroundScheduler that wakes at least every MAX_SLEEP seconds (see module docstring)."""

    def _process_jobs(self) -> float:
        wait = super()._process_jobs()
        return MAX_SLEEP if wait is None else min(wait, MAX_SLEEP)


def add_jobs(scheduler: BaseScheduler, schedule: Schedule, runner: JobRunner, *,
             only: list[str] | None = None) -> list[str]:
    """Add every enabled, available job to ``scheduler``; returns the names added."""
    added = []
    for name, plan in schedule.jobs.items():
        if not plan.enabled or (only is not None and name not in only):
            continue
        if runner.target(name) is None:
            log.warning("job %s: unavailable (%s not found); not scheduled", name, runner.targets.get(name))
            continue
        scheduler.add_job(runner.run, schedule.trigger(name), args=[name], id=name, name=name,
                          coalesce=True, max_instances=1, misfire_grace_time=plan.grace, replace_existing=True)
        added.append(name)
    return added


def catch_up(scheduler: BaseScheduler, schedule: Schedule, last_started: Mapping[str, float], now: datetime,
             last_finished: Mapping[str, float] | None = None) -> list[str]:
    """Jobs due now after a (re)start: those whose latest scheduled time (within grace) passed
    with no *completed* run since — the process was down, or killed while the job ran.

    ``last_started``: each job's latest run, finished or not (a job never run before — a new
    deployment — is not caught up: the first start should not fire a burst of digests and
    agendas). ``last_finished``: the start of each job's latest run that finished (any outcome);
    a run killed mid-way never finished, so its slot is run again. Without it, any start counts.
    """
    done = last_started if last_finished is None else last_finished
    due = []
    for job in scheduler.get_jobs():
        prev = schedule.previous_run(job.id, now)
        if prev is None or job.id not in last_started:
            continue
        last = done.get(job.id)
        if last is not None and last >= prev.timestamp():
            continue
        job.modify(next_run_time=prev)
        due.append(job.id)
    if due:
        log.info("catching up after a restart: %s", ", ".join(due))
    return due


def serve(app: Any, *, apply: bool, run_now: list[str] | None = None, hold: Callable[[], Any] | None = None,
          stop: threading.Event | None = None, install_signals: bool = True) -> int:
    """Run the scheduler until SIGTERM/SIGINT (or ``stop``); returns the exit code (0)."""
    config = app.config()
    schedule = parse_schedule(config)
    # APScheduler logs every submission at INFO, repeating our one line per job; keep its
    # warnings (missed runs, skipped overlapping runs) and errors.
    aps = logging.getLogger("apscheduler")
    if aps.getEffectiveLevel() < logging.WARNING and not log.isEnabledFor(logging.DEBUG):
        aps.setLevel(logging.WARNING)
    runner = JobRunner(app, apply=apply)
    executor = SerialExecutor(hold)
    scheduler = CappedBackgroundScheduler(timezone=schedule.timezone, executors={"default": executor},
                                          job_defaults={"coalesce": True, "max_instances": 1})
    stop = stop or threading.Event()
    names = add_jobs(scheduler, schedule, runner)
    # Unknown --run-now names are a usage error before anything starts.
    for name in run_now or []:
        if name not in schedule.jobs:
            raise config.error("--run-now", f"unknown job {name!r}; jobs are: {', '.join(schedule.jobs)}")

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():
            log.warning("signal %s again: still finishing the current job", signal.Signals(signum).name)
            return
        log.info("signal %s: finishing the current job, then exiting", signal.Signals(signum).name)
        runner.stopping.set()
        executor.stopping.set()
        stop.set()

    previous = {}
    if install_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        scheduler.start(paused=True)  # the executor takes the lock here; LockHeldError propagates
        now = datetime.now(timezone.utc)
        serve_run = _record_serve(app, now)
        try:
            with CacheStore(cache_path(config)) as store:
                last = {job: row["started"] for job, row in store.last_runs().items()}
                finished = store.last_finished()
            catch_up(scheduler, schedule, last, now.astimezone(schedule.timezone), finished)
            for name in run_now or []:
                if scheduler.get_job(name) is not None:
                    scheduler.modify_job(name, next_run_time=now.astimezone(schedule.timezone))
                else:
                    scheduler.add_job(runner.run, args=[name], id=f"{name}-now", name=name,
                                      misfire_grace_time=None, next_run_time=now.astimezone(schedule.timezone))
            scheduler.resume()
            log.info("serving %d job(s) in %s: %s", len(names), schedule.timezone,
                     "; ".join(f"{j.id} next {j.next_run_time:%a %H:%M}" for j in scheduler.get_jobs()
                               if j.next_run_time))
            while not stop.wait(1.0):
                pass
        finally:
            log.info("stopping%s", " after the current job" if executor.busy.is_set() else "")
            scheduler.shutdown(wait=True)
            _record_serve_end(app, serve_run)
        log.info("stopped")
        return EXIT_OK
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _record_serve(app: Any, now: datetime) -> int | None:
    try:
        with CacheStore(cache_path(app.config())) as store:
            store.close_stale_runs()
            return store.run_started("serve", now.timestamp())
    except Exception as exc:
        log.warning("run history unavailable: %s", exc)
        return None


def _record_serve_end(app: Any, run_id: int | None) -> None:
    if run_id is None:
        return
    try:
        with CacheStore(cache_path(app.config())) as store:
            store.run_finished(run_id, finished=time.time(), outcome="stopped", calls=0, attempts=0)
    except Exception as exc:
        log.warning("run history unavailable: %s", exc)


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
