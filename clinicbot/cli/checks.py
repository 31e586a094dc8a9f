"""``clinicbot check`` and ``clinicbot ledger``: thin commands over :mod:`clinicbot.jobs.check` and the ledger.

Exit codes of ``check``: 0 nothing fired; 1 findings fired or a check failed (named on
stderr); 2 config/state problems (lock held, corrupt ledger); 3 Phabricator; 4 the write cap.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

import click

from clinicbot import escape
from clinicbot.jobs.context import App, parse_now
from clinicbot.errors import ConfigError, SafetyCapExceeded
from clinicbot.model import json_default

if TYPE_CHECKING:
    from rich.text import Text

# Under cron (stdout not a terminal) `check` prints a summary and at most this many findings, console
# lines and actions one per line: a mail of a few kilobytes, never a table of thousands of rows.
PLAIN_LIMIT = 50


def parse_task(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip()
    if text[:1] in "tT":
        text = text[1:]
    if not text.isdigit():
        raise ConfigError(None, "--task", f"{value!r} is not a task like T123")
    return int(text)


@click.command("check")
@click.option("--apply", "apply_", is_flag=True, help="Really post comments and send messages (default: dry run, "
              "unless the config says apply: true).")
@click.option("--dry-run", is_flag=True, help="Never write, even when the config says apply: true.")
@click.option("--only", metavar="SLUG", default=None, help="Run only this check.")
@click.option("--task", "task", metavar="T123", default=None, help="Only findings about this task.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def check(app: App, apply_: bool, dry_run: bool, only: str | None, task: str | None, fmt: str) -> None:
    """Run the checks and deal with what they find: comment, subscribe, chat, email (dry run unless applied).

    A finding already handled is repeated only after its repetition_seconds; a condition that
    went away and came back starts a new episode. Exit 0 when nothing fired, 1 when findings
    fired or a check failed, 4 when more writes were planned than max_writes_per_run.
    """
    from clinicbot.jobs.check import run_check_job
    from clinicbot.jobs.runlog import check_job_name, command_line, recorded_run

    if apply_ and dry_run:
        raise ConfigError(None, "--apply", "--apply and --dry-run contradict each other; pick one")
    task_id = parse_task(task)
    applying = not dry_run and (apply_ or (app.has_config() and bool(app.config().get("apply"))))
    # With --format json stdout is the JSON document: the console handler writes to stderr. Not on a
    # terminal (cron), the console handler's lines are capped like the rest of the output.
    capped = None if fmt == "json" or app.console.is_terminal else CappedLines(app)
    console: Callable[[str], None] | None = (lambda text: click.echo(text, err=True)) if fmt == "json" else capped
    # An applied run is a run of the checks job (or of its narrower command) in the run history.
    command = command_line("check", ("--only", only), ("--task", task and f"T{task_id}")) + " --apply"
    try:
        with recorded_run(app, check_job_name(only, task_id), command=command, enabled=applying) as run:
            try:
                result = run.result = run_check_job(app, apply=False if dry_run else (True if apply_ else None),
                                                    only=only, task=task_id, console=console)
            except SafetyCapExceeded as exc:
                result = run.result = getattr(exc, "result", None)
                if result is None:
                    raise
    finally:
        if capped is not None:
            capped.close()
    for failure in result.failures:
        click.echo(escape.one_line(f"clinicbot: check {getattr(failure, 'slug', '?')} failed: "
                                   f"{getattr(failure, 'error', failure)}"), err=True)
    if fmt == "json":
        click.echo(json.dumps(escape.scrub(result.to_json()), indent=2, default=json_default))
    else:
        render_result(app, result)
    if result.cap_error is not None:
        click.echo(f"clinicbot: error: {result.cap_error}", err=True)
    sys.exit(result.exit_code)


class CappedLines:
    """The console handler's lines when stdout is not a terminal: the first PLAIN_LIMIT, then a count."""

    def __init__(self, app: App, limit: int = PLAIN_LIMIT):
        self.app, self.limit, self.count = app, limit, 0

    def __call__(self, text: str) -> None:
        self.count += 1
        if self.count <= self.limit:
            _line(self.app, text)

    def close(self) -> None:
        if self.count > self.limit:
            _line(self.app, f"... and {self.count - self.limit} more console line(s) "
                            "(`clinicbot check --format json` lists every finding)")


def _cell(value: Any) -> "Text":
    """A table cell from text that may come from a task: clean, one line, never console markup."""
    from rich.text import Text

    return Text(escape.one_line(value))


def _line(app: App, text: str) -> None:
    """One plain line: cleaned of control characters, never markup nor :emoji: codes, never wrapped."""
    app.console.print(escape.one_line(text), markup=False, highlight=False, emoji=False, soft_wrap=True)


def _tally(counts: Counter[str]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _decision_kind(d: Any) -> str:
    """"act" or the decision's reason without its times ("repetition due", "fires once")."""
    return "act" if d.act else re.split(r";| at | until ", d.reason, maxsplit=1)[0].strip() or "no action"


def _decision_text(d: Any) -> str:
    return ("act: " + ", ".join(d.handlers) if d.act else d.reason) if d else ""


def render_result(app: App, result: Any) -> None:
    """On a terminal, tables; otherwise (cron) plain lines and a summary. Then the full texts to post.

    Task text is cleaned of control characters on the way.
    """
    if app.console.is_terminal:
        render_tables(app, result)
    else:
        render_plain(app, result)
    render_texts(app, result, limit=None if app.console.is_terminal else PLAIN_LIMIT)


def _header(app: App, result: Any) -> None:
    mode = "APPLY" if result.apply else "DRY RUN (nothing is posted; pass --apply to post)"
    _line(app, f"clinicbot check at {result.now.isoformat()} - {mode}")
    if result.recipients or result.on_duty_note:
        names = ", ".join(r.username for r in result.recipients) or "nobody"
        extra = f" ({result.on_duty_note})" if result.on_duty_note else ""
        _line(app, f"on duty: {names}{extra}")


def render_plain(app: App, result: Any, limit: int = PLAIN_LIMIT) -> None:
    """For cron mail: counts, then at most ``limit`` findings (those acted on first) and actions, one per line."""
    _header(app, result)
    decisions = {d.finding.key: d for d in result.decisions}
    if not result.findings:
        _line(app, "no findings")
    else:
        _line(app, f"{len(result.findings)} finding(s): {_tally(Counter(f.slug for f in result.findings))}")
        _line(app, f"decisions: {_tally(Counter(_decision_kind(d) for d in result.decisions))}")
        # Those acted on first (stable: the checks' order within each group).
        shown = sorted(result.findings, key=lambda f: not (decisions.get(f.key) and decisions[f.key].act))[:limit]
        for f in shown:
            task = f"T{f.task_id}" if f.task_id is not None else "-"
            _line(app, f"{f.slug} {task} [{f.severity}] {_decision_text(decisions.get(f.key))}: {f.summary}")
        if len(result.findings) > len(shown):
            _line(app, f"... and {len(result.findings) - len(shown)} more finding(s) "
                       "(`clinicbot check --format json` lists them all)")
    if result.cleared:
        keys = [r.key for r in result.cleared]
        more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
        _line(app, f"cleared (condition gone): {', '.join(keys[:limit])}{more}")
    for res in result.resolutions[:limit]:
        _line(app, f"earlier {res.intent.handler} on {res.intent.task or '-'}: {res.outcome} ({res.detail})")
    if len(result.resolutions) > limit:
        _line(app, f"... and {len(result.resolutions) - limit} more earlier write(s) resolved")
    if result.actions:
        _line(app, f"{len(result.actions)} action(s): "
                   f"{_tally(Counter(f'{a.handler} {a.status}' for a in result.actions))}")
        # Every action but the console's (its lines are printed by the handler itself), failures first.
        listed = sorted((a for a in result.actions if a.handler != "console"), key=lambda a: a.status != "failed")
        for a in listed[:limit]:
            _line(app, f"{a.handler} -> {a.target or '-'}: {a.status}"
                       + (f" ({a.error or a.reason})" if a.error or a.reason else ""))
        if len(listed) > limit:
            _line(app, f"... and {len(listed) - limit} more action(s)")


def render_tables(app: App, result: Any) -> None:
    """On a terminal: the findings and the actions as tables."""
    from rich.table import Table

    out = app.console
    mode = "APPLY" if result.apply else "DRY RUN (nothing is posted; pass --apply to post)"
    out.print(f"clinicbot check at {result.now.isoformat()} - {mode}", markup=False, highlight=False)
    if result.recipients or result.on_duty_note:
        names = ", ".join(r.username for r in result.recipients) or "nobody"
        extra = f" ({result.on_duty_note})" if result.on_duty_note else ""
        out.print(escape.one_line(f"on duty: {names}{extra}"), markup=False, highlight=False)
    if not result.findings:
        out.print("no findings", markup=False)
    else:
        table = Table(title=f"{len(result.findings)} finding(s)", title_justify="left")
        for col in ("check", "task", "severity", "decision", "summary"):
            table.add_column(col, overflow="fold")
        decisions = {d.finding.key: d for d in result.decisions}
        for f in result.findings:
            decision = _decision_text(decisions.get(f.key))
            table.add_row(_cell(f.slug), f"T{f.task_id}" if f.task_id is not None else "-", _cell(f.severity),
                          _cell(decision), _cell(f.summary))
        out.print(table, markup=False, highlight=False)
    if result.cleared:
        out.print(escape.one_line("cleared (condition gone): " + ", ".join(r.key for r in result.cleared)),
                  markup=False, highlight=False)
    for res in result.resolutions:
        out.print(escape.one_line(f"earlier {res.intent.handler} on {res.intent.task or '-'}: {res.outcome} "
                                  f"({res.detail})"), markup=False, highlight=False)
    if result.actions:
        table = Table(title=f"{len(result.actions)} action(s)", title_justify="left")
        for col in ("handler", "where", "status", "detail"):
            table.add_column(col, overflow="fold")
        for a in result.actions:
            table.add_row(_cell(a.handler), _cell(a.target or "-"), _cell(a.status), _cell(a.error or a.reason or ""))
        out.print(table, markup=False, highlight=False)


def render_texts(app: App, result: Any, limit: int | None = None) -> None:
    """Exactly what would be (or was) posted where: the full texts, never interpreted as markup.

    Usually few (more planned writes than max_writes_per_run abort the run before any write); a
    plan over that cap is shown in full on a terminal, its first ``limit`` texts otherwise."""
    out = app.console
    texts = [a for a in result.actions if a.status in ("planned", "posted") and a.handler != "console"]
    if limit is not None and len(texts) > limit:
        _line(app, f"the first {limit} of {len(texts)} texts (`clinicbot check --format json` has them all):")
        texts = texts[:limit]
    for a in texts:
        verb = "would post" if a.status == "planned" else "posted"
        head = f"--- {verb}: {a.handler} -> {a.target or '-'}"
        if a.subject:
            head += f" (subject: {a.subject})"
        out.print(escape.one_line(head), markup=False, highlight=False)
        out.print(escape.clean(a.text.rstrip("\n"), lines=True), markup=False, highlight=False, soft_wrap=True)


@click.command("ledger")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True, help="Records to show.")
@click.option("--snooze", metavar="SLUG|T123", default=None, help="Skip a check or a task until --until.")
@click.option("--until", metavar="DATE", default=None, help="End of the snooze (ISO date or date-time; UTC if no offset).")
@click.option("--reason", default="", help="Why it is snoozed (shown in the skipped actions).")
@click.option("--unsnooze", metavar="SLUG|T123", default=None, help="End a snooze now.")
@click.option("--handled", metavar="KEY", default=None, help="Mark a finding handled (e.g. untriaged:T123).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def ledger(app: App, limit: int, snooze: str | None, until: str | None, reason: str, unsnooze: str | None,
           handled: str | None, fmt: str) -> None:
    """Show what fired and what was done; snooze a check or a task; mark a finding handled."""
    from clinicbot.state.ledger import Ledger, iso, normalise_target

    config = app.config()
    now = app.now()
    if snooze and not until:
        raise ConfigError(None, "--until", "--snooze needs --until DATE")
    if until and not snooze:
        raise ConfigError(None, "--snooze", "--until only makes sense with --snooze SLUG|T123")
    writing = bool(snooze or handled or unsnooze)
    end = None
    if snooze:
        end = parse_now(until or "", "--until")
        if end <= now:
            raise ConfigError(None, "--until", f"{until} is not in the future")
    if writing:
        # Everything is checked against a read-only copy first: a bad argument writes nothing.
        with Ledger.open(config.state_dir, readonly=True) as copy:
            check_ledger_args(config, copy, now, snooze=snooze, unsnooze=unsnooze, handled=handled)
    with Ledger.open(config.state_dir, readonly=not writing) as book:
        if snooze:
            assert end is not None
            s = book.snooze(snooze, end, now, reason)
            click.echo(f"snoozed {s.target} until {iso(s.until)}")
        if unsnooze:
            target = normalise_target(unsnooze)
            book.snooze(target, now, now, "ended by hand")
            click.echo(f"snooze of {target} ended")
        if handled:
            rec = book.mark_handled(handled, now)
            click.echo(f"{rec.key} marked handled (episode {rec.episode}, handled {rec.times_handled} time(s))")
        records = book.records(limit=limit)
        snoozes = book.snoozes(now)
        pending = [i for i in book.intents(limit=200) if i.get("status") == "pending"]
    if fmt == "json":
        data = {
            "records": [{"key": r.key, "check_slug": r.check_slug, "task": r.task if r.task_id is not None else None,
                         "episode": r.episode, "created_at": r.created_at, "last_seen_at": r.last_seen_at,
                         "handled_at": r.handled_at, "times_handled": r.times_handled, "cleared_at": r.cleared_at,
                         "open": r.is_open, "outcomes": r.outcomes} for r in records],
            "snoozes": [{"target": s.target, "until": s.until, "reason": s.reason} for s in snoozes],
            "pending_intents": pending,
        }
        click.echo(json.dumps(escape.scrub(data), indent=2, default=json_default))
        return
    if writing and not records:
        return
    from rich.table import Table

    table = Table(title=f"ledger: {len(records)} most recent record(s)", title_justify="left")
    table.add_column("key", overflow="fold")
    for col in ("ep", "first seen", "handled", "times", "state"):
        table.add_column(col, no_wrap=True)
    table.add_column("last outcomes", min_width=16)
    for r in records:
        # The outcomes of the latest handling (they share its time): "comment posted, chat failed".
        last_at = r.outcomes[-1]["at"] if r.outcomes else None
        outcome = ", ".join(f"{o['handler']} {o['status']}" for o in r.outcomes if o["at"] == last_at)
        table.add_row(_cell(r.key), str(r.episode), _short(r.created_at), _short(r.handled_at), str(r.times_handled),
                      "open" if r.is_open else f"cleared {_short(r.cleared_at)}", _cell(outcome))
    app.console.print(table, markup=False, highlight=False)
    for s in snoozes:
        app.console.print(escape.one_line(f"snoozed: {s.target} until {iso(s.until)}"
                                          + (f" ({s.reason})" if s.reason else "")), markup=False, highlight=False)
    for i in pending:
        app.console.print(f"unconfirmed write: {i['handler']} on {i.get('task') or '-'} at {i['at']} "
                          "(checked on the next run before anything is posted again)", markup=False, highlight=False)


_TASK = re.compile(r"^[Tt]\d+$")


def check_ledger_args(config: Any, book: Any, now: datetime, *, snooze: str | None, unsnooze: str | None,
                      handled: str | None) -> None:
    """Refuse what the ledger cannot know, without asking the server.

    "Known" means: a check slug of this config (built-in, plugin or custom); a task written as a
    monogram ``T123`` (whether the task exists is not asked: snoozing a task that is not on the
    boards yet is allowed); for ``--handled``, the key of a record in the ledger or a key shaped
    as findings' keys are, ``<check slug>:<T123 or ->[:<subject>]``; for ``--unsnooze``, a
    target that is snoozed now.
    """
    from clinicbot.checks import load_checks_and_settings

    checks, _ = load_checks_and_settings(config.section("checks"), error=config.error)
    slugs = sorted(c.slug for c in checks)
    if snooze is not None:
        target = snooze.strip()
        if not (_TASK.match(target) or target in slugs):
            raise ConfigError(None, "--snooze", f"{escape.one_line(snooze)!r} is neither a check ({', '.join(slugs)}) "
                              "nor a task monogram such as T123")
    if unsnooze is not None:
        from clinicbot.state.ledger import normalise_target

        target = normalise_target(unsnooze)
        snoozed = sorted(s.target for s in book.snoozes(now))
        if target not in snoozed:
            raise ConfigError(None, "--unsnooze", f"{escape.one_line(unsnooze)!r} is not snoozed "
                              f"(snoozed now: {', '.join(snoozed) or 'nothing'})")
    if handled is not None and book.open_record(handled) is None:
        slug, _, rest = handled.partition(":")
        target = rest.split(":", 1)[0]
        if slug not in slugs or not (_TASK.match(target) or target == "-"):
            raise ConfigError(None, "--handled", f"unknown key {escape.one_line(handled)!r}: no such record in the "
                              "ledger, and not a finding key <check>:<T123 or ->[:<subject>] of a known check "
                              "(see `clinicbot ledger` or `clinicbot check --format json`)")


def _short(at: datetime | None) -> str:
    return at.strftime("%m-%d %H:%M") if at else ""  # UTC; the JSON output has full ISO times
