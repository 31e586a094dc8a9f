"""`clinicbot serve`: one long-lived process that runs the bot's jobs on a schedule (APScheduler 3).

The schedule comes from the config's ``schedule:`` section, in the team's timezone; its format and
the job table are in :mod:`clinicbot.jobs.schedule`.

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

Each job calls exactly the function its CLI command calls (``jobs/schedule.py``: :data:`JOBS`);
wiring a new one is one line there; the schedule is parsed there too.
"""

from __future__ import annotations

import logging
import queue
import signal
import sys
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from apscheduler.executors.base import BaseExecutor, run_job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler

from clinicbot.errors import EXIT_OK
from clinicbot.jobs.runner import JobOutcome, JobRunner  # noqa: F401  (moved there: `sync` runs one without APScheduler)
from clinicbot.jobs.schedule import Schedule, schedule_of
from clinicbot.state.cache import CacheStore, cache_path

log = logging.getLogger(__name__)

MAX_SLEEP = 60.0  # seconds; see the module docstring (suspend)


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
    schedule = schedule_of(config)
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
