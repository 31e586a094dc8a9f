"""Running one job, as serve, `serve --once` and the one-shot `sync` command do: :class:`JobRunner`.

It records the run in the run history, counts the Conduit calls, logs one line and never raises.
It lives apart from :mod:`clinicbot.scheduler` so that `clinicbot sync` (a cron job of one Conduit
call when nothing changed) runs without importing APScheduler or every other job's module: the
job table (``jobs/schedule.py``: ``JOBS``) is imported only when a job is looked up there.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping

from clinicbot.errors import EXIT_FAILURE, EXIT_OK, ClinicbotError, error_exit
from clinicbot.jobs.runlog import RunLog, Tally, judge, writes_of

log = logging.getLogger("clinicbot.scheduler")  # the logger these lines always had



@dataclass
class JobOutcome:
    job: str
    outcome: str  # "ok", "failed", "unavailable", "skipped"
    exit_code: int
    seconds: float = 0.0
    calls: int = 0
    detail: str = ""
    result: Any = None  # what the job function returned (e.g. a SyncResult)


class JobRunner:
    """Runs a named job: records the run, counts Conduit calls, logs one line, never raises."""

    def __init__(self, app: Any, *, apply: bool, clock: Callable[[], datetime] | None = None,
                 targets: Mapping[str, Callable[..., Any]] | None = None, record: bool = True,
                 log_failures: bool = True, trigger: str = "serve"):
        """``log_failures=False``: a failure the caller prints itself (a one-shot command's one
        line on stderr) is not logged too; a bug's traceback still is. ``trigger``: how the run
        history names who started the job (serve, once, manual; ``jobs/runlog.py``)."""
        self.log_failures = log_failures
        self.trigger = trigger
        self.app = app
        self.apply = apply
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.given: dict[str, Callable[..., Any]] = dict(targets or {})
        self._targets: dict[str, Callable[..., Any]] | None = None
        self.record = record
        self.stopping = threading.Event()

    @property
    def targets(self) -> dict[str, Callable[..., Any]]:
        """Every job (:data:`~clinicbot.jobs.schedule.JOBS`), with the ``targets`` given instead of theirs."""
        if self._targets is None:
            from clinicbot.jobs.schedule import JOBS  # imports every job's module: only when one is needed

            self._targets = {**JOBS, **self.given}
        return self._targets

    def target(self, name: str) -> Callable[..., Any] | None:
        return self.given[name] if name in self.given else self.targets.get(name)

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
        tally = Tally.now(self.app)
        try:
            run_id = self._record_start(name, started)
        except ClinicbotError as exc:  # the state directory is unusable: the job could not record anything
            if self.log_failures:
                log.error("job %s not run: %s", name, exc, extra=extra)
            return JobOutcome(name, "failed", exc.exit_code, detail=str(exc))
        outcome, code, detail, result = "ok", EXIT_OK, "", None
        try:
            result = fn(self.app, apply=self.apply)
            outcome, code, detail = judge(result)
        except Exception as exc:
            known = error_exit(exc)  # the same line and exit code as the CLI's boundary
            if known is not None:
                detail, code = known
                outcome = "failed"
                if self.log_failures:
                    log.error("job %s failed: %s", name, detail, extra=extra)
            else:  # a bug in one job must not stop the others
                outcome, code, detail = "failed", EXIT_FAILURE, f"{type(exc).__name__}: {exc}"
                log.exception("job %s failed: %s", name, detail, extra=extra)
        seconds = time.monotonic() - mono
        spent = tally.since(self.app)
        writes = writes_of(result)
        try:
            self._record_end(run_id, started + timedelta(seconds=seconds), outcome, spent.calls, spent.attempts,
                             spent.writes if writes is None else writes, detail)
        except ClinicbotError as exc:
            if self.log_failures:
                log.error("job %s: %s", name, exc, extra=extra)
            if outcome != "failed":
                outcome, code, detail = "failed", exc.exit_code, str(exc)
        if outcome in ("ok", "partial"):
            log.info("job %s: %s in %.1f s, %d Conduit call(s)%s", name, outcome, seconds, spent.calls,
                     f" ({detail})" if detail and not detail.startswith("sync ") else "", extra=extra)
        return JobOutcome(name, outcome, code, seconds, spent.calls, detail, result)

    # -- the run history (in the cache DB; see state/runs.py and jobs/runlog.py) -----------
    # A damaged cache is rebuilt on open (CacheStore); what is left to raise is a StateError about
    # the state directory itself (read-only, full, removed), which stops the job: its own writes
    # would fail the same way.
    def _record_start(self, name: str, started: datetime) -> int | None:
        if not self.record:
            return None
        command = {"serve": name, "once": f"serve --once {name}"}.get(self.trigger, name)
        return RunLog(self.app).start(name, started, trigger=self.trigger, command=command)

    def _record_end(self, run_id: int | None, finished: datetime, outcome: str, calls: int, attempts: int,
                    writes: int | None, detail: str) -> None:
        if run_id is None:
            return
        RunLog(self.app).finish(run_id, finished, outcome, calls=calls, attempts=attempts, writes=writes,
                                detail=detail)
