"""`clinicbot check` end to end against the sandbox (loopback): dry run, apply, never twice, faults, crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from clinicbot.jobs.context import App
from clinicbot.state.lookups import PEOPLE_MINUTES
from clinicbot.checks import BUILTIN_SLUGS
from clinicbot.cli import cli
from clinicbot.jobs.demo import DEMO_CHECKS, write_sandbox_config
from clinicbot.errors import EXIT_CAP, EXIT_CONFIG
from clinicbot.state.ledger import Ledger, StateLock
from clinicbot.sandbox import Sandbox, generate_scenario

from test_actions import HOSTILE, live_mentions, smtp_server, webhook  # noqa: F401 (fixtures)

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)
DAY = 86400
REPO = Path(__file__).resolve().parents[1]

ROTATION = """\
timezone: UTC
handoff: "09:00"
on_duty: {min: 1, max: 3}
members:
  - {username: carol, name: Carol Chen, email: carol@example.com, chat: "@carol"}
  - {username: dave, name: Dave Davis, email: dave@example.com}
  - {username: frank, name: Frank Fischer}
manager: {username: erin, name: Erin Evans, email: erin@example.com}
shifts:
  - {from: 2026-11-01, to: 2027-01-31, members: [carol, dave]}
  - {from: 2026-11-24, to: 2027-01-31, members: [frank]}
"""


class Clock:
    """The sandbox's clock follows the run's --now, as a real server's clock follows the real one."""

    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> float:
        return self.at.timestamp()


@pytest.fixture(scope="module")
def scenario():
    return generate_scenario(NOW)


@pytest.fixture
def clock():
    return Clock(NOW)


@pytest.fixture
def sandbox(scenario, clock):
    sb = Sandbox(scenario=scenario, clock=clock)
    sb.start()
    yield sb
    sb.stop()


def make_config(tmp_path: Path, sb: Sandbox, *, repetition: int | None = DAY, cap: int = 500,
                timeout: float | None = None, commenting: tuple[str, ...] = BUILTIN_SLUGS) -> Path:
    """A sandbox config whose ``commenting`` checks comment (the others only print)."""
    path = write_sandbox_config(tmp_path / "clinicbot.yaml", sb.url, sb.token)
    (tmp_path / "rotation.yaml").write_text(ROTATION)
    data = yaml.safe_load(path.read_text())
    data["rotation"] = "rotation.yaml"
    data["max_writes_per_run"] = cap
    data["checks"] = {slug: {"handlers": ["comment"] if slug in commenting else ["console"],
                             "repetition_seconds": repetition, **DEMO_CHECKS.get(slug, {})} for slug in BUILTIN_SLUGS}
    if timeout is not None:
        data["phabricator"]["timeout"] = timeout
        data["phabricator"]["retries"] = 0
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class LaterApp(App):
    """An App whose wall clock runs ``ahead`` of the real one (a rerun some time later)."""

    ahead: timedelta = timedelta(0)

    def wall_clock(self) -> datetime:
        return super().wall_clock() + self.ahead


def run(config: Path, *args: str, now: datetime = NOW, env: dict[str, str] | None = None,
        later: timedelta = timedelta(0)) -> tuple[int, str, str]:
    app = LaterApp(env=dict(env or {}))
    app.ahead = later
    result = CliRunner().invoke(cli, ["--config", str(config), "--now", now.isoformat(), *args], obj=app)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def run_json(config: Path, *args: str, **kw: Any) -> tuple[int, dict[str, Any]]:
    code, out, err = run(config, "check", "--format", "json", *args, **kw)
    return code, json.loads(out)


def bot_comments(sb: Sandbox, task: str) -> list[str]:
    return [text for who, text, _ in sb.store.comments_on(int(task.lstrip("T"))) if who == "clinicbot"]


def first_untriaged_task(config: Path) -> str:
    _, data = run_json(config, "--only", "untriaged")
    return data["findings"][0]["task"]


# ---------------------------------------------------------------------------------------------


def test_dry_run_lists_every_builtin_check_and_writes_nothing(sandbox, tmp_path):
    config = make_config(tmp_path, sandbox)
    code, data = run_json(config)
    assert code == 1
    assert {f["slug"] for f in data["findings"]} == set(BUILTIN_SLUGS)
    for f in data["findings"]:
        assert {"slug", "task", "severity", "summary", "facts"} <= set(f)
    planned = [a for a in data["actions"] if a["status"] == "planned"]
    assert planned and all(a["handler"] == "comment" for a in planned)
    assert all(a["text"].startswith("@carol, @dave: ") for a in planned)  # who is on duty at NOW
    assert data["failures"] == []
    assert sandbox.stats.requests["maniphest.edit"] == 0
    assert not (tmp_path / "state" / "ledger.json").exists()  # a dry run saves nothing either
    # the table says what would be posted where
    code, out, _ = run(config, "check", "--only", "unbreak-now")
    assert code == 1 and "DRY RUN" in out and "--- would post: comment -> T" in out


def test_apply_posts_once_then_nothing_then_again_after_the_repetition(sandbox, tmp_path, clock):
    # Two checks comment (every sandbox call costs ~40 ms; the dry run above covers all nine).
    config = make_config(tmp_path, sandbox, commenting=("unbreak-now", "untriaged"))
    code, first = run_json(config, "--apply")
    assert code == 1
    posted = [a for a in first["actions"] if a["status"] == "posted" and a["handler"] == "comment"]
    assert posted and sandbox.stats.requests["maniphest.edit"] == len(posted)
    for a in posted[:5]:
        [text] = bot_comments(sandbox, a["task"])
        assert text == a["text"]

    # right after: nothing new to say
    code, second = run_json(config, "--apply")
    assert [a for a in second["actions"] if a["status"] in ("posted", "planned")] == []  # console lines too
    assert sandbox.stats.requests["maniphest.edit"] == len(posted)
    assert all(d["reason"].startswith("repetition due at") or d["reason"] == "notice already told"
               for d in second["decisions"])

    # a day later: the same conditions are reminded about, once
    later = NOW + timedelta(seconds=DAY + 60)
    clock.at = later
    code, third = run_json(config, "--apply", now=later)
    reminded = {d["key"] for d in third["decisions"] if d["reason"] == "repetition 1"}
    first_keys = {d["key"] for d in first["decisions"]}
    assert reminded and reminded <= first_keys
    again = [a for a in third["actions"] if a["status"] == "posted" and a["handler"] == "comment"]
    assert again and any("reminder 1" in a["text"] for a in again)
    task = again[0]["task"]
    assert len(bot_comments(sandbox, task)) == 2
    assert sandbox.stats.requests["maniphest.edit"] == len(posted) + len(again)


def test_fire_once_checks_never_repeat_and_cleared_conditions_start_a_new_episode(sandbox, tmp_path, clock):
    config = make_config(tmp_path, sandbox, repetition=None)
    _, data = run_json(config, "--only", "untriaged")
    finding = data["findings"][0]
    task, board = finding["task"], finding["facts"]["board"]
    key = f"untriaged:{task}"
    run(config, "check", "--apply", "--only", "untriaged", "--task", task)

    later = NOW + timedelta(days=3)
    clock.at = later
    _, data = run_json(config, "--apply", "--only", "untriaged", "--task", task, now=later)
    assert data["decisions"][0]["reason"].startswith("fires once")
    assert len(bot_comments(sandbox, task)) == 1

    # triaged: out of the inbox -> the condition is gone and its record is closed
    def move(column: str, at: datetime) -> None:
        phid = sandbox.store.column(board, column).phid
        sandbox.store.edit(int(task[1:]), "carol", [{"type": "column", "value": [phid]}], at=int(at.timestamp()))

    move("Ready", later)
    _, data = run_json(config, "--apply", "--only", "untriaged", "--task", task, now=later)
    assert data["findings"] == [] and data["cleared"] == [key]

    # back in the inbox and waiting again: a new episode, handled afresh
    move(finding["facts"]["column"], later)
    much_later = later + timedelta(days=4)
    clock.at = much_later
    _, data = run_json(config, "--apply", "--only", "untriaged", "--task", task, now=much_later)
    assert data["decisions"][0]["episode"] == 2 and data["decisions"][0]["reason"] == "new"
    assert len(bot_comments(sandbox, task)) == 2
    with Ledger.open(tmp_path / "state", readonly=True) as book:
        assert [(r.episode, r.is_open) for r in book.records(key=key)] == [(2, True), (1, False)]


def test_cap_aborts_before_any_write(sandbox, tmp_path):
    config = make_config(tmp_path, sandbox, cap=3)
    code, out, err = run(config, "check", "--apply")
    assert code == EXIT_CAP
    assert "max_writes_per_run is 3" in err and "wants" in err
    assert sandbox.stats.requests["maniphest.edit"] == 0
    assert "would post" in out  # the plan is still shown


def test_snoozed_task_is_skipped_with_a_reason(sandbox, tmp_path):
    config = make_config(tmp_path, sandbox)
    task = first_untriaged_task(config)
    code, out, _ = run(config, "ledger", "--snooze", task, "--until", "2026-12-01", "--reason", "upstream")
    assert code == 0 and f"snoozed {task}" in out
    _, data = run_json(config, "--apply", "--only", "untriaged", "--task", task)
    [action] = data["actions"]
    assert action["status"] == "skipped" and "snoozed until 2026-12-01" in action["reason"]
    assert "upstream" in action["reason"]
    assert bot_comments(sandbox, task) == []


def test_ledger_command_lists_and_marks_handled(sandbox, tmp_path):
    config = make_config(tmp_path, sandbox, repetition=None)
    task = first_untriaged_task(config)
    code, out, _ = run(config, "ledger", "--handled", f"untriaged:{task}")
    assert code == 0 and "marked handled" in out
    _, data = run_json(config, "--apply", "--only", "untriaged", "--task", task)
    assert data["actions"] == [] and data["decisions"][0]["reason"].startswith("fires once")
    code, out, _ = run(config, "ledger", "--format", "json")
    records = json.loads(out)["records"]
    assert records[0]["key"] == f"untriaged:{task}" and records[0]["outcomes"][0]["handler"] == "manual"


def test_second_instance_cannot_post_while_the_lock_is_held(sandbox, tmp_path):
    config = make_config(tmp_path, sandbox)
    with StateLock(tmp_path / "state"):
        proc = subprocess.run([sys.executable, "-m", "clinicbot.cli", "--config", str(config), "--now",
                               NOW.isoformat(), "check", "--apply"], capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == EXIT_CONFIG
    assert f"locked by process {os.getpid()}" in proc.stderr
    assert sandbox.stats.requests["maniphest.edit"] == 0


# -- never twice: faults and crashes ---------------------------------------------------------------


def test_timeout_on_the_comment_then_rerun_gives_exactly_one_comment(sandbox, tmp_path):
    config = make_config(tmp_path, sandbox, timeout=0.5)
    task = first_untriaged_task(config)
    sandbox.faults.add(method="maniphest.edit", kind="timeout", times=1, apply=True, delay=1.5)
    code, data = run_json(config, "--apply", "--only", "untriaged", "--task", task)
    [action] = data["actions"]
    assert action["status"] == "failed" and "uncertain" in action["error"]
    assert len(bot_comments(sandbox, task)) == 1  # the server did apply it
    code, data = run_json(config, "--apply", "--only", "untriaged", "--task", task)
    assert [a["status"] for a in data["actions"]] == []
    assert len(bot_comments(sandbox, task)) == 1
    assert sandbox.stats.requests["maniphest.edit"] == 1
    assert sandbox.stats.requests["transaction.search"] >= 1  # it looked before deciding


def test_timeout_that_never_applied_is_posted_once_the_settle_window_passed(sandbox, tmp_path):
    config = make_config(tmp_path, sandbox, timeout=0.5)  # settle window: 5 x 0.5 s
    task = first_untriaged_task(config)
    sandbox.faults.add(method="maniphest.edit", kind="timeout", times=1, apply=False, delay=1.0)
    run_json(config, "--apply", "--only", "untriaged", "--task", task)
    assert bot_comments(sandbox, task) == []
    # An immediate rerun cannot tell "never applied" from "applied late": it waits.
    _, data = run_json(config, "--apply", "--only", "untriaged", "--task", task)
    assert [(a["status"], "unconfirmed" in a.get("reason", "")) for a in data["actions"]] == [("skipped", True)]
    assert bot_comments(sandbox, task) == []
    _, data = run_json(config, "--apply", "--only", "untriaged", "--task", task, later=timedelta(seconds=3))
    assert [a["status"] for a in data["actions"]] == ["posted"]
    assert len(bot_comments(sandbox, task)) == 1


def test_a_write_applied_after_the_timeout_and_an_immediate_rerun_give_one_comment(sandbox, tmp_path):
    # The server applies the edit 2 s after the client's 0.5 s timeout gave up (the campaign's
    # "applied 20 s late" at a smaller scale); the rerun comes at once, before it lands.
    config = make_config(tmp_path, sandbox, timeout=0.5)
    task = first_untriaged_task(config)
    answer = sandbox.answer
    late = {"left": 1}

    def apply_late(method: str, params: Any) -> Any:  # the server thread works on after we gave up
        if method == "maniphest.edit" and late["left"]:
            late["left"] -= 1
            time.sleep(2.0)
        return answer(method, params)

    sandbox.answer = apply_late  # type: ignore[method-assign]
    _, data = run_json(config, "--apply", "--only", "untriaged", "--task", task)
    assert [a["status"] for a in data["actions"]] == ["failed"]
    assert bot_comments(sandbox, task) == []  # not applied yet
    _, data = run_json(config, "--apply", "--only", "untriaged", "--task", task)
    assert [a["status"] for a in data["actions"]] == ["skipped"]
    deadline = time.monotonic() + 10
    while not bot_comments(sandbox, task) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(bot_comments(sandbox, task)) == 1  # the late write landed
    _, data = run_json(config, "--apply", "--only", "untriaged", "--task", task, later=timedelta(seconds=10))
    assert data["actions"] == []  # found on the task: settled, nothing posted again
    assert len(bot_comments(sandbox, task)) == 1


def test_killed_between_write_and_ledger_update_then_rerun_gives_exactly_one_comment(sandbox, tmp_path):
    config = make_config(tmp_path, sandbox)
    task = first_untriaged_task(config)
    # CLINICBOT_TEST_CRASH_AFTER_WRITE=1 (test-only) makes the process die like SIGKILL right after the write.
    proc = subprocess.run([sys.executable, "-m", "clinicbot.cli", "--config", str(config), "--now", NOW.isoformat(),
                           "check", "--apply", "--only", "untriaged", "--task", task], capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, PYTHONPATH=str(REPO), CLINICBOT_TEST_CRASH_AFTER_WRITE="1"))
    assert proc.returncode == 137, proc.stderr
    assert len(bot_comments(sandbox, task)) == 1
    with Ledger.open(tmp_path / "state", readonly=True) as book:
        [pending] = book.pending_intents()
        assert pending.task == task and pending.handler == "comment"
    code, data = run_json(config, "--apply", "--only", "untriaged", "--task", task)
    assert data["actions"] == []
    assert len(bot_comments(sandbox, task)) == 1
    with Ledger.open(tmp_path / "state", readonly=True) as book:
        assert book.pending_intents() == []
        rec = book.open_record(f"untriaged:{task}")
        assert rec is not None and rec.times_handled == 1 and rec.outcomes[0]["status"] == "posted"


def test_corrupt_ledger_stops_the_run_with_one_clear_line(sandbox, tmp_path):
    config = make_config(tmp_path, sandbox)
    task = first_untriaged_task(config)
    run(config, "check", "--apply", "--only", "untriaged", "--task", task)
    ledger = tmp_path / "state" / "ledger.json"
    ledger.write_bytes(ledger.read_bytes()[:-40])
    edits = sandbox.stats.requests["maniphest.edit"]
    code, out, err = run(config, "check", "--apply")
    assert code == EXIT_CONFIG
    assert err.count("\n") == 1 and str(ledger) in err and "ledger.json.bak" in err
    assert sandbox.stats.requests["maniphest.edit"] == edits


# -- the real senders, configured through delivery: ------------------------------------------------


def test_hostile_title_end_to_end_in_comment_chat_and_email(sandbox, tmp_path, webhook, smtp_server):
    url, hook = webhook
    port, mailbox = smtp_server
    config = make_config(tmp_path, sandbox, commenting=())
    _, data = run_json(config, "--only", "untriaged")
    task = data["findings"][0]["task"]
    sandbox.store.edit(int(task[1:]), "alice", [{"type": "title", "value": HOSTILE}])
    raw = yaml.safe_load(config.read_text())
    raw["checks"]["untriaged"]["handlers"] = ["comment", "chat", "email"]
    raw["delivery"] = {"chat": {"webhook_env": "TEST_CHAT_WEBHOOK", "timeout": 5},
                       "email": {"host": "127.0.0.1", "port": port, "starttls": False, "from": "clinicbot@example.org"}}
    config.write_text(yaml.safe_dump(raw, sort_keys=False))

    code, out, err = run(config, "check", "--apply", "--only", "untriaged", "--task", task,
                         env={"TEST_CHAT_WEBHOOK": url})
    assert code == 1, err

    [comment] = bot_comments(sandbox, task)
    assert live_mentions(comment) == {"carol", "dave"}  # the engineers on duty, nobody else
    [payload] = [r["body"] for r in hook.received]
    assert set(payload) == {"text"}
    text = payload["text"]
    assert text.startswith("@carol dave ")  # carol's chat handle from the rotation; dave has none
    assert "<!channel>" not in text and "<script>" not in text and live_mentions(text) == {"carol"}
    assert "&lt;!channel&gt;" in text and "{F1}" in text
    [mail] = mailbox.messages
    assert sorted(mail["to"]) == ["<carol@example.com>", "<dave@example.com>"]
    from email import message_from_bytes
    from email.policy import default as default_policy

    msg = message_from_bytes(mail["data"], policy=default_policy)
    assert live_mentions(str(msg["Subject"])) == set() and "{F1}" in str(msg["Subject"])
    body = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert live_mentions(body) == set() and live_mentions(html) == set()
    assert "<script>" not in html and "&lt;script&gt;" in html
    # a rerun right away sends nothing anywhere
    run(config, "check", "--apply", "--only", "untriaged", "--task", task, env={"TEST_CHAT_WEBHOOK": url})
    assert len(hook.received) == 1 and len(mailbox.messages) == 1 and len(bot_comments(sandbox, task)) == 1


def test_away_engineers_are_not_pinged_and_the_manager_covers_for_nobody(sandbox, tmp_path):
    config = make_config(tmp_path, sandbox, commenting=("unbreak-now",))
    sandbox.store.set_availability("carol", "away")
    _, data = run_json(config, "--only", "unbreak-now")
    texts = [a["text"] for a in data["actions"] if a["handler"] == "comment"]
    assert texts and all(t.startswith("@dave: ") and "@carol" not in t for t in texts)
    sandbox.store.set_availability("dave", "away")
    # Availability is kept PEOPLE_MINUTES (the jobs that run together ask for it once): a run
    # within them still sees dave available, the first run after them sees him away.
    _, data = run_json(config, "--only", "unbreak-now", later=timedelta(minutes=PEOPLE_MINUTES - 1))
    assert all(a["text"].startswith("@dave: ") for a in data["actions"] if a["handler"] == "comment")
    _, data = run_json(config, "--only", "unbreak-now", later=timedelta(minutes=PEOPLE_MINUTES + 1))
    texts = [a["text"] for a in data["actions"] if a["handler"] == "comment"]
    assert texts and all(t.startswith("@erin: ") and "everyone on duty is away" in t for t in texts)
    assert data["on_duty"] == ["erin"]


def test_custom_checks_by_dotted_path_and_a_failing_one_is_named(sandbox, tmp_path):
    path = make_config(tmp_path, sandbox, commenting=())
    data = yaml.safe_load(path.read_text())
    data["checks"]["old-open-task"] = {"path": "custom_checks_example:old_open_tasks"}
    data["checks"]["explode"] = {"path": "custom_checks_example:explode"}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    code, out, err = run(path, "check", "--format", "json")
    assert code == 1
    result = json.loads(out)
    slugs = {f["slug"] for f in result["findings"]}
    assert "old-open-task" in slugs and "untriaged" in slugs  # the others still ran
    assert [f["slug"] for f in result["failures"]] == ["explode"]
    assert "explode" in err and "the custom check broke" in err
