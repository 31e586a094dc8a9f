"""Operations commands: `clinicbot serve`, `clinicbot sync`, `clinicbot status`.

Thin, like the rest of the CLI: parse, take the state lock, call scheduler/sync/status.
``sync_job`` is the one function both `clinicbot sync` and serve's ``sync`` job call.
"""

from __future__ import annotations

import json
import logging
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterator

import click

from clinicbot.jobs.context import App
from clinicbot.errors import EXIT_FAILURE, EXIT_OK
from clinicbot.jobs.sync import sync_job

if TYPE_CHECKING:
    from rich.console import Console

log = logging.getLogger(__name__)


def state_lock(app: App) -> Any:
    """The one lock per state directory (state.lock.StateLock, shared with the ledger)."""
    from clinicbot.state.lock import StateLock

    return StateLock(app.config().state_dir)


@contextmanager
def waiting_lock(app: App, seconds: float) -> Iterator[Any]:
    """The state lock, waited for up to ``seconds`` (scheduled jobs: never lost to a busy lock)."""
    lock = state_lock(app).acquire(wait=seconds)
    try:
        yield lock
    finally:
        lock.release()


# --------------------------------------------------------------------------------------------
# sync


class RichSyncProgress:
    """A progress bar for long syncs on a terminal; `sync` passes none when not on one (logs stay quiet)."""

    def __init__(self, console: Console):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True)
        self.task_id: Any = None

    def __enter__(self) -> "RichSyncProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def phase(self, name: str, total: int | None) -> None:
        if self.task_id is not None:
            self.progress.update(self.task_id, visible=False)
        self.task_id = self.progress.add_task(f"sync: {name}", total=total)

    def advance(self, n: int) -> None:
        if self.task_id is not None:
            self.progress.advance(self.task_id, n)


@click.command("sync")
@click.option("--full", is_flag=True, help="Forget the cache and fetch every task and history again.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def sync(app: App, full: bool, fmt: str) -> None:
    """Update the local cache of tasks and histories: only what changed since the last sync.

    A full resync happens with --full, when the cache is missing, or after an upgrade that changed
    its format. Takes the state lock (refused while `serve` or another command runs).
    """
    from clinicbot.jobs.runner import JobRunner

    on_terminal = app.err_console.is_terminal and fmt == "text"
    with state_lock(app):
        bar = RichSyncProgress(app.err_console) if on_terminal else None

        def target(app_: App, *, apply: bool) -> Any:
            if bar is None:
                return sync_job(app_, apply=apply, full=full)
            with bar:
                return sync_job(app_, apply=apply, full=full, progress=bar)

        outcome = JobRunner(app, apply=False, targets={"sync": target}, log_failures=False, trigger="manual").run("sync")
    if outcome.outcome != "ok":
        click.echo(f"clinicbot: error: {outcome.detail}", err=True)
        sys.exit(outcome.exit_code or EXIT_FAILURE)
    result = outcome.result
    if fmt == "json":
        click.echo(json.dumps({
            "mode": result.mode, "reason": result.reason, "tasks_fetched": result.tasks_fetched,
            "histories_fetched": result.histories_fetched, "removed": result.removed, "tasks": result.tasks_total,
            "calls": result.calls, "attempts": result.attempts, "calls_by_method": result.calls_by_method,
            "seconds": round(outcome.seconds, 3),
            "modified_start": result.modified_start.isoformat() if result.modified_start else None,
        }, indent=2))
    else:
        app.console.print(result.summary() + f" in {outcome.seconds:.1f} s", markup=False, highlight=False, emoji=False)


# --------------------------------------------------------------------------------------------
# serve


@click.command()
@click.option("--apply", is_flag=True, help="Let the jobs write (default: the config's `apply`).")
@click.option("--once", "once", multiple=True, metavar="JOB",
              help="Run this job now and exit instead of serving (repeatable); for cron, systemd timers, k8s CronJobs.")
@click.option("--run-now", "run_now", multiple=True, metavar="JOB",
              help="Serve, and run this job right after starting (repeatable).")
@click.option("--print-crontab", is_flag=True, help="Print the schedule as crontab lines and exit.")
@click.pass_obj
def serve(app: App, apply: bool, once: tuple[str, ...], run_now: tuple[str, ...], print_crontab: bool) -> None:
    """Run the jobs on the config's schedule (team timezone) until SIGTERM/SIGINT.

    Jobs: sync, checks, digest, agenda, metrics, rotation. SIGTERM lets the running job finish,
    then exits 0. Holds the state lock, waiting up to schedule.lock_wait_seconds for it: a second
    instance is refused after that (exit 2) naming this one's PID.

    --once exits 0 when every job ran (findings that fired are the job working, not a failure),
    1 when a job ran partly (a check crashed, a delivery failed), and the job's own code (2, 3, 4)
    when it could not run.
    """
    from clinicbot.jobs.runner import JobRunner
    from clinicbot.jobs.schedule import JOBS, crontab, schedule_of

    config = app.config()
    schedule = schedule_of(config)  # config errors before anything starts
    apply = apply or bool(config.get("apply"))
    if print_crontab:
        prefix = "clinicbot" + (f" --config {config.path.resolve()}" if config.path else "")
        click.echo(crontab(schedule, prefix), nl=False)
        return
    for name in (*once, *run_now):
        if name not in JOBS:
            raise config.error("--once" if name in once else "--run-now",
                               f"unknown job {name!r}; jobs are: {', '.join(JOBS)}")
    if once:
        worst = EXIT_OK
        with waiting_lock(app, schedule.lock_wait):
            runner = JobRunner(app, apply=apply, log_failures=False, trigger="once")  # failures: one line each, below
            for name in once:
                outcome = runner.run(name)
                if outcome.outcome in ("failed", "unavailable"):
                    click.echo(f"clinicbot: job {name} {outcome.outcome}: {outcome.detail}", err=True)
                worst = max(worst, once_exit_code(outcome))
        if worst:
            sys.exit(worst)
        return
    if app.now_override is not None:
        log.warning("serve ignores --now/CLINICBOT_NOW: scheduled jobs run at the real time")
        app.now_override = None
    log.info("clinicbot serve: %s", "applying writes" if apply else "dry run (pass --apply or set apply: true)")
    from clinicbot.scheduler import serve as run_scheduler  # APScheduler: only to serve (not for --once)

    sys.exit(run_scheduler(app, apply=apply, run_now=list(run_now), hold=lambda: waiting_lock(app, schedule.lock_wait)))


def once_exit_code(outcome: Any) -> int:
    """`serve --once`'s exit code for one job: 0 when it ran ("ok", findings included: `check`'s
    exit 1 for "findings fired" would make a systemd unit "failed" every time the bot did its
    job), 1 when it ran partly, else the job's own code (2 state/config, 3 Conduit, 4 write cap)."""
    if outcome.outcome in ("ok", "skipped"):
        return EXIT_OK
    if outcome.outcome == "partial":
        return EXIT_FAILURE
    return outcome.exit_code or EXIT_FAILURE


# --------------------------------------------------------------------------------------------
# status


@click.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def status(app: App, fmt: str) -> None:
    """Each job's last run, outcome, duration, Conduit calls and next run; the cache; whether serve runs.

    Reads the state directory only (no Conduit call, no lock). Exit 0 when healthy, 1 when a job's
    last run failed or a job missed a scheduled run.
    """
    from clinicbot.jobs.status import collect_status, render_status, status_json

    report = collect_status(app.config(), datetime.now(timezone.utc))
    if fmt == "json":
        click.echo(json.dumps(status_json(report), indent=2))
    else:
        render_status(report, app.console)
    if not report.healthy:
        sys.exit(EXIT_FAILURE)
