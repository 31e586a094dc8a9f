"""Uncertain report writes end to end against the sandbox (issue 11 point 8).

Reports settle their earlier writes as the check runner does: an uncertain comment on a tracking
task is looked up on the task (by the bot's PHID, the intent's wall-clock time and its text hash)
before anything is posted again; it never blocks later reports to that task; a comment that is not
on the task stays pending only for the settle window. The server's clock is injected and is the
run's wall clock (as a real server's clock is the real one): nothing here depends on today's date.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from clinicbot.jobs.context import App
from clinicbot.cli import cli
from clinicbot.jobs.demo import write_sandbox_config
from clinicbot.state.ledger import Ledger
from clinicbot.sandbox import Sandbox, generate_scenario

WALL = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)  # the real time, for server and client alike
TASK = 1


class Wall:
    """One clock for the server and for clinicbot's wall clock; --now is separate."""

    def __init__(self) -> None:
        self.at = WALL

    def __call__(self) -> float:
        return self.at.timestamp()


class WallApp(App):
    wall: Wall

    def wall_clock(self) -> datetime:
        return self.wall.at


@pytest.fixture(scope="module")
def scenario():
    return generate_scenario(WALL)


@pytest.fixture
def wall():
    return Wall()


@pytest.fixture
def sandbox(scenario, wall):
    sb = Sandbox(scenario=scenario, clock=wall)
    sb.start()
    yield sb
    sb.stop()


@pytest.fixture
def config(sandbox, tmp_path) -> Path:
    path = write_sandbox_config(tmp_path / "clinicbot.yaml", sandbox.url, sandbox.token)
    data = yaml.safe_load(path.read_text())
    data["phabricator"].update({"timeout": 0.5, "retries": 0})  # settle window: 5 x 0.5 s
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def digest(config: Path, wall: Wall, *, now: datetime) -> tuple[int, str]:
    app = WallApp(env={})
    app.wall = wall
    result = CliRunner().invoke(cli, ["--config", str(config), "--now", now.isoformat(), "digest", "--to",
                                      f"task:T{TASK}", "--apply"], obj=app, catch_exceptions=False)
    return result.exit_code, result.stderr


def bot_comments(sb: Sandbox) -> list[str]:
    return [text for who, text, _ in sb.store.comments_on(TASK) if who == "clinicbot"]


def test_a_timed_out_report_is_reconciled_and_does_not_block_later_reports(sandbox, config, wall):
    sandbox.faults.add(method="maniphest.edit", kind="timeout", times=1, apply=True, delay=1.5)
    code, err = digest(config, wall, now=WALL)
    assert code == 1 and f"task:T{TASK}: failed" in err and "uncertain" in err
    assert len(bot_comments(sandbox)) == 1  # the server did apply it
    wall.at += timedelta(seconds=30)
    code, err = digest(config, wall, now=WALL)  # the same day's digest again: found on the task
    assert code == 0 and f"task:T{TASK}: skipped" in err and "already delivered" in err, err
    assert len(bot_comments(sandbox)) == 1
    wall.at += timedelta(days=1)
    code, err = digest(config, wall, now=WALL + timedelta(days=1))  # the next day's digest goes out
    assert code == 0 and f"task:T{TASK}: posted" in err, err
    assert len(bot_comments(sandbox)) == 2
    with Ledger.open(config.parent / "state", readonly=True) as book:
        assert book.pending_intents() == []


def test_report_intents_carry_the_wall_clock_not_now(sandbox, config, wall):
    ahead = WALL + timedelta(days=3)  # e.g. a rerun for a day given by hand
    sandbox.faults.add(method="maniphest.edit", kind="timeout", times=1, apply=True, delay=1.5)
    digest(config, wall, now=ahead)
    with Ledger.open(config.parent / "state", readonly=True) as book:
        [intent] = book.pending_intents()
    assert intent.at == ahead and intent.wall_at == WALL
    wall.at += timedelta(seconds=30)
    code, err = digest(config, wall, now=ahead)
    assert code == 0 and "already delivered" in err, err
    assert len(bot_comments(sandbox)) == 1


def test_an_unapplied_report_waits_for_the_settle_window_then_posts_once(sandbox, config, wall):
    sandbox.faults.add(method="maniphest.edit", kind="timeout", times=1, apply=False, delay=1.0)
    code, err = digest(config, wall, now=WALL)
    assert code == 1 and bot_comments(sandbox) == []
    wall.at += timedelta(seconds=1)  # an immediate rerun: inside the window, nothing is posted
    code, err = digest(config, wall, now=WALL)
    assert f"task:T{TASK}: skipped" in err and "unconfirmed" in err, err
    assert bot_comments(sandbox) == []
    wall.at += timedelta(seconds=5)  # past 5 x 0.5 s: not on the task, so it was never posted
    code, err = digest(config, wall, now=WALL)
    assert code == 0 and f"task:T{TASK}: posted" in err, err
    assert len(bot_comments(sandbox)) == 1
