"""Start-up (issue 12): `import clinicbot.cli` and `clinicbot --help` load no heavy library.

Start-up was most of every cron run (`clinicbot --help` 0.35 s against 0.02 s for bare Python):
importing the CLI imported requests, rich, icalendar and jinja2 through every command's module.
The group now imports a command's module only when that command runs. Counted here in modules
imported (a fresh interpreter each time), never in seconds: the bench times it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click

from clinicbot.cli import LAZY_COMMANDS, cli

HEAVY = ("requests", "urllib3", "rich", "icalendar", "jinja2", "yaml", "tinydb", "sqlite3", "zoneinfo")
EAGER = ("board", "demo", "doctor", "sandbox")  # defined in clinicbot/cli/__init__.py itself

REPORT = "import json, sys; print(json.dumps(sorted(sys.modules)), file=sys.stderr)"


def fresh(code: str) -> tuple[str, set[str]]:
    """Run ``code`` in a fresh interpreter; its stdout and the modules it had imported at exit."""
    env = {**os.environ, "COLUMNS": "80"}
    env.pop("CLINICBOT_CONFIG", None)
    proc = subprocess.run([sys.executable, "-c", f"{code}\n{REPORT}"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, set(json.loads(proc.stderr.strip().splitlines()[-1]))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


HELP = ("from clinicbot.cli import cli\n"
        "try:\n    cli.main(['--help'], prog_name='clinicbot')\nexcept SystemExit:\n    pass")


def test_importing_the_cli_imports_no_heavy_library():
    _, modules = fresh("import clinicbot.cli")
    assert heavy(modules) == []
    # none of the commands' own modules either (nor the jobs, the client, the config)
    assert sorted(m for m in modules if m.startswith("clinicbot.")) == ["clinicbot.cli", "clinicbot.cli.logs",
                                                                         "clinicbot.errors"]


def test_help_imports_no_heavy_library_and_lists_every_command():
    out, modules = fresh(HELP)
    assert heavy(modules) == []
    assert not any(m.startswith(("clinicbot.jobs", "clinicbot.cli.checks", "clinicbot.cli.ops",
                                 "clinicbot.cli.reports", "clinicbot.cli.rotation")) for m in modules)
    listed = [line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()]
    assert listed == sorted([*LAZY_COMMANDS, *EAGER])


def test_help_reads_the_same_as_with_every_command_loaded():
    lazy, _ = fresh(HELP)
    loaded, modules = fresh("from clinicbot.cli import cli\n"
                            "for name in list(cli.commands):\n    cli.commands[name]\n" + HELP.split("\n", 1)[1])
    assert "requests" in modules  # the second run really loaded the commands' modules
    assert lazy == loaded


def test_each_lazy_short_help_is_its_commands_first_paragraph():
    for name, (_, _, short) in LAZY_COMMANDS.items():
        command = cli.commands[name]
        assert command.name == name
        first = " ".join((command.help or "").split("\n\n")[0].split())
        assert short == first, name
        for limit in (30, 45, 60, 200):
            assert click.utils.make_default_short_help(short, limit) == command.get_short_help_str(limit)


def test_the_group_lists_and_finds_every_command():
    names = list(cli.commands)
    assert sorted(names) == sorted([*LAZY_COMMANDS, *EAGER])
    ctx = click.Context(cli)
    assert cli.list_commands(ctx) == sorted(names)
    for name in names:
        assert isinstance(cli.get_command(ctx, name), click.Command)
    assert cli.get_command(ctx, "no-such-command") is None


def test_a_command_still_runs_and_loads_what_it_needs():
    out, modules = fresh("from clinicbot.cli import cli\n"
                         "try:\n    cli.main(['ledger', '--help'], prog_name='clinicbot')\nexcept SystemExit:\n    pass")
    assert "Show what fired and what was done" in out
    assert "clinicbot.cli.checks" in modules
