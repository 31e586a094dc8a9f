"""Start-up (issue 12, round 3): which heavy modules a warm job imports under cron (stdout not a
terminal), pinned by module name in a fresh process against the sandbox; never timed."""

from __future__ import annotations

import pytest

from test_startup_jobs import cli_run, fresh, loaded, warm  # noqa: F401  (warm: the module's sandbox fixture)

HEAVY = ("rich", "apscheduler", "icalendar", "clinicbot.scheduler", "clinicbot.jobs.schedule")


@pytest.mark.parametrize("job", ["sync", "check", "digest", "agenda", "metrics"])
def test_a_warm_job_off_a_terminal_imports_no_rich_scheduler_or_calendar(warm, job):  # noqa: F811
    proc, modules = fresh(cli_run(warm, job))
    assert "Traceback" not in proc.stderr and "EXIT=2" not in proc.stderr, proc.stderr
    assert proc.stdout.strip(), proc.stderr  # it printed its report or lines, without rich
    assert loaded(modules, HEAVY) == []


@pytest.mark.parametrize("job,expected", [("sync", False), ("check", False), ("digest", True), ("agenda", True),
                                          ("metrics", True)])
def test_only_a_job_that_renders_a_template_imports_jinja2(warm, job, expected):  # noqa: F811
    _, modules = fresh(cli_run(warm, job))
    assert bool(loaded(modules, ("jinja2",))) is expected


WHO_IMPORTS = """
import sys, threading
class Who:
    def find_spec(self, name, path=None, target=None):
        if name == "jinja2":
            print("JINJA2-BY=" + threading.current_thread().name, file=sys.stderr)
        return None
sys.meta_path.insert(0, Who())
"""


def test_a_report_imports_jinja2_ahead_while_it_waits_for_the_server(warm):  # noqa: F811
    proc, modules = fresh(WHO_IMPORTS + cli_run(warm, "digest"))
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "JINJA2-BY=import-ahead" in proc.stderr.splitlines(), proc.stderr
    assert proc.stdout.strip() and "jinja2" in modules
