"""``clinicbot digest``, ``clinicbot agenda``, ``clinicbot metrics``: parse, call the report job, report.

Thin on purpose: the job logic (building, delivering) is ``jobs/reports.py``.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Any, Iterable, Sequence

import click

from clinicbot.delivery.targets import Delivery
from clinicbot.errors import EXIT_FAILURE
from clinicbot.jobs.context import App, import_ahead
from clinicbot.jobs.reports import agenda_data, digest_data, metrics_data, run_report
from clinicbot.reports.render import FORMATS


def _report(app: App, results: Iterable[Delivery], apply: bool) -> None:
    failed = False
    for r in results:
        if r.target == "stdout":
            continue
        failed |= r.status == "failed"
        app.err_console.print(f"{r.target}: {r.status}" + (f" — {r.detail}" if r.detail else ""),
                              markup=False, highlight=False, soft_wrap=True)
    if not apply and any(r.status == "planned" for r in results):
        app.err_console.print("dry run: nothing was sent; add --apply to deliver", markup=False, highlight=False)
    if failed:
        sys.exit(EXIT_FAILURE)


def _run(app: App, job: str, build: Any, to: Sequence[str], fmt: str, apply_flag: bool,
         output: Path | None = None) -> None:
    from clinicbot.jobs.runlog import recorded_run

    apply = apply_flag or bool(app.config().get("apply"))
    import_ahead("jinja2")  # every report renders a template, after its Conduit calls
    # An applied report is a run of its job in the run history (`clinicbot status`).
    with recorded_run(app, job, command=" ".join([job, *(f"--to {t}" for t in to), "--apply"]), enabled=apply) as run:
        results = run.result = run_report(app, build, to, fmt, apply, output)
    _report(app, results, apply)


_format = click.option("--format", "fmt", type=click.Choice(FORMATS), default="term", show_default=True,
                       help="Output format for stdout and file: targets.")
_to = click.option("--to", "to", multiple=True, metavar="TARGET",
                   help="stdout (default), file:PATH, email, chat, task:T123 or wiki; repeatable.")
_apply = click.option("--apply", "apply_flag", is_flag=True, help="Really deliver (default: dry run).")


@click.command("digest")
@_format
@_to
@_apply
@click.option("--since", default=None, metavar="ISO8601", help="Show what is new since then (default: the last delivered digest).")
@click.pass_obj
def digest(app: App, fmt: str, to: tuple[str, ...], apply_flag: bool, since: str | None) -> None:
    """The daily triage digest for the engineers on duty."""
    from clinicbot.jobs.context import parse_now

    since_at = parse_now(since, "--since") if since else None
    _run(app, "digest", lambda env, ledger: digest_data(app, env, ledger, since=since_at), to, fmt, apply_flag)


@click.command("agenda")
@_format
@_to
@_apply
@click.option("--date", "meeting", default=None, metavar="YYYY-MM-DD",
              help="The meeting's date (default: the next meeting day, today included).")
@click.pass_obj
def agenda(app: App, fmt: str, to: tuple[str, ...], apply_flag: bool, meeting: str | None) -> None:
    """The weekly triage meeting agenda: every task in the Triage Meeting Inbox."""
    try:
        day = date.fromisoformat(meeting) if meeting else None
    except ValueError:
        raise click.BadParameter(f"{meeting!r} is not a date YYYY-MM-DD", param_hint="--date") from None
    _run(app, "agenda", lambda env, ledger: agenda_data(app, env, meeting=day), to, fmt, apply_flag)


@click.command("metrics")
@_format
@_to
@_apply
@click.option("--window", "window_days", type=click.IntRange(1, 3650), default=None,
              help="Days to look back (default: reports.window_days, 30).")
@click.option("--output", type=click.Path(path_type=Path), default=None,
              help="Write the report into this directory (the HTML page as index.html).")
@click.option("--no-record", is_flag=True, help="Do not add this computation to the metrics history.")
@click.pass_obj
def metrics(app: App, fmt: str, to: tuple[str, ...], apply_flag: bool, window_days: int | None,
            output: Path | None, no_record: bool) -> None:
    """Clinic duty metrics over a window; history kept in <state_dir>/metrics.json."""
    _run(app, "metrics", lambda env, ledger: metrics_data(app, env, window_days=window_days, record=not no_record),
         to, fmt, apply_flag, output)
