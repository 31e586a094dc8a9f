"""`clinicbot check` under cron (stdout not a terminal): plain lines and a summary, never a table.

Before (issue 12): a rich table row (folded over several lines) per finding and per action, plus a
console line per finding: 1.7 MB and 20,040 lines at 10k tasks. The output must now be bounded
whatever the number of findings, keep its table on a terminal, and leave ``--format json`` alone.
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from typing import Any

import pytest
from click.testing import CliRunner
from rich.console import Console

import clinicbot.jobs.check as check_job
from clinicbot.checks.base import Finding
from clinicbot.cli import cli
from clinicbot.cli.checks import PLAIN_LIMIT
from clinicbot.delivery.outbox import Action
from clinicbot.jobs.check import CheckRunResult, Decision
from clinicbot.jobs.context import App

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
BOX = set("─│┃━┏┓┗┛┌┐└┘├┤┬┴┼╭╮╰╯═║")


def fake_result(n: int, console: Any) -> CheckRunResult:
    """n findings: two thirds acted on (console handler, one line each), the rest not due; 3 comments planned."""
    findings, decisions, actions = [], [], []
    for i in range(n):
        slug = "untriaged" if i % 2 else "stale-review"
        f = Finding(slug, f"PHID-TASK-{i}", 1000 + i, "high" if i % 5 == 0 else "normal",
                    f"T{1000 + i} has waited {i} days in Inbox")
        findings.append(f)
        act = i % 3 != 0
        decisions.append(Decision(f, None, act, ["console"] if act else [],
                                  "new" if act else "repetition due at 2026-11-21T10:00:00Z"))
        if act:
            actions.append(Action("console", f"T{f.task_id}", "posted", f"[{f.severity}] {f.slug}: {f.summary}",
                                  f"console:{f.key}", target="console"))
            console(actions[-1].text)
    for i in range(3):
        actions.append(Action("comment", f"T{1000 + i}", "planned", f"@carol: T{1000 + i} needs triage\nsecond line",
                              f"comment:T{1000 + i}:x", target=f"T{1000 + i}"))
    return CheckRunResult(True, NOW, findings, [], decisions=decisions, actions=actions)


def run_check(monkeypatch: pytest.MonkeyPatch, n: int, *, terminal: bool = False,
              args: tuple[str, ...] = ()) -> tuple[int, str]:
    def fake_run_check_job(app: Any, *, console: Any = None, **kwargs: Any) -> CheckRunResult:
        return fake_result(n, console or (lambda text: app.console.print(text, markup=False, highlight=False)))

    monkeypatch.setattr(check_job, "run_check_job", fake_run_check_job)
    if terminal:
        buf = io.StringIO()
        app = App(env={}, console=Console(file=buf, force_terminal=True, width=120, color_system=None))
        result = CliRunner().invoke(cli, ["check", *args], obj=app)
        return result.exit_code, buf.getvalue() + result.stdout
    # As cron runs it: stdout is a pipe, the console is rich's default (no width, no terminal).
    result = CliRunner().invoke(cli, ["check", *args], obj=App(env={}))
    return result.exit_code, result.stdout


@pytest.mark.parametrize("n", [10, 300, 3000])
def test_not_on_a_terminal_the_output_is_plain_lines_and_bounded(monkeypatch, n):
    code, out = run_check(monkeypatch, n)
    assert code == 1
    assert not BOX & set(out), "a table under cron"
    lines = out.splitlines()
    # header, 2 summary lines, <= PLAIN_LIMIT findings (+1 "more"), <= PLAIN_LIMIT console lines (+1),
    # the actions' summary and lines, the 3 texts to post (2 lines each + heads)
    assert len(lines) <= 2 * PLAIN_LIMIT + 20
    assert len(out.encode()) <= 200 * (2 * PLAIN_LIMIT + 20)
    assert f"{n} finding(s): " in out
    acted = sum(1 for i in range(n) if i % 3 != 0)
    assert f"decisions: act {acted}, repetition due {n - acted}" in out
    assert "--- would post: comment -> T1000" in out and "second line" in out
    if n > PLAIN_LIMIT:
        assert f"... and {n - PLAIN_LIMIT} more finding(s)" in out
        assert f"... and {acted - PLAIN_LIMIT} more console line(s)" in out


def test_the_output_does_not_grow_with_the_findings(monkeypatch):
    _, small = run_check(monkeypatch, 300)
    _, large = run_check(monkeypatch, 3000)
    # The same lines, only the numbers in them differ (before: ten times the bytes).
    assert len(large.splitlines()) == len(small.splitlines())
    assert len(large.encode()) < 1.1 * len(small.encode())


def test_few_findings_are_all_listed_one_per_line(monkeypatch):
    _, out = run_check(monkeypatch, 6)
    for i in range(6):
        assert sum(f" T{1000 + i} [" in line for line in out.splitlines()) == 1
    assert "more finding(s)" not in out and "more console line(s)" not in out
    assert "stale-review T1000 [high] repetition due at 2026-11-21T10:00:00Z: T1000 has waited 0 days" in out


def test_on_a_terminal_the_table_stays(monkeypatch):
    code, out = run_check(monkeypatch, 300, terminal=True)
    assert code == 1 and BOX & set(out)
    assert "300 finding(s)" in out
    assert sum("T1299" in line for line in out.splitlines()) >= 1  # every row, the last one too


def test_json_is_unchanged_and_complete(monkeypatch):
    code, out = run_check(monkeypatch, 3000, args=("--format", "json"))
    data = json.loads(out)
    assert code == 1 and len(data["findings"]) == 3000 and len(data["decisions"]) == 3000
    assert len([a for a in data["actions"] if a["handler"] == "console"]) == 2000
