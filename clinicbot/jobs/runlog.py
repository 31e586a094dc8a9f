"""Recording runs in the run history: what ``serve``'s jobs and the one-shot commands share.

Every run that posts or changes state leaves one row in the run history (``runs`` in the cache
database, :mod:`clinicbot.state.runs`), so ``clinicbot status`` is right whoever ran it:

* ``serve``'s scheduled jobs (trigger ``serve``), ``serve --once`` (``once``) and ``sync``
  (``manual``) through :class:`clinicbot.scheduler.JobRunner`;
* the applied one-shot commands (``manual``): ``check --apply``, ``digest|agenda|metrics --apply``,
  ``rotation --publish SLUG --apply``, through :func:`recorded_run`.

A one-shot command that does the whole work of a scheduled job is recorded under that job's
name (``check --apply`` is the ``checks`` job, ``check --only rotation-notice --apply`` the
``rotation`` job, ``digest --apply`` the ``digest`` job): ``status`` shows it as the job's last
run and ``serve`` does not catch that slot up again. A narrower run (``check --only untriaged``,
``--task T12``) is recorded under its command line, listed among the recent runs only.

Dry runs are not recorded: they post nothing (the local memory a dry report run keeps, such as
a metrics history row, is not a run of the job).
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

from clinicbot.errors import EXIT_FAILURE, EXIT_OK, LockHeldError, StateError, error_exit
from clinicbot.phab.conduit import is_write
from clinicbot.state.cache import CacheStore, cache_path

TRIGGERS = ("serve", "once", "manual")
# Delivery statuses that changed something outside (reports): a message sent, a comment posted,
# a wiki page created or edited. "written" (a local file) and "printed" are not writes.
DELIVERED = frozenset({"posted", "created", "edited"})


def judge(result: Any) -> tuple[str, int, str]:
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


def writes_of(result: Any) -> int | None:
    """What a run posted, changed on the server or sent, when its result tells; None otherwise.

    A check run: its actions that were posted (comments, subscriptions, chat, email; the console
    handler only prints). Report deliveries: those posted, created or edited. A wiki publish:
    the pages it created or edited.
    """
    actions = getattr(result, "actions", None)
    if isinstance(actions, (list, tuple)):
        return sum(1 for a in actions if getattr(a, "status", "") == "posted" and getattr(a, "handler", "") != "console")
    if isinstance(result, (list, tuple)) and all(hasattr(r, "status") for r in result):
        return sum(1 for r in result if r.status in DELIVERED)
    if hasattr(result, "wrote") and hasattr(result, "writes"):
        return int(result.writes) if result.wrote else 0
    return None


def conduit_counts(app: Any) -> tuple[int, int, int]:
    """(answered calls, attempts, answered write calls) of the app's Conduit client so far."""
    client = getattr(app, "_client", None)
    if client is None:
        return 0, 0, 0
    calls = client.stats.calls
    return sum(calls.values()), client.stats.total, sum(n for m, n in calls.items() if is_write(m))


class RunLog:
    """Opens the run history for each record (short transactions: ``status`` reads it meanwhile)."""

    def __init__(self, app: Any):
        self.app = app

    def start(self, job: str, started: datetime, *, trigger: str, command: str = "") -> int:
        with CacheStore(cache_path(self.app.config())) as store:
            store.close_stale_runs()
            store.prune_runs()
            return store.run_started(job, started.timestamp(), trigger=trigger, command=command)

    # A run's end never makes the state directory: if it is gone, it was removed mid-run, and a new,
    # empty one would make every open finding fire again (the run itself said so).
    def forget(self, run_id: int) -> None:
        with CacheStore(cache_path(self.app.config()), create_dir=False) as store:
            store.forget_run(run_id)

    def finish(self, run_id: int, finished: datetime, outcome: str, *, calls: int, attempts: int,
               writes: int | None, detail: str = "") -> None:
        with CacheStore(cache_path(self.app.config()), create_dir=False) as store:
            store.run_finished(run_id, finished=finished.timestamp(), outcome=outcome, calls=calls,
                               attempts=attempts, detail=detail, writes=writes)


@dataclass
class Tally:
    """The Conduit counters at a run's start; :meth:`since` gives the run's own."""

    calls: int
    attempts: int
    writes: int

    @classmethod
    def now(cls, app: Any) -> "Tally":
        return cls(*conduit_counts(app))

    def since(self, app: Any) -> "Tally":
        calls, attempts, writes = conduit_counts(app)
        return Tally(calls - self.calls, attempts - self.attempts, writes - self.writes)


@dataclass
class ManualRun:
    """What a one-shot command tells :func:`recorded_run` about its run: set ``result``."""

    job: str
    result: Any = None


@contextmanager
def recorded_run(app: Any, job: str, *, command: str, enabled: bool = True,
                 clock: Callable[[], datetime] | None = None) -> Iterator[ManualRun]:
    """Record a one-shot command's run (trigger ``manual``) around the block.

    The block sets ``run.result`` to what it got (a CheckRunResult, the deliveries, a publish
    result, an exit code); the outcome and writes are judged from it as for ``serve``'s jobs. An
    exception is recorded as a failed run (with the CLI's one line) and propagates, except a
    refusal by the state lock (another run holds it): that run never began, and is not recorded.
    ``enabled`` False (a dry run) records nothing.
    """
    run = ManualRun(job)
    if not enabled:
        yield run
        return
    clock = clock or (lambda: datetime.now(timezone.utc))
    log = RunLog(app)
    started, mono = clock(), time.monotonic()
    tally = Tally.now(app)
    run_id = log.start(job, started, trigger="manual", command=command)
    outcome, detail = "failed", ""
    try:
        yield run
        outcome, _, detail = judge(run.result)
    except LockHeldError:
        log.forget(run_id)
        raise
    except BaseException as exc:
        known = error_exit(exc) if isinstance(exc, Exception) else None
        detail = known[0] if known else f"{type(exc).__name__}: {exc}"
        try:
            _finish(app, log, run_id, started, mono, tally, run.result, outcome, detail)
        except StateError as late:  # the run's own error is the one to report
            logging.getLogger(__name__).debug("run not recorded: %s", late)
        raise
    _finish(app, log, run_id, started, mono, tally, run.result, outcome, detail)


def _finish(app: Any, log: RunLog, run_id: int, started: datetime, mono: float, tally: Tally, result: Any,
            outcome: str, detail: str) -> None:
    spent = tally.since(app)
    writes = writes_of(result)
    log.finish(run_id, started + timedelta(seconds=time.monotonic() - mono), outcome, calls=spent.calls,
               attempts=spent.attempts, writes=spent.writes if writes is None else writes, detail=detail)


def command_line(name: str, *options: tuple[str, str | None]) -> str:
    """``check --only untriaged``: the command and those of its options that have a value."""
    return " ".join([name, *(f"{flag} {value}" for flag, value in options if value)])


def check_job_name(only: str | None, task: int | None) -> str:
    """The job a ``check --apply`` run is: ``checks``, ``rotation`` (only rotation-notice), or its
    own command line when narrower than any scheduled job."""
    if task is None and only is None:
        return "checks"
    if task is None and only == "rotation-notice":
        return "rotation"
    return command_line("check", ("--only", only), ("--task", f"T{task}" if task is not None else None))
