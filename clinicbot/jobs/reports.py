"""The report jobs: digest, agenda, metrics. Build (reports/), render and deliver (delivery/).

What ``clinicbot digest|agenda|metrics``, ``clinicbot serve`` and ``clinicbot demo`` all call: this
module reads the config, the rotation and the state directory, fetches the snapshot, and hands
plain data to the pure builders in ``reports/digest.py``, ``agenda.py``, ``metrics_page.py`` / ``metrics.py``; rendering is
``reports/render.py``, delivery ``delivery/targets.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Sequence
from zoneinfo import ZoneInfo

from clinicbot.delivery.targets import (
    Deliverer,
    Delivery,
    ReportSettings,
    Target,
    check_writable,
    output_path,
    parse_target,
    write_file,
)
from clinicbot.errors import EXIT_FAILURE, EXIT_OK
from clinicbot.phab.boards import parse_task, parse_user
from clinicbot.phab.snapshot import whoami
from clinicbot.jobs.context import App, load_snapshot
from clinicbot.jobs.report_lists import ListSettings, list_settings, listed_findings, reports_section
from clinicbot.model import Snapshot
from clinicbot.state.cache_rows import gc_paused


@dataclass
class ReportEnv:
    """Everything a report needs besides the snapshot, read once from the config."""

    settings: ReportSettings
    rotation: Any  # clinicbot.rotation.Rotation or None (no rotation file)
    tz: Any
    team: str
    base_url: str
    state_dir: Path
    digest: ListSettings = ListSettings()  # reports.digest: caps and finding lists
    agenda: ListSettings = ListSettings()  # reports.agenda


def report_env(app: App) -> ReportEnv:
    config = app.config()
    # Validated once, at load (jobs/sections.py); a Config built by hand is parsed here.
    settings = config.typed.get("reports") or reports_section(config)
    rotation = app.rotation()
    tz_name = config.get("team.timezone") or (rotation.tz_name if rotation is not None else "UTC")
    tz = timezone.utc if tz_name == "UTC" else ZoneInfo(tz_name)
    return ReportEnv(settings, rotation, tz, str(config.get("team.name")), config.url, config.state_dir,
                     list_settings(config, "digest"), list_settings(config, "agenda"))


def metrics_store(env: ReportEnv) -> Any:
    from clinicbot.state.metrics_history import MetricsStore

    return MetricsStore(env.state_dir)


def open_ledger(env: ReportEnv, *, apply: bool) -> Any:
    from clinicbot.state.ledger import Ledger

    # A dry run reads a private copy (no lock, nothing saved); applying takes the state lock.
    return Ledger.open(env.state_dir, readonly=not apply)


# --------------------------------------------------------------------------------------------
# Building each report


def digest_data(app: App, env: ReportEnv, ledger: Any | None, *, since: datetime | None = None) -> dict[str, Any]:
    from clinicbot.reports.digest import build_digest

    snapshot = load_snapshot(app, open_only=True)
    now = snapshot.now
    if since is None:
        with metrics_store(env) as store:
            last = store.last_report("digest")
        since = last if last is not None and last < now else now - timedelta(hours=env.settings.digest_lookback_hours)
        source = "last digest" if last is not None and last < now else "default"
    else:
        source = "given"
    has_ledger = ledger is not None and (env.state_dir / "ledger.json").exists()
    lists, skipped = listed_findings(app.config(), snapshot, env.rotation, env.digest.lists)
    data = build_digest(snapshot, team=env.team, rotation=env.rotation, since=since,
                        findings=ledger.records() if has_ledger else None, tz=env.tz, base_url=env.base_url,
                        rotation_days=env.settings.rotation_days, caps=env.digest.caps, lists=lists,
                        lists_skipped=skipped)
    data["since_source"] = source
    return data


def agenda_data(app: App, env: ReportEnv, *, meeting: date | None = None) -> dict[str, Any]:
    from clinicbot.reports.agenda import agenda_task_ids, build_agenda, next_meeting

    config = app.config()
    snapshot = load_snapshot(app, open_only=True)
    weekday, start = config.get("team.meeting_weekday"), config.get("team.meeting_time")
    if meeting is None:
        meeting_at = next_meeting(snapshot.now, weekday, start, env.tz)
    else:
        hh, mm = (int(x) for x in start.split(":"))
        meeting_at = datetime(meeting.year, meeting.month, meeting.day, hh, mm, tzinfo=env.tz)
    with metrics_store(env) as store:
        previous = store.previous_agenda(meeting_at.astimezone(env.tz).date())
        lists, skipped = listed_findings(config, snapshot, env.rotation, env.agenda.lists)
        data = build_agenda(snapshot, team=env.team, meeting_at=meeting_at, rotation=env.rotation, previous=previous,
                            project_names=_project_names(app, snapshot), tz=env.tz, base_url=env.base_url,
                            excerpt_chars=env.settings.excerpt_chars, caps=env.agenda.caps, lists=lists,
                            lists_skipped=skipped)
        # Local state, not the outside world: kept in a dry run too, so the next meeting's
        # agenda can flag carry-overs. Regenerating for the same meeting replaces the list.
        store.save_agenda(date.fromisoformat(data["meeting_date"]), agenda_task_ids(data), snapshot.now)
    return data


def _project_names(app: App, snapshot: Snapshot) -> dict[str, str]:
    """Names of the tags of tasks in the Triage Meeting Inbox (boards' names are known already),
    kept with the fixed lookups (a day): a warm agenda usually asks for none."""
    from clinicbot.phab.snapshot import project_names

    wanted = {p for t, _ in snapshot.tasks_with_role("triage_meeting_inbox") for p in t.project_phids} - set(snapshot.boards)
    lookups = app.lookups()
    names = project_names(app.client(), lookups, wanted)
    app.save_lookups()
    return names


# No cyclic GC during the job: at 100,000 tasks it holds millions of objects (tasks, events) and
# hardly any cycles, and each full collection walked them all (a third of compute_metrics' time);
# cycles made meanwhile are collected after it.
@gc_paused()
def metrics_data(app: App, env: ReportEnv, *, window_days: int | None = None, record: bool = True) -> dict[str, Any]:
    from clinicbot.metrics import compute_metrics, counted_since, histories_read
    from clinicbot.reports.metrics_page import build_metrics_report

    window = window_days or env.settings.window_days
    # Open tasks and those closed or modified since the oldest time a metric counts: a task closed
    # before it changes no figure (at 100k tasks: a third of the tasks, not all of them and their histories).
    snapshot = load_snapshot(app, closed_since=counted_since(app.now(), window_days=window,
                                                             weeks=env.settings.weeks, tz=env.tz))
    prefetch = getattr(snapshot.timelines, "prefetch", None)  # the cache's lazy timelines: read in one go
    if prefetch is not None:
        prefetch(histories_read(snapshot, window_days=window))
    on_duty = None
    if env.rotation is not None:
        from clinicbot.rotation.query import duty_lookup

        # Every arrival the metrics group by shift is in the window: the rotation planned once for it.
        duty = duty_lookup(env.rotation, snapshot.now - timedelta(days=window), snapshot.now)
        on_duty = lambda at: [m.username for m in duty(at)]  # noqa: E731
    metrics = compute_metrics(snapshot, window_days=window,
                              untouched_days=env.settings.untouched_days, weeks=env.settings.weeks,
                              on_duty=on_duty, tz=env.tz)
    with metrics_store(env) as store:
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
        task = parse_task(found[0], attachments=())
        return type("TaskRef", (), {"id": task.id, "phid": task.phid})()

    def bot_phid() -> str | None:
        """The bot's PHID, as the check runner's snapshot finds it (bot_username, else the token's owner)."""
        client = app.client()
        name = config.get("phabricator.bot_username")
        if name:
            for user in client.search("user.search", constraints={"usernames": [name]}):
                return parse_user(user).phid
        return str(whoami(client)["phid"])

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
        with metrics_store(env) as store:
            store.mark_report("digest", app.now())
    return results


def targets_of(values: Sequence[str]) -> list[Target]:
    return [parse_target(v) for v in values] or [Target("stdout")]


def run_report(app: App, build: Any, to: Sequence[str], fmt: str, apply: bool, output: Path | None = None) -> list[Delivery]:
    """A report command: ``build(env, ledger)`` then deliver to ``to`` (and ``output``); the deliveries."""
    targets = targets_of(to)
    # Unwritable outputs are refused before anything is fetched, recorded or written.
    if output is not None:
        check_writable(output, "--output", directory=True)
    for target in targets:
        if target.kind == "file":
            check_writable(Path(target.arg), f"--to {target}")
    env = report_env(app)
    ledger = open_ledger(env, apply=apply)
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
    return results


# --------------------------------------------------------------------------------------------
# Scheduled jobs (`clinicbot serve`): the same building and delivering, targets from the config


def scheduled_report(app: App, kind: str, *, apply: bool) -> int:
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
    ledger = open_ledger(env, apply=apply)
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


def digest_job(app: App, *, apply: bool) -> int:
    return scheduled_report(app, "digest", apply=apply)


def agenda_job(app: App, *, apply: bool) -> int:
    return scheduled_report(app, "agenda", apply=apply)


def metrics_job(app: App, *, apply: bool) -> int:
    return scheduled_report(app, "metrics", apply=apply)


def show_digest(app: App) -> int:
    """The main job: what `clinicbot demo` runs and what a cron line would run by default.

    It shows the daily triage digest on the terminal, built exactly as ``clinicbot digest`` builds
    it. Showing is not delivering: nothing is posted, and "since the last digest" stays the last
    *delivered* digest (``clinicbot digest --to … --apply`` delivers).
    """
    env = report_env(app)
    ledger = open_ledger(env, apply=False)  # a read-only copy: the digest only reads the findings
    try:
        data = digest_data(app, env, ledger)
        deliverer(app, env, ledger, apply=False).deliver(data, [Target("stdout")], fmt="term")
    finally:
        ledger.close()
    return EXIT_OK
