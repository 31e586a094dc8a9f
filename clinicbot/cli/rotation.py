"""``clinicbot rotation``: who is on duty, what changes next, gaps, notices; calendar and wiki exports.

Registered by ``clinicbot.cli`` (``add_command``); errors become exit codes at the group's one
boundary (2 for a bad rotation.yaml). Order matters for "nothing is written when validation fails": the file
is loaded and validated before any calendar file or wiki page is touched.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from clinicbot.jobs.context import App
from clinicbot.config import SETTINGS_BY_NAME
from clinicbot.delivery.targets import check_writable
from clinicbot.errors import ConfigError
from clinicbot.rotation import DEFAULT_HORIZON, Change, Gap, Member, Notice, Rotation, RotationWarning, Shift
from clinicbot.rotation import changes_between, coverage_gaps, load_rotation, notices, shifts_between, validate
from clinicbot.rotation.export import calendar_bytes, wiki_section, write_atomic
from clinicbot.delivery.wiki import PublishResult, publish_section

CHANGES_DAYS = 14
ICAL_PAST = timedelta(weeks=4)  # keep recent shifts in the feed so "last week" still shows


def _rotation_path(app: App, given: Path | None) -> Path:
    if given is not None:
        return given
    if app.has_config():
        return app.config().rotation_path
    return Path("rotation.yaml")


@click.command("rotation")
@click.option("--rotation", "rotation_path", type=click.Path(path_type=Path), default=None,
              help="Rotation file (default: the config's 'rotation' setting, else ./rotation.yaml).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--days", type=click.IntRange(0, 366), default=7, show_default=True,
              help="Notices: members rotating on or off within this many days.")
@click.option("--horizon", "horizon_weeks", type=click.IntRange(1, 520), default=DEFAULT_HORIZON.days // 7,
              show_default=True, help="Weeks ahead to look for coverage gaps and conflicts.")
@click.option("--ical", "ical_path", type=click.Path(path_type=Path), default=None,
              help="Write the rotation as an iCalendar file (one event per member-shift).")
@click.option("--ical-weeks", type=click.IntRange(1, 520), default=26, show_default=True,
              help="Weeks ahead the calendar covers (it also keeps the last 4 weeks).")
@click.option("--wiki", is_flag=True, help="Print the Remarkup 'Current Clinic Duty Rotation' section.")
@click.option("--publish", "slug", default=None, metavar="SLUG",
              help="Put the section into this Phriction page (dry run unless --apply).")
@click.option("--title", default=None,
              help="Title for the page if --publish has to create it (default: the rotation's name).")
@click.option("--apply", is_flag=True, help="Really write the wiki page (default: show what would change).")
@click.pass_context
def rotation(ctx: click.Context, rotation_path: Path | None, fmt: str, days: int, horizon_weeks: int,
             ical_path: Path | None, ical_weeks: int, wiki: bool, slug: str | None, title: str | None,
             apply: bool) -> None:
    """Who is on clinic duty now, the next changes, coverage gaps, notices and warnings."""
    app: App = ctx.obj
    _run(app, rotation_path, fmt, days, timedelta(weeks=horizon_weeks), ical_path, ical_weeks, wiki, slug,
         title, apply)


def _run(app: App, rotation_path: Path | None, fmt: str, days: int, horizon: timedelta, ical_path: Path | None,
         ical_weeks: int, wiki: bool, slug: str | None, title: str | None, apply: bool) -> None:
    if apply and not slug:
        raise ConfigError(None, "--apply", "only means something with --publish SLUG")
    if ical_path is not None:
        check_writable(ical_path, "--ical")  # before anything else: a bad path writes nothing
    path = _rotation_path(app, rotation_path)
    rot = load_rotation(path)  # raises RotationError: nothing below runs, nothing is written
    now = app.now()
    warnings = validate(rot, now, horizon)

    messages: list[str] = []
    report: dict[str, Any] = {}
    if ical_path is not None:
        data = calendar_bytes(rot, now - ICAL_PAST, now + timedelta(weeks=ical_weeks), now=now)
        try:
            write_atomic(ical_path, data)
        except OSError as exc:
            raise ConfigError(None, "--ical", f"cannot write {ical_path}: {exc.strerror or exc}; "
                              "choose a writable path") from None
        events = data.count(b"BEGIN:VEVENT")
        report["ical"] = {"path": str(ical_path), "events": events}
        messages.append(f"wrote {ical_path} ({events} events)")
    section = wiki_section(rot)  # a function of the file alone: publishing again changes nothing
    if slug:
        cap = int(SETTINGS_BY_NAME["max_writes_per_run"].default)
        if app.has_config():
            apply = apply or bool(app.config().get("apply"))
            cap = int(app.config().get("max_writes_per_run"))
        # Every page created (missing parents included) or edited is one write under the cap.
        from clinicbot.jobs.runlog import recorded_run

        # An applied publish is a run in the run history (`clinicbot status`), when there is a state directory.
        with recorded_run(app, f"rotation --publish {slug}", command=f"rotation --publish {slug} --apply",
                          enabled=apply and app.has_config()) as run:
            result = run.result = publish_section(app.client(), slug, title or rot.name, section, apply=apply, cap=cap)
        report["publish"] = _publish_json(result)
        messages += _publish_lines(result)

    if wiki:
        click.echo(section, nl=False)
        for m in messages:
            app.err_console.print(m, markup=False, highlight=False, emoji=False, soft_wrap=True)
        return
    if fmt == "json":
        click.echo(json.dumps({**_summary_json(rot, now, days, horizon, warnings), **report}, indent=2))
        return
    _print_tables(app, rot, now, days, horizon, warnings)
    for m in messages:  # not wrapped: a diff line or a slug cut in two reads wrong
        app.console.print(m, markup=False, highlight=False, emoji=False, soft_wrap=True)


# --------------------------------------------------------------------------------------------
# JSON


def _iso(rot: Rotation, at: datetime) -> str:
    return rot.local(at).isoformat()


def _member(m: Member) -> dict[str, str]:
    return {k: v for k, v in (("username", m.username), ("name", m.name), ("email", m.email), ("chat", m.chat)) if v}


def _shift(rot: Rotation, s: Shift) -> dict[str, Any]:
    return {"member": s.member.username, "start": _iso(rot, s.start), "end": _iso(rot, s.end), "source": s.source,
            "key": s.key}


def _change(rot: Rotation, c: Change) -> dict[str, Any]:
    return {"at": _iso(rot, c.at), "member": c.member.username, "kind": c.kind, "source": c.source}


def _gap(rot: Rotation, g: Gap) -> dict[str, Any]:
    return {"start": _iso(rot, g.start), "end": _iso(rot, g.end), "on_duty": list(g.on_duty), "missing": g.missing,
            "reasons": list(g.reasons)}


def _notice(rot: Rotation, n: Notice) -> dict[str, Any]:
    return {"key": n.key, "member": n.member.username, "kind": n.kind, "at": _iso(rot, n.at), "message": n.message}


def _warning(w: RotationWarning) -> dict[str, Any]:
    return {"file": w.file, "line": w.line, "key": w.key, "message": w.message}


def _publish_json(r: PublishResult) -> dict[str, Any]:
    return {"status": r.status, "slug": r.slug, "diff_summary": r.diff_summary, "diff": r.diff, "uri": r.uri,
            "parent_pages": list(r.ancestors), "writes": r.writes}


def _publish_lines(r: PublishResult) -> list[str]:
    parents = ", ".join(r.ancestors)
    if r.status == "planned":
        verb = "create" if r.diff_summary.startswith("new page") else "edit"
        lines = [f"dry run: would {verb} wiki page {r.slug} ({r.diff_summary})"
                 + (f" after creating its missing parent pages {parents}" if parents else "")
                 + f"; {r.writes} write(s); pass --apply to write", r.diff]
        return lines
    if r.status == "unchanged":
        return [f"wiki page {r.slug}: section already up to date, nothing written"]
    return ([f"created missing parent pages {parents}"] if parents else []) + \
        [f"wiki page {r.slug} {r.status} ({r.diff_summary})" + (f": {r.uri}" if r.uri else "")]


def _summary_json(rot: Rotation, now: datetime, days: int, horizon: timedelta,
                  warnings: list[RotationWarning]) -> dict[str, Any]:
    current = [s for s in shifts_between(rot, now, now + timedelta(microseconds=1)) if s.start <= now < s.end]
    return {
        "rotation": rot.file,
        "name": rot.name,
        "now": _iso(rot, now),
        "timezone": rot.tz_name,
        "handoff": rot.handoff.strftime("%H:%M"),
        "on_duty_min": rot.min_on_duty,
        "on_duty_max": rot.max_on_duty,
        "manager": _member(rot.manager) if rot.manager else None,
        "product_manager": _member(rot.product_manager) if rot.product_manager else None,
        "on_duty": [_shift(rot, s) for s in current],
        "changes": [_change(rot, c) for c in changes_between(rot, now, now + timedelta(days=CHANGES_DAYS))],
        "gaps": [_gap(rot, g) for g in coverage_gaps(rot, now, now + horizon)],
        "notices": [_notice(rot, n) for n in notices(rot, now, days)],
        "warnings": [_warning(w) for w in warnings],
    }


# --------------------------------------------------------------------------------------------
# Tables


def _row(table: Table, *cells: str) -> None:
    # Text, not str: a key like "bob:on:2026-12-21" must not become an emoji or markup.
    table.add_row(*(Text(c) for c in cells))


def _print_tables(app: App, rot: Rotation, now: datetime, days: int, horizon: timedelta,
                  warnings: list[RotationWarning]) -> None:
    con = app.console
    con.print(f"{rot.name}: {rot.fmt(now)} ({rot.tz_name}), handoff {rot.handoff:%H:%M}",
              markup=False, highlight=False, emoji=False)

    t = Table(title="On duty now", title_justify="left")
    for col in ("Engineer", "Since", "Until", "Source"):
        t.add_column(col)
    current = [s for s in shifts_between(rot, now, now + timedelta(microseconds=1)) if s.start <= now < s.end]
    for s in current:
        _row(t, s.member.display, rot.fmt(s.start), rot.fmt(s.end), s.source)
    con.print(t if current else "On duty now: nobody", markup=False, emoji=False)

    changes = changes_between(rot, now, now + timedelta(days=CHANGES_DAYS))
    t = Table(title=f"Changes in the next {CHANGES_DAYS} days", title_justify="left")
    for col in ("When", "Engineer", "", "Why"):
        t.add_column(col)
    for c in changes:
        _row(t, rot.fmt(c.at), c.member.display, c.kind, c.source)
    con.print(t if changes else f"No changes in the next {CHANGES_DAYS} days", markup=False, emoji=False)

    gaps = coverage_gaps(rot, now, now + horizon)
    if gaps:
        t = Table(title=f"Coverage gaps (fewer than {rot.min_on_duty} on duty)", title_justify="left")
        for col in ("From", "To", "On duty", "Why"):
            t.add_column(col)
        for g in gaps:
            _row(t, rot.fmt(g.start), rot.fmt(g.end), ", ".join(g.on_duty) or "nobody", "; ".join(g.reasons))
        con.print(t)
    else:
        con.print(f"No coverage gaps in the next {horizon.days // 7} weeks", markup=False)

    items = notices(rot, now, days)
    if items:
        t = Table(title=f"Notices (next {days} days)", title_justify="left")
        t.add_column("Key")
        t.add_column("Notice")
        for n in items:
            _row(t, n.key, n.message)
        con.print(t)
    else:
        con.print(f"No notices for the next {days} days", markup=False)

    for w in warnings:
        con.print(f"warning: {w}", markup=False, highlight=False, emoji=False)
