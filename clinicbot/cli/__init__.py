"""The command line: thin. Parse, build objects, call the core, turn ClinicbotError into an exit code.

Exit codes: 0 ok; 1 findings or a partial failure; 2 usage, config or state error;
3 Phabricator unreachable or answered an error; 4 the per-run write cap was hit.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, MutableMapping

import click

from clinicbot import __version__
from clinicbot.errors import EXIT_FAILURE, error_exit
from clinicbot.cli.logs import setup_logging

if TYPE_CHECKING:
    from clinicbot.jobs.context import App

log = logging.getLogger("clinicbot")

# The commands that live in modules of their own, imported only when one of them runs (start-up
# is most of a cron run: `clinicbot --help` and `import clinicbot.cli` load neither requests, rich,
# jinja2 nor icalendar). One row a command: its name (also the attribute of its module), the
# module under clinicbot.cli, and the first paragraph of its help, which `clinicbot --help` shows
# (tests/test_startup.py checks it against the command's own help).
_LAZY_TABLE = """
rotation  rotation  Who is on clinic duty now, the next changes, coverage gaps, notices and warnings.
check     checks    Run the checks and deal with what they find: comment, subscribe, chat, email (dry run unless applied).
ledger    checks    Show what fired and what was done; snooze a check or a task; mark a finding handled.
serve     ops       Run the jobs on the config's schedule (team timezone) until SIGTERM/SIGINT.
sync      ops       Update the local cache of tasks and histories: only what changed since the last sync.
status    ops       Each job's last run, outcome, duration, Conduit calls and next run; the cache; whether serve runs.
digest    reports   The daily triage digest for the engineers on duty.
agenda    reports   The weekly triage meeting agenda: every task in the Triage Meeting Inbox.
metrics   reports   Clinic duty metrics over a window; history kept in <state_dir>/metrics.json.
"""


def _lazy_commands(table: str) -> dict[str, tuple[str, str, str]]:
    """name -> (module, attribute, short help) from the table above."""
    out = {}
    for row in filter(None, (line.strip() for line in table.splitlines())):
        name, module, short = row.split(maxsplit=2)
        out[name] = (f"clinicbot.cli.{module}", name, short)
    return out


LAZY_COMMANDS: dict[str, tuple[str, str, str]] = _lazy_commands(_LAZY_TABLE)


class LazyCommands(MutableMapping[str, click.Command]):
    """The group's ``commands``: every name is listed at once; a module is imported when its command is
    looked up (``cli.commands[name]``, ``get_command``), never for listing or for the group's --help."""

    def __init__(self, lazy: dict[str, tuple[str, str, str]]):
        self.loaded: dict[str, click.Command] = {}
        self.lazy = lazy

    def __getitem__(self, name: str) -> click.Command:
        if name not in self.loaded:
            if name not in self.lazy:
                raise KeyError(name)
            module, attr, _ = self.lazy[name]
            self.loaded[name] = getattr(importlib.import_module(module), attr)
        return self.loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self.loaded[name] = command

    def __delitem__(self, name: str) -> None:
        self.loaded.pop(name, None)
        self.lazy = {k: v for k, v in self.lazy.items() if k != name}

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self.loaded, *self.lazy]))

    def __len__(self) -> int:
        return len(set(self.loaded) | set(self.lazy))

    def __contains__(self, name: object) -> bool:
        return name in self.loaded or name in self.lazy

    def short_help(self, name: str, limit: int) -> str:
        """What `clinicbot --help` shows for ``name``, without importing its module when it is not loaded yet."""
        if name in self.loaded:
            return self.loaded[name].get_short_help_str(limit)
        return click.utils.make_default_short_help(self.lazy[name][2], limit)


class ClinicbotGroup(click.Group):
    """Turns ClinicbotError into one clean line on stderr and the documented exit code.

    Its commands are :class:`LazyCommands`: a command's module is imported only when it runs.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        commands = LazyCommands(dict(LAZY_COMMANDS))
        for name, command in self.commands.items():
            commands[name] = command
        self.commands = commands

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # click's own version looks every command up (importing every module) for its short help.
        names = [n for n in self.list_commands(ctx) if not (n in self.commands.loaded and self.commands[n].hidden)]
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = [(n, self.commands.short_help(n, limit)) for n in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            # The one boundary: ClinicbotError, and the OSError/sqlite3.Error that slipped past
            # the code that expects them, become one line and an exit code (errors.error_exit).
            known = error_exit(exc)
            if known is None:
                raise
            click.echo(f"clinicbot: error: {known[0]}", err=True)
            ctx.exit(known[1])
        finally:
            context = sys.modules.get("clinicbot.jobs.context")
            if context is not None and isinstance(ctx.obj, context.App):
                ctx.obj.close()


@click.group(cls=ClinicbotGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Configuration file (default: $CLINICBOT_CONFIG, else ./clinicbot.yaml).")
@click.option("--now", "now", default=None, metavar="ISO8601",
              help="Reference time for every age, threshold and report (default: $CLINICBOT_NOW, else the current time).")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]), help="Log verbosity (logs go to stderr).")
@click.option("--log-json", is_flag=True, help="Log one JSON object per line.")
@click.version_option(__version__, prog_name="clinicbot")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, now: str | None, log_level: str, log_json: bool) -> None:
    """clinicbot: clinic duty for Phabricator/Phorge workboards.

    Every write to Phabricator and every outbound message is a dry run unless you pass --apply.
    """
    from clinicbot.jobs.context import App, parse_now

    if isinstance(ctx.obj, App):  # tests may pass a prepared App
        app = ctx.obj
    else:
        app = App(config_path=config_path)
        ctx.obj = app
    if config_path is not None:
        app.config_path = config_path
    now = now or app.env.get("CLINICBOT_NOW")
    if now:
        app.now_override = parse_now(now, "--now" if ctx.params.get("now") else "CLINICBOT_NOW")
    setup_logging(log_level, log_json)


def _echo_json(data: Any) -> None:
    from clinicbot.model import json_default  # not at start-up: `import clinicbot.cli` stays light

    click.echo(json.dumps(data, indent=2, sort_keys=False, default=json_default))


# --------------------------------------------------------------------------------------------
# doctor


@cli.command()
@click.pass_obj
def doctor(app: App) -> None:
    """Check the connection, the token, the server's methods, every board and column, and the rotation.

    Exit 0 only when everything is well.
    """
    from clinicbot.jobs.doctor import run_doctor

    report = run_doctor(app)
    for line in report.lines:
        app.console.print(line, markup=False, highlight=False)
    if not report.ok:
        app.console.print(f"doctor: {report.problems} problem(s) found", markup=False)
        sys.exit(report.exit_code)
    app.console.print("doctor: all good", markup=False)


# --------------------------------------------------------------------------------------------
# board


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def board(app: App, fmt: str) -> None:
    """Each watched board: columns with open-task counts, the oldest open task and its age."""
    from clinicbot.phab.boards import load_boards
    from clinicbot.reports.board import board_overview, render_overview

    data = load_boards(app.client(), app.config())
    overview = board_overview(data, app.now())
    if fmt == "json":
        _echo_json(overview)
    else:
        render_overview(overview, app.console)


# --------------------------------------------------------------------------------------------
# sandbox and demo


@cli.command()
@click.option("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: a free one).")
@click.option("--token", default=None, help="API token the sandbox accepts (default: a fixed test token).")
@click.option("--scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Scenario file (YAML/JSON) to serve instead of the generated one.")
@click.option("--size", type=click.IntRange(1, 100_000), default=300, show_default=True,
              help="Number of tasks in the generated scenario.")
@click.option("--latency", type=float, default=0.0, help="Seconds of latency added to every call.")
@click.option("--config-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the clinicbot config pointing at this sandbox (token in a 0600 file beside "
                   "it; default: a temporary directory, removed when the sandbox stops).")
@click.pass_obj
def sandbox(app: App, port: int, token: str | None, scenario: Path | None, size: int, latency: float,
            config_out: Path | None) -> None:
    """Serve the built-in sandbox Phabricator on 127.0.0.1 until interrupted.

    The token is never printed: it goes into a 0600 file beside the config this writes.
    """
    import tempfile

    from clinicbot.jobs.demo import start_sandbox, write_sandbox_config

    sb = start_sandbox(app.now(), port=port, token=token, scenario=scenario, size=size, latency=latency)
    tmp = None
    try:
        if config_out is None:
            tmp = tempfile.TemporaryDirectory(prefix="clinicbot-sandbox-")
            config_out = Path(tmp.name) / "clinicbot.yaml"
        write_sandbox_config(config_out, sb.url, sb.token)
        app.console.print(f"sandbox Phabricator serving at {sb.url}", markup=False)
        app.console.print(f"config {config_out} (the API token is in {config_out.with_suffix('.token')}, mode 0600)",
                          markup=False)
        app.console.print(f"try: clinicbot --config {config_out} doctor", markup=False)
        app.console.print("press Ctrl-C to stop", markup=False)
        sb.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sb.stop()
        if tmp is not None:
            tmp.cleanup()


@cli.command()
@click.option("--size", type=click.IntRange(1, 100_000), default=300, show_default=True,
              help="Number of tasks in the sandbox scenario.")
@click.option("--keep", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the demo's config and state in this directory instead of a temporary one.")
@click.pass_obj
def demo(app: App, size: int, keep: Path | None) -> None:
    """Start the sandbox in-process, point clinicbot at it and run the main job (dry run)."""
    from clinicbot.jobs.demo import run_demo

    code = run_demo(app, size=size, keep=keep)
    if code:
        sys.exit(code)


def main() -> None:
    try:
        cli.main(prog_name="clinicbot")
    except KeyboardInterrupt:
        click.echo("clinicbot: interrupted", err=True)
        sys.exit(EXIT_FAILURE)

