"""``clinicbot digest``, ``clinicbot agenda``, ``clinicbot metrics``: build, render, deliver.

Thin on purpose: this module reads the config, the rotation and the state directory, fetches
the snapshot, and hands plain data to the pure builders in ``reports.py`` / ``metrics.py``;
rendering is ``report_render.py``, delivery ``report_delivery.py``. The main job
(``main_job.py``) calls :func:`digest_data` and :func:`deliver` exactly as the command does.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence
from zoneinfo import ZoneInfo

import click

from clinicbot.jobs.context import App
from clinicbot.phab.snapshot import load_snapshot
from clinicbot.errors import EXIT_FAILURE, ClinicbotError, ConfigError
from clinicbot.model import Snapshot
from clinicbot.delivery.targets import (
    Deliverer,
    Delivery,
    ReportSettings,
    Target,
    check_writable,
    output_path,
    parse_target,
    report_settings,
    write_file,
)
from clinicbot.reports.render import FORMATS


@dataclass
class ReportEnv:
    """Everything a report needs besides the snapshot, read once from the config."""

    settings: ReportSettings
    rotation: Any  # clinicbot.rotation.Rotation or None (no rotation file)
    tz: Any
    team: str
    base_url: str
    state_dir: Path


def report_env(app: App) -> ReportEnv:
    config = app.config()
    settings = report_settings(config)
    rotation = app.rotation()
    tz_name = config.get("team.timezone") or (rotation.tz_name if rotation is not None else "UTC")
    tz = timezone.utc if tz_name == "UTC" else ZoneInfo(tz_name)
    return ReportEnv(settings, rotation, tz, str(config.get("team.name")), config.url, config.state_dir)


def _store(env: ReportEnv) -> Any:
    from clinicbot.state.metrics_history import MetricsStore

    return MetricsStore(env.state_dir)


def _ledger(env: ReportEnv, *, apply: bool) -> Any:
    from clinicbot.state.ledger import Ledger

    # A dry run reads a private copy (no lock, nothing saved); applying takes the state lock.
    return Ledger.open(env.state_dir, readonly=not apply)


# --------------------------------------------------------------------------------------------
# Building each report


def digest_data(app: App, env: ReportEnv, ledger: Any | None, *, since: datetime | None = None) -> dict[str, Any]:
    from clinicbot.reports.build import build_digest

    snapshot = load_snapshot(app, open_only=True)
    now = snapshot.now
    if since is None:
        with _store(env) as store:
            last = store.last_report("digest")
        since = last if last is not None and last < now else now - timedelta(hours=env.settings.digest_lookback_hours)
        source = "last digest" if last is not None and last < now else "default"
    else:
        source = "given"
    has_ledger = ledger is not None and (env.state_dir / "ledger.json").exists()
    data = build_digest(snapshot, team=env.team, rotation=env.rotation, since=since,
                        findings=ledger.records() if has_ledger else None, tz=env.tz, base_url=env.base_url,
                        rotation_days=env.settings.rotation_days)
    data["since_source"] = source
    return data


def agenda_data(app: App, env: ReportEnv, *, meeting: date | None = None) -> dict[str, Any]:
    from clinicbot.reports.build import agenda_task_ids, build_agenda, next_meeting

    config = app.config()
    snapshot = load_snapshot(app, open_only=True)
    weekday, start = config.get("team.meeting_weekday"), config.get("team.meeting_time")
    if meeting is None:
        meeting_at = next_meeting(snapshot.now, weekday, start, env.tz)
    else:
        hh, mm = (int(x) for x in start.split(":"))
        meeting_at = datetime(meeting.year, meeting.month, meeting.day, hh, mm, tzinfo=env.tz)
    with _store(env) as store:
        previous = store.previous_agenda(meeting_at.astimezone(env.tz).date())
        data = build_agenda(snapshot, team=env.team, meeting_at=meeting_at, rotation=env.rotation, previous=previous,
                            project_names=_project_names(app, snapshot), tz=env.tz, base_url=env.base_url,
                            excerpt_chars=env.settings.excerpt_chars)
        # Local state, not the outside world: kept in a dry run too, so the next meeting's
        # agenda can flag carry-overs. Regenerating for the same meeting replaces the list.
        store.save_agenda(date.fromisoformat(data["meeting_date"]), agenda_task_ids(data), snapshot.now)
    return data


def _project_names(app: App, snapshot: Snapshot) -> dict[str, str]:
    """Names of the tags of tasks in the Triage Meeting Inbox (boards' names are known already)."""
    wanted = sorted({p for t, _ in snapshot.tasks_with_role("triage_meeting_inbox") for p in t.project_phids}
                    - set(snapshot.boards))
    names: dict[str, str] = {}
    for i in range(0, len(wanted), 100):
        for item in app.client().search("project.search", constraints={"phids": wanted[i:i + 100]}):
            names[item["phid"]] = str((item.get("fields") or {}).get("name") or item["phid"])
    return names


def metrics_data(app: App, env: ReportEnv, *, window_days: int | None = None, record: bool = True) -> dict[str, Any]:
    from clinicbot.metrics import compute_metrics
    from clinicbot.reports.build import build_metrics_report

    snapshot = load_snapshot(app, open_only=False)
    on_duty = None
    if env.rotation is not None:
        from clinicbot.rotation import on_duty as rot_on_duty

        rot = env.rotation
        on_duty = lambda at: [m.username for m in rot_on_duty(rot, at)]  # noqa: E731
    metrics = compute_metrics(snapshot, window_days=window_days or env.settings.window_days,
                              untouched_days=env.settings.untouched_days, weeks=env.settings.weeks,
                              on_duty=on_duty, tz=env.tz)
    with _store(env) as store:
        if record:
            store.record(metrics.summary())
        since = (snapshot.now - timedelta(days=env.settings.history_days)).isoformat()
        history = [h for h in store.history() if h["now"] >= since]
    return build_metrics_report(metrics, team=env.team, history=history, sla_hours=env.settings.sla_hours,
                                tz=env.tz, base_url=env.base_url)


def recipients(data: dict[str, Any]) -> list[str]:
    """Natural email recipients: the engineers on duty (digest), every attendee (agenda)."""
    if data["kind"] == "digest":
        people = data["on_duty"] or []
    elif data["kind"] == "agenda" and data["attendees"]:
        a = data["attendees"]
        people = [*a["on_duty"], *(p for p in (a["manager"], a["product_manager"]) if p)]
    else:
        people = []
    return [p["email"] for p in people if p.get("email")]


# --------------------------------------------------------------------------------------------
# Delivering


def deliverer(app: App, env: ReportEnv, ledger: Any, *, apply: bool) -> Deliverer:
    from clinicbot.delivery.outbox import chat_sender_from_config, email_sender_from_config, settle_window

    config = app.config()
    delivery = config.section("delivery")

    def lookup(monogram: str) -> Any:
        found = list(app.client().search("maniphest.search", constraints={"ids": [int(monogram[1:])]}))
        if not found:
            return None
        return type("TaskRef", (), {"id": int(found[0]["id"]), "phid": found[0]["phid"]})()

    def bot_phid() -> str | None:
        """The bot's PHID, as the check runner's snapshot finds it (bot_username, else the token's owner)."""
        client = app.client()
        name = config.get("phabricator.bot_username")
        if name:
            for user in client.search("user.search", constraints={"usernames": [name]}):
                return str(user["phid"])
        return client.call("user.whoami").get("phid")

    def print_term(text: str) -> None:
        app.console.print(text, markup=True, highlight=False, emoji=False, end="", soft_wrap=True)

    return Deliverer(app.client(), ledger, env.settings, apply=apply, cap=int(config.get("max_writes_per_run")),
                     now=app.now(), templates_dir=config.templates_dir,
                     chat_sender=chat_sender_from_config(delivery, app.env),
                     email_sender=email_sender_from_config(delivery, app.env),
                     print_term=print_term, lookup_task=lookup,
                     clock=app.wall_clock, settle=settle_window(config), bot_lookup=bot_phid)


def deliver(app: App, env: ReportEnv, ledger: Any, data: dict[str, Any], targets: Sequence[Target], *,
            fmt: str, apply: bool) -> list[Delivery]:
    results = deliverer(app, env, ledger, apply=apply).deliver(data, targets, fmt=fmt, recipients=recipients(data))
    if apply and data["kind"] == "digest" and any(r.status in ("posted", "created", "edited") for r in results):
        with _store(env) as store:
            store.mark_report("digest", app.now())
    return results


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


def _targets(values: Sequence[str]) -> list[Target]:
    return [parse_target(v) for v in values] or [Target("stdout")]


def _run(app: App, build: Any, to: Sequence[str], fmt: str, apply_flag: bool, output: Path | None = None) -> None:
    targets = _targets(to)
    # Unwritable outputs are refused before anything is fetched, recorded or written.
    if output is not None:
        check_writable(output, "--output", directory=True)
    for target in targets:
        if target.kind == "file":
            check_writable(Path(target.arg), f"--to {target}")
    apply = apply_flag or bool(app.config().get("apply"))
    env = report_env(app)
    ledger = _ledger(env, apply=apply)
    try:
        data = build(env, ledger)
        results = []
        if output is not None:
            file_fmt = "text" if fmt == "term" else fmt  # rich markup belongs on a terminal, not in a file
            path = output_path(output, data, file_fmt)
            write_file(path, deliverer(app, env, ledger, apply=apply).render(data, file_fmt), "--output")
            results.append(Delivery(f"file:{path}", "written", f"{file_fmt} to {path}"))
            targets = [parse_target(v) for v in to]  # --output alone: no stdout copy
        results += deliver(app, env, ledger, data, targets, fmt=fmt, apply=apply)
    finally:
        ledger.close()
    _report(app, results, apply)


# --------------------------------------------------------------------------------------------
# Scheduled jobs (`clinicbot serve`): the same building and delivering, targets from the config


def run_report_job(app: App, kind: str, *, apply: bool) -> int:
    """Build the ``kind`` report and deliver it to ``reports.<kind>_to``; the metrics job also
    writes ``reports.metrics_output``/index.html. Returns 1 when a delivery failed, else 0."""
    env = report_env(app)
    targets = []
    for value in getattr(env.settings, f"{kind}_to"):
        target = parse_target(value)
        if target.kind == "file":  # paths in the config are relative to the config file
            target = Target("file", str(app.config().resolve_path(target.arg)))
        targets.append(target)
        if target.kind == "file":
            check_writable(Path(target.arg), f"reports.{kind}_to")
    if kind == "metrics" and env.settings.metrics_output:
        check_writable(app.config().resolve_path(env.settings.metrics_output), "reports.metrics_output",  # type: ignore[arg-type]
                       directory=True)
    ledger = _ledger(env, apply=apply)
    try:
        if kind == "digest":
            data = digest_data(app, env, ledger)
        elif kind == "agenda":
            data = agenda_data(app, env)
        else:
            data = metrics_data(app, env)
        results = []
        if kind == "metrics" and env.settings.metrics_output:
            directory = app.config().resolve_path(env.settings.metrics_output)
            assert directory is not None
            path = output_path(directory, data, "html")
            write_file(path, deliverer(app, env, ledger, apply=apply).render(data, "html"), "reports.metrics_output")
            results.append(Delivery(f"file:{path}", "written"))
        results += deliver(app, env, ledger, data, targets, fmt="term", apply=apply)
    finally:
        ledger.close()
    return EXIT_FAILURE if any(r.status == "failed" for r in results) else 0


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
    _guard(lambda: _run(app, lambda env, ledger: digest_data(app, env, ledger, since=since_at), to, fmt, apply_flag))


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
    _guard(lambda: _run(app, lambda env, ledger: agenda_data(app, env, meeting=day), to, fmt, apply_flag))


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
    _guard(lambda: _run(app, lambda env, ledger: metrics_data(app, env, window_days=window_days, record=not no_record),
                        to, fmt, apply_flag, output))


def _guard(fn: Any) -> None:
    # Same exit codes when a test invokes a command on its own, outside the cli group.
    try:
        fn()
    except ClinicbotError as exc:
        click.echo(f"clinicbot: error: {exc}", err=True)
        sys.exit(exc.exit_code)


__all__ = ["agenda", "digest", "metrics", "ConfigError"]
