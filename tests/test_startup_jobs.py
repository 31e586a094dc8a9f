"""Start-up of a job (issue 12): what a cron run of each command imports, counted in modules, never timed.

A warm job is a fresh process of one or two Conduit calls, so its imports are most of its time:
loading the config imports no section's owner (validators registered by "module:function", run
for the sections the file gives), `sync` runs without APScheduler or the other jobs' modules, and
no job imports the scheduler, icalendar or (not on a terminal) rich. The bench times them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from clinicbot.jobs.demo import write_sandbox_config
from clinicbot.sandbox import Sandbox, generate_scenario

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)
REPORT = "import json, sys; print('MODULES=' + json.dumps(sorted(sys.modules)), file=sys.stderr)"
OWNERS = ("clinicbot.checks", "clinicbot.delivery", "clinicbot.jobs.schedule", "clinicbot.jobs.report_lists",
          "clinicbot.scheduler", "apscheduler", "jinja2", "requests", "rich", "icalendar")


def fresh(code: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``code`` in a fresh interpreter (stdout and stderr not a terminal, as under cron)."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("TERM", "COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE",
                                                                  "CLINICBOT_CONFIG", "CLINICBOT_NOW")}
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-c", f"{code}\n{REPORT}"], capture_output=True, text=True,
                          env=full_env, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("MODULES=")]
    assert lines, proc.stderr
    return proc, set(json.loads(lines[-1][len("MODULES="):]))


def loaded(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


def cli_run(config: Path, *args: str) -> str:
    argv = ["--config", str(config), "--now", NOW.isoformat(), *args]
    return ("import sys\nfrom clinicbot.cli import cli\n"
            f"try:\n    cli.main({argv!r}, prog_name='clinicbot')\nexcept SystemExit as exc:\n"
            "    print('EXIT=' + str(exc.code), file=sys.stderr)")


GOOD = {"phabricator": {"url": "https://phab.example.org", "token_env": "X_TOKEN"},
        "boards": [{"project": "Core Platform Team", "columns": {"inbox": "Inbox", "done": "Done"}}]}


def test_loading_a_config_without_sections_imports_no_section_owner(tmp_path):
    path = tmp_path / "clinicbot.yaml"
    path.write_text(yaml.safe_dump({**GOOD, "rotation": None}))
    proc, modules = fresh("import clinicbot.jobs\nfrom clinicbot.config import load_config\n"
                          f"config = load_config({str(path)!r})\n"
                          "import sys\nbefore = 'clinicbot.jobs.schedule' in sys.modules\n"
                          "schedule = config.typed['schedule']\n"
                          "print(before, type(schedule).__name__, 'clinicbot.jobs.schedule' in sys.modules)")
    assert proc.stdout.split() == ["False", "Schedule", "True"]  # an absent section: its defaults on first use
    _, modules = fresh("import clinicbot.jobs\nfrom clinicbot.config import load_config\n"
                       f"load_config({str(path)!r})")
    assert loaded(modules, OWNERS) == []


def test_a_given_section_is_validated_at_load_and_only_its_owner_imported(tmp_path):
    path = tmp_path / "clinicbot.yaml"
    path.write_text(yaml.safe_dump({**GOOD, "holidays": {"country": "DE", "subdivision": "BY"}}))
    proc, modules = fresh("import clinicbot.jobs\nfrom clinicbot.config import load_config\n"
                          f"config = load_config({str(path)!r})\nprint(sorted(config.typed.done))")
    assert proc.stdout.strip() == "['holidays']"
    assert "clinicbot.checks.hours" in modules
    assert loaded(modules, ("clinicbot.jobs.schedule", "clinicbot.delivery", "apscheduler", "requests")) == []
    path.write_text(yaml.safe_dump({**GOOD, "holidays": {"datez": []}}))
    proc, _ = fresh("import clinicbot.jobs\nfrom clinicbot.config import load_config\n"
                    f"try:\n    load_config({str(path)!r})\nexcept Exception as exc:\n    print(exc)")
    assert "holidays.datez" in proc.stdout and str(path) in proc.stdout


def test_register_section_takes_module_and_function_by_name(tmp_path):
    from clinicbot.config import SECTION_VALIDATORS, register_section, section_validator
    from clinicbot.jobs.sections import SECTION_OWNERS

    assert set(SECTION_OWNERS) == set(SECTION_VALIDATORS)
    for name in SECTION_OWNERS:
        assert callable(section_validator(name)), name
    with pytest.raises(ValueError):
        register_section("checks", "clinicbot.jobs.sections.checks_section")  # no ":"


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """A sandbox and a config whose cache a first sync filled (every job after it is warm)."""
    sb = Sandbox(scenario=generate_scenario(NOW, size=80))
    sb.start()
    path = write_sandbox_config(tmp_path_factory.mktemp("startup") / "clinicbot.yaml", sb.url, sb.token)
    proc, _ = fresh(cli_run(path, "sync"))
    assert "EXIT=0" in proc.stderr, proc.stderr
    yield path
    sb.stop()


def test_warm_sync_imports_neither_the_scheduler_nor_the_other_jobs(warm):
    proc, modules = fresh(cli_run(warm, "sync"))
    assert "sync incremental" in proc.stdout, proc.stdout + proc.stderr
    assert loaded(modules, ("apscheduler", "clinicbot.scheduler", "clinicbot.jobs.schedule", "clinicbot.jobs.check",
                            "clinicbot.jobs.reports", "clinicbot.checks", "clinicbot.reports", "jinja2",
                            "icalendar", "tinydb", "rich")) == []  # its one plain line: no rich at all
    assert "clinicbot.jobs.runner" in modules  # the run is still recorded by the job runner


@pytest.mark.parametrize("job", ["check", "digest", "agenda", "metrics"])
def test_a_warm_job_imports_no_scheduler_nor_icalendar(warm, job):
    proc, modules = fresh(cli_run(warm, job))
    assert "Traceback" not in proc.stderr, proc.stderr
    assert loaded(modules, ("apscheduler", "clinicbot.scheduler", "clinicbot.jobs.schedule", "icalendar")) == []


# -- templates: Jinja2 only when one renders, compiled once -------------------------------------

RENDER = ("import jinja2, sys\nfrom clinicbot.reports.templating import Templates\n"
          "compiled = []\nreal = jinja2.Environment.compile\n"
          "def counting(self, source, name=None, filename=None, *a, **k):\n"
          "    compiled.append(name)\n    return real(self, source, name, filename, *a, **k)\n"
          "jinja2.Environment.compile = counting\n"
          "t = Templates({tdir!r})\nout = t.render('hello.txt.j2', who='x')\n"
          "print(len(compiled), out.strip())")


def test_a_template_is_compiled_once_and_again_when_it_changes(tmp_path):
    tdir = tmp_path / "templates"
    tdir.mkdir()
    (tdir / "hello.txt.j2").write_text("hello {{ who }}")
    env = {"TMPDIR": str(tmp_path)}
    first, _ = fresh(RENDER.format(tdir=str(tdir)), env)
    second, _ = fresh(RENDER.format(tdir=str(tdir)), env)
    assert first.stdout.split() == ["1", "hello", "x"], first.stderr
    assert second.stdout.split() == ["0", "hello", "x"], second.stderr  # the bytecode cache
    assert list(tmp_path.glob("_jinja2-cache-*/__clinicbot_jinja2_*.cache"))
    (tdir / "hello.txt.j2").write_text("goodbye {{ who }}")
    third, _ = fresh(RENDER.format(tdir=str(tdir)), env)
    assert third.stdout.split() == ["1", "goodbye", "x"], third.stderr


def test_an_unusable_cache_directory_only_costs_a_compile(tmp_path):
    tdir = tmp_path / "templates"
    tdir.mkdir()
    (tdir / "hello.txt.j2").write_text("hello {{ who }}")
    (tmp_path / f"_jinja2-cache-{os.getuid()}").write_text("not a directory")
    for _ in range(2):
        proc, _ = fresh(RENDER.format(tdir=str(tdir)), {"TMPDIR": str(tmp_path)})
        assert proc.stdout.split() == ["1", "hello", "x"], proc.stderr


def test_check_imports_no_jinja2_when_nothing_is_rendered(warm):
    proc, modules = fresh(cli_run(warm, "check"))
    assert "Traceback" not in proc.stderr, proc.stderr
    assert loaded(modules, ("jinja2",)) == []


def test_a_delivery_section_and_the_logging_import_no_http_or_smtp_library(tmp_path):
    path = tmp_path / "clinicbot.yaml"
    path.write_text(yaml.safe_dump({**GOOD, "delivery": {"chat": {"webhook_env": "HOOK"},
                                                         "email": {"host": "smtp.example.org", "from": "b@x.org"}}}))
    proc, modules = fresh("import clinicbot.jobs\nfrom clinicbot.config import load_config\n"
                          "from clinicbot.cli.logs import setup_logging\nsetup_logging()\n"
                          f"config = load_config({str(path)!r})\nprint(sorted(config.typed.done))")
    assert proc.stdout.strip() == "['delivery']", proc.stderr
    assert "clinicbot.delivery.senders" in modules  # validated at load, by its owner
    assert loaded(modules, ("requests", "urllib3", "smtplib", "clinicbot.phab")) == []


def test_metrics_imports_no_check_when_no_exemption_names_a_project(warm):
    proc, modules = fresh(cli_run(warm, "metrics"))
    assert "Traceback" not in proc.stderr, proc.stderr
    assert loaded(modules, ("clinicbot.checks",)) == []
