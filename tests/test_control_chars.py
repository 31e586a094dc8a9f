"""Control characters and bidi overrides in task text reach no output, end to end (sandbox).

Every task title in the sandbox is replaced by one carrying ESC sequences (clear screen, window
title, colours), BEL, NUL, DEL, C1 controls (NEL, CSI), bidi overrides and isolates, plus the
Remarkup forms that would mention, embed or make a mention edge. Then every command that shows
task text runs: ``board``, ``check`` (tables, the texts it would post, JSON), ``digest``/``agenda``/
``metrics`` in every format, and ``check --apply`` with comment, chat and email, and a digest
posted to a task. Nothing that leaves clinicbot (stdout, stderr, the posted comment, the chat
payload, the email) may contain one of those characters; the posted Remarkup must be inert.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from clinicbot.jobs.context import App
from clinicbot.checks import BUILTIN_SLUGS
from clinicbot.cli import cli
from clinicbot.jobs.demo import write_sandbox_config
from clinicbot.sandbox import Sandbox, generate_scenario
from tests.remarkup_scan import problems
from tests.test_actions import smtp_server, webhook  # noqa: F401 (fixtures)

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)
EVIL = ("Pwn T99 {T98} @alice **b** \x1b[2J\x1b]0;pwned\x07\x1b[31mred\x1b[0m \u202eexe.txt\u202c "
        "\u2066iso\u2069 \u202aemb\u202c nel\x85 csi\x9b31m bel\x07 nul\x00 del\x7f cr\r end")
FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
ROTATION = """\
timezone: UTC
handoff: "09:00"
on_duty: {min: 1, max: 3}
members:
  - {username: carol, name: Carol Chen, email: carol@example.com, chat: "@carol"}
  - {username: dave, name: Dave Davis, email: dave@example.com}
manager: {username: erin, name: Erin Evans, email: erin@example.com}
shifts:
  - {from: 2026-11-01, to: 2027-01-31, members: [carol, dave]}
"""


def forbidden(text: str) -> list[str]:
    return [f"U+{ord(c):04X}" for c in FORBIDDEN.findall(text)]


@pytest.fixture(scope="module")
def sandbox():
    sb = Sandbox(scenario=generate_scenario(NOW), clock=lambda: NOW.timestamp())
    sb.start()
    for task_id in list(sb.store.tasks):
        sb.store.edit(task_id, "alice", [{"type": "title", "value": f"{EVIL} #{task_id}"}])
    yield sb
    sb.stop()


@pytest.fixture
def config(sandbox, tmp_path) -> Path:
    path = write_sandbox_config(tmp_path / "clinicbot.yaml", sandbox.url, sandbox.token)
    (tmp_path / "rotation.yaml").write_text(ROTATION)
    data = yaml.safe_load(path.read_text())
    data["rotation"] = "rotation.yaml"
    data["checks"] = {slug: {"handlers": ["comment", "chat", "email"]} for slug in BUILTIN_SLUGS}
    data["max_writes_per_run"] = 1000
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run(config: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(config), "--now", NOW.isoformat(), *args],
                                obj=App(env=dict(env or {})))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_the_sandbox_keeps_the_hostile_title_verbatim(sandbox):
    # as a real Phorge does (maniphest.edit--comment-ansi-rtl-override.json): the defence is ours
    assert any("\x1b[2J" in t.title and "\u202e" in t.title for t in sandbox.store.tasks.values())


@pytest.mark.parametrize("args", [("board",), ("board", "--format", "json"), ("check",), ("check", "--format", "json"),
                                  *[(kind, "--format", fmt) for kind in ("digest", "agenda", "metrics")
                                    for fmt in ("term", "md", "remarkup", "html", "json")]])
def test_no_control_character_reaches_the_terminal_or_a_report(config, args):
    code, out, err = run(config, *args)
    assert code in (0, 1), err
    if args[0] != "metrics":  # metrics lists no task titles from these columns
        assert "pwned" in out + err  # the hostile text was shown ...
    assert forbidden(out) == [] and forbidden(err) == []  # ... without its control characters
    if args[-1] == "json":
        assert forbidden(json.dumps(json.loads(out), ensure_ascii=False)) == []  # decoded, too
    if args[-1] == "remarkup":
        assert problems(out) == []


def test_check_apply_posts_comments_chat_and_email_without_control_characters(sandbox, config, webhook, smtp_server):
    url, hook = webhook
    port, mailbox = smtp_server
    raw = yaml.safe_load(config.read_text())
    raw["delivery"] = {"chat": {"webhook_env": "TEST_CHAT_WEBHOOK", "timeout": 5},
                       "email": {"host": "127.0.0.1", "port": port, "starttls": False, "from": "clinicbot@example.org"}}
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    before = {t: len(sandbox.store.comments_on(t)) for t in sandbox.store.tasks}
    code, out, err = run(config, "check", "--apply", env={"TEST_CHAT_WEBHOOK": url})
    assert code == 1, err
    assert forbidden(out) == [] and forbidden(err) == []

    comments = [text for t in sandbox.store.tasks for who, text, _ in sandbox.store.comments_on(t)[before[t]:]
                if who == "clinicbot"]
    assert len(comments) >= 10  # the built-in comment templates quote columns, not titles: see
    for comment in comments:    # test_remarkup_outputs.py for every template with hostile text in every field
        assert forbidden(comment) == [] and problems(comment, allowed_mentions={"carol", "dave"}) == []
    [payload] = [r["body"] for r in hook.received]
    assert "pwned" in payload["text"] and forbidden(payload["text"]) == []
    [mail] = mailbox.messages
    msg = message_from_bytes(mail["data"], policy=default_policy)
    for part in (str(msg["Subject"]), msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()):
        assert forbidden(part.replace("\r\n", "\n")) == []  # CRLF is SMTP's line ending, not ours
    assert "pwned" in msg.get_body(("plain",)).get_content()


def test_a_digest_posted_to_a_task_touches_none_of_the_tasks_it_lists(sandbox, config):
    target = max(sandbox.store.tasks)
    before = {t.id: (t.date_modified, list(t.mentioned_in)) for t in sandbox.store.tasks.values()}
    code, out, err = run(config, "digest", "--to", f"task:T{target}", "--apply")
    assert code == 0, err
    [posted] = [text for who, text, _ in sandbox.store.comments_on(target) if who == "clinicbot"]
    listed = {int(n) for n in re.findall(r"\[\[ /T(\d+) \| T\d+ \]\]", posted)}
    assert listed and "pwned" in posted and forbidden(posted) == [] and problems(posted) == []
    assert sandbox.store.task(target).mentions == []  # no "mention" edge from the digest's task
    after = {t.id: (t.date_modified, list(t.mentioned_in)) for t in sandbox.store.tasks.values()}
    assert {i: after[i] for i in listed} == {i: before[i] for i in listed}  # not bumped, no "Mentioned In"
