"""The duty TODO task end to end against the sandbox (issue 14 point 5): created at the shift's first
finding, assigned and subscribed, its checklist updated in place, closed at handoff, never duplicated."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta
from typing import Any


from clinicbot.delivery.todo import Shift, merge_items
from clinicbot.checks.base import Finding
from clinicbot.sandbox import Sandbox
from clinicbot.state.ledger import Ledger
from test_runner_sandbox import NOW, REPO, clock, make_config, run_json, sandbox, scenario  # noqa: F401 (fixtures)
from test_writes_sandbox import configure

TODO = {"untriaged": {"handlers": ["todo"]}}
HANDOFF = datetime(2026, 11, 24, 9, 30, tzinfo=NOW.tzinfo)  # frank joins carol and dave at 09:00


def todo_tasks(sb: Sandbox) -> list[Any]:
    bot = sb.store.users_by_name["clinicbot"].phid
    return [t for t in sb.store.tasks.values() if t.author == bot and t.title.startswith("Clinic duty TODO")]


def todo_actions(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in data["actions"] if a["handler"] == "todo"]


def phid(sb: Sandbox, name: str) -> str:
    return sb.store.users_by_name[name].phid


def test_todo_task_created_once_assigned_updated_in_place_and_closed_at_handoff(sandbox, tmp_path, clock):
    config = configure(make_config(tmp_path, sandbox), TODO)
    _, dry = run_json(config)
    [planned] = todo_actions(dry)
    assert planned["status"] == "planned" and planned["target"] == "new task" and planned["text"].startswith("create ")
    assert sandbox.stats.requests["maniphest.edit"] == 0 and todo_tasks(sandbox) == []  # dry run by default

    _, data = run_json(config, "--apply")
    assert [a["status"] for a in todo_actions(data)] == ["posted"]
    [todo] = todo_tasks(sandbox)
    findings = [f for f in data["findings"] if f["slug"] == "untriaged"]
    assert todo.owner == phid(sandbox, "carol")
    assert {phid(sandbox, "carol"), phid(sandbox, "dave")} <= set(todo.subscribers)
    assert todo.description.count("[ ] ") == len(findings) and "[x]" not in todo.description
    assert f"[[ /{findings[0]['task']} | {findings[0]['task']} ]]" in todo.description
    assert "clinicbot-todo:" in todo.description and todo.projects == []

    # unchanged checklist: no call at all
    edits = sandbox.stats.requests["maniphest.edit"]
    _, data = run_json(config, "--apply")
    assert todo_actions(data) == [] and sandbox.stats.requests["maniphest.edit"] == edits

    # a finding clears: the same task's description ticks it, in place
    gone = findings[0]
    board = gone["facts"]["board"]
    ready = sandbox.store.column(board, "Ready").phid
    sandbox.store.edit(int(gone["task"][1:]), "carol", [{"type": "column", "value": [ready]}],
                       at=int(NOW.timestamp()) + 60)
    later = NOW + timedelta(hours=1)
    clock.at = later
    _, data = run_json(config, "--apply", now=later)
    [update] = todo_actions(data)
    assert update["status"] == "posted" and update["task"] == f"T{todo.id}"
    assert todo_tasks(sandbox) == [todo]
    assert f"[x] [[ /{gone['task']} | {gone['task']} ]]" in todo.description
    assert todo.description.count("[ ] ") == len(findings) - 1
    much_later = later + timedelta(hours=2)  # ages grew, nothing appeared or cleared: no call
    clock.at = much_later
    edits = sandbox.stats.requests["maniphest.edit"]
    _, data = run_json(config, "--apply", now=much_later)
    assert todo_actions(data) == [] and sandbox.stats.requests["maniphest.edit"] == edits

    # handoff: the old task is closed with a summary, the new shift gets its own
    clock.at = HANDOFF
    _, data = run_json(config, "--apply", now=HANDOFF)
    ops = sorted(a["text"].split()[0] for a in todo_actions(data))
    assert ops == ["close", "create"] and all(a["status"] == "posted" for a in todo_actions(data))
    assert todo.status == "resolved"
    [summary] = [text for who, text, _ in sandbox.store.comments_on(todo.id) if who == "clinicbot"]
    assert summary.startswith("Shift over") and f"{len(findings) - 1} still open" in summary
    [new] = [t for t in todo_tasks(sandbox) if t is not todo]
    assert phid(sandbox, "frank") in new.subscribers and "carol, dave, frank" in new.title
    _, data = run_json(config, "--apply", now=HANDOFF)
    assert todo_actions(data) == [] and len(todo_tasks(sandbox)) == 2


def test_an_uncertain_create_is_found_by_its_marker_and_not_repeated(sandbox, tmp_path):
    config = configure(make_config(tmp_path, sandbox, timeout=0.5), TODO)
    sandbox.faults.add(method="maniphest.edit", kind="timeout", times=1, apply=True, delay=1.5)
    _, data = run_json(config, "--apply")
    assert [(a["status"], "uncertain" in a["error"]) for a in todo_actions(data)] == [("failed", True)]
    assert len(todo_tasks(sandbox)) == 1  # the server did create it
    _, data = run_json(config, "--apply")
    assert todo_actions(data) == [] and len(todo_tasks(sandbox)) == 1
    with Ledger.open(tmp_path / "state", readonly=True) as book:
        [record] = book.open_todos()
        assert record.task_id == todo_tasks(sandbox)[0].id and book.pending_intents() == []


def test_a_create_that_never_happened_waits_for_the_settle_window_then_creates_once(sandbox, tmp_path):
    config = configure(make_config(tmp_path, sandbox, timeout=0.5), TODO)
    sandbox.faults.add(method="maniphest.edit", kind="timeout", times=1, apply=False, delay=1.0)
    run_json(config, "--apply")
    assert todo_tasks(sandbox) == []
    _, data = run_json(config, "--apply")  # too early to tell: it waits
    assert [(a["status"], "unconfirmed" in a["reason"]) for a in todo_actions(data)] == [("skipped", True)]
    _, data = run_json(config, "--apply", later=timedelta(seconds=3))
    assert [a["status"] for a in todo_actions(data)] == ["posted"] and len(todo_tasks(sandbox)) == 1


def test_killed_after_creating_the_todo_then_rerun_creates_no_second_one(sandbox, tmp_path):
    config = configure(make_config(tmp_path, sandbox), TODO)
    proc = subprocess.run([sys.executable, "-m", "clinicbot.cli", "--config", str(config), "--now", NOW.isoformat(),
                           "check", "--apply"], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(REPO), CLINICBOT_TEST_CRASH_AFTER_WRITE="1"))
    assert proc.returncode == 137, proc.stderr
    assert len(todo_tasks(sandbox)) == 1
    _, data = run_json(config, "--apply")
    assert todo_actions(data) == [] and len(todo_tasks(sandbox)) == 1


def test_todo_writes_count_against_the_cap(sandbox, tmp_path):
    config = configure(make_config(tmp_path, sandbox), TODO, max_writes_per_run=0)
    code, data = run_json(config, "--apply")
    assert code == 4 and todo_tasks(sandbox) == []


def test_checklist_items_keep_their_order_tick_when_cleared_and_untick_when_back():
    a, b = (Finding("untriaged", f"PHID-TASK-{i}", i, "warning", f"T{i} waits", {"title": f"Title {i}"})
            for i in (1, 2))
    items = merge_items([], [a, b])
    assert [(i["key"], i["open"], i["summary"]) for i in items] == [("untriaged:T1", True, "Title 1"),
                                                                    ("untriaged:T2", True, "Title 2")]
    items = merge_items(items, [b])
    assert [(i["key"], i["open"]) for i in items] == [("untriaged:T1", False), ("untriaged:T2", True)]
    items = merge_items(items, [a], ran=["other-check"])  # untriaged did not run: its items stay as they were
    assert [(i["key"], i["open"]) for i in items] == [("untriaged:T1", True), ("untriaged:T2", True)]
    assert Shift(NOW, None, ("alice", "bob")).marker == Shift(NOW, NOW, ("alice", "bob")).marker
    assert Shift(NOW, None, ("alice",)).marker != Shift(NOW, None, ("alice", "bob")).marker
