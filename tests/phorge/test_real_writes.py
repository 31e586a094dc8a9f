"""The new writes against the real Phorge (issue 14 points 3, 4, 5), each on boards of its own:
a column move and an untag applied once and never twice, the duty TODO task created once, assigned
and subscribed, its checklist updated in place as findings clear and appear, closed at handoff.

What happened is read back from the server (maniphest.search, transaction.search), never from
clinicbot's output alone.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from .realserver import BOARD_ROLES, PhorgeServer, inspect_rendered, run_clinicbot, seed

pytestmark = pytest.mark.phorge

ROLES = dict(BOARD_ROLES[seed.CPT])


def check(config: Path, *args: str, now: Any) -> dict[str, Any]:
    proc = run_clinicbot(config, "check", "--format", "json", *args, now=now)
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


def task_row(phorge: PhorgeServer, phid: str) -> dict[str, Any]:
    [row] = phorge.call("maniphest.search", constraints={"phids": [phid]},
                        attachments={"columns": True, "projects": True, "subscribers": True})["data"]
    return row


def bot_edits(phorge: PhorgeServer, task: str) -> list[dict[str, Any]]:
    return [x for x in phorge.bot_comment_transactions(task) if x["type"] is not None]


def test_column_move_to_the_review_board_applied_once_and_never_twice(phorge: PhorgeServer, make_phorge_config):
    old, new = phorge.new_board("Old internal"), phorge.new_board("External reviews")
    waiting = phorge.scratch_task("Review: a patch from another team", column="Waiting for Review", age_days=5,
                                  board=old)
    other = phorge.scratch_task("Not a review", column="Doing", age_days=5, board=old)
    config = make_phorge_config("moves", boards=[{"project": old.name, "columns": ROLES},
                                                 {"project": new.name, "columns": ROLES}],
                                extra={"checks": {"review-migration": {"from_board": old.name, "to_board": new.name,
                                                                       "handlers": ["move"]}}})
    dry = check(config, "--only", "review-migration", now=phorge.now)
    [finding] = dry["findings"]
    assert finding["task"] == waiting["monogram"] and finding["facts"]["to_column"] == "Waiting for Review"
    [action] = dry["actions"]
    assert action["status"] == "planned" and bot_edits(phorge, waiting["monogram"]) == []

    first = check(config, "--only", "review-migration", "--apply", now=phorge.now)
    assert [a["status"] for a in first["actions"]] == ["posted"]
    row = task_row(phorge, waiting["phid"])
    assert new.phid in row["attachments"]["projects"]["projectPHIDs"]
    [col] = row["attachments"]["columns"]["boards"][new.phid]["columns"]
    assert col["phid"] == new.columns["Waiting for Review"]
    edits = bot_edits(phorge, waiting["monogram"])
    assert {x["type"] for x in edits} >= {"core:columns"} and edits

    second = check(config, "--only", "review-migration", "--apply", now=phorge.now)
    assert second["findings"] == [] and second["actions"] == []
    assert len(bot_edits(phorge, waiting["monogram"])) == len(edits)  # never twice
    assert bot_edits(phorge, other["monogram"]) == []


def test_untag_applied_once_and_never_twice(phorge: PhorgeServer, make_phorge_config):
    board = phorge.new_board("Untag")
    dusty = phorge.scratch_task("Nobody has touched this for a long time", column="Ready", age_days=400, board=board)
    fresh = phorge.scratch_task("Worked on last week", column="Ready", age_days=400, board=board,
                                events=[(7, "alice", "comment", "still on it")])
    settings = {"untag-candidate": {"days": 365}}
    config = make_phorge_config("untag", boards=[{"project": board.name, "columns": ROLES}], extra={"checks": settings})
    listed = check(config, "--only", "untag-candidate", "--apply", now=phorge.now)
    assert [f["task"] for f in listed["findings"]] == [dusty["monogram"]]
    assert {a["handler"] for a in listed["actions"]} == {"console"}  # untag is off by default
    assert board.phid in task_row(phorge, dusty["phid"])["attachments"]["projects"]["projectPHIDs"]

    settings["untag-candidate"].update(handlers=["untag"], repetition_seconds=60)
    config = make_phorge_config("untag-on", boards=[{"project": board.name, "columns": ROLES}],
                                extra={"checks": settings})
    first = check(config, "--only", "untag-candidate", "--apply", now=phorge.now)
    assert [(a["handler"], a["task"], a["status"]) for a in first["actions"]] == \
        [("untag", dusty["monogram"], "posted")]
    assert board.phid not in task_row(phorge, dusty["phid"])["attachments"]["projects"]["projectPHIDs"]
    assert board.phid in task_row(phorge, fresh["phid"])["attachments"]["projects"]["projectPHIDs"]
    edits = bot_edits(phorge, dusty["monogram"])
    assert [x["type"] for x in edits] == ["projects"]
    second = check(config, "--only", "untag-candidate", "--apply", now=phorge.now + timedelta(minutes=5))
    # Nothing written again. (The untagged task may linger in the sync cache, so the finding can come back;
    # the outbox then reads the task from the server and skips the edit as already done.)
    assert all(a["status"] == "skipped" and a["reason"] == "already so on the server" for a in second["actions"])
    assert len(bot_edits(phorge, dusty["monogram"])) == 1


def _rotation_with_a_handoff(phorge: PhorgeServer, config: Path) -> Any:
    """alice and bob on duty until the next 09:00 UTC handoff after ``now``, carol and dave after it."""
    now = phorge.now
    first_day = (now - timedelta(days=1)).date() if now.hour < 9 else now.date()
    handoff = now.replace(hour=9, minute=0, second=0, microsecond=0) + timedelta(days=(first_day - now.date()).days + 1)
    path = config.parent / "rotation.yaml"
    rotation = yaml.safe_load(path.read_text())
    rotation["shifts"] = [
        {"from": (first_day - timedelta(days=20)).isoformat(), "to": first_day.isoformat(), "members": ["alice", "bob"]},
        {"from": (first_day + timedelta(days=1)).isoformat(), "to": (first_day + timedelta(days=30)).isoformat(),
         "members": ["carol", "dave"]},
    ]
    path.write_text(yaml.safe_dump(rotation, sort_keys=False))
    return handoff


def todo_actions(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in data["actions"] if a["handler"] == "todo"]


HOSTILE_TODO = "Another one waiting: ping @carol **bold** //italic// [[ http://evil.example | click ]] {F1} T1"


def test_todo_task_created_once_updated_in_place_and_closed_at_handoff(phorge: PhorgeServer, make_phorge_config):
    board = phorge.new_board("Todo")
    first = phorge.scratch_task("Waiting in the inbox", column="Inbox", age_days=3, board=board)
    config = make_phorge_config("todo", boards=[{"project": board.name, "columns": ROLES}],
                                extra={"checks": {"untriaged": {"handlers": ["todo"]}}})
    handoff = _rotation_with_a_handoff(phorge, config)
    now = phorge.now

    dry = check(config, "--only", "untriaged", now=now)  # a narrowed run leaves the checklist alone
    assert todo_actions(dry) == []
    dry = check(config, now=now)
    [planned] = todo_actions(dry)
    assert planned["status"] == "planned" and planned["target"] == "new task"

    created = check(config, "--apply", now=now)
    [action] = todo_actions(created)
    assert action["status"] == "posted"
    todo_task = action["task"]
    [row] = phorge.call("maniphest.search", constraints={"ids": [int(todo_task[1:])]},
                        attachments={"subscribers": True})["data"]
    assert row["fields"]["authorPHID"] == phorge.user_phid("clinicbot")
    assert row["fields"]["ownerPHID"] == phorge.user_phid("alice")
    assert {phorge.user_phid("alice"), phorge.user_phid("bob")} <= set(row["attachments"]["subscribers"]["subscriberPHIDs"])
    description = row["fields"]["description"]["raw"]
    assert f"[ ] [[ /{first['monogram']} | {first['monogram']} ]]" in description
    # the checklist's task links make no "Mentioned In" edge on the listed task
    assert phorge.edges([first["phid"]], ["mentioned-in"]) == []

    again = check(config, "--apply", now=now + timedelta(minutes=10))
    assert todo_actions(again) == []  # nothing changed: no call

    # a finding clears (triaged out of the inbox) and another appears: the same task, rewritten in place
    phorge.call("maniphest.edit", as_user="alice", objectIdentifier=first["phid"],
                transactions=[{"type": "column", "value": [board.columns["Ready"]]}])
    second = phorge.scratch_task(HOSTILE_TODO, column="Inbox", age_days=3, board=board)
    updated = check(config, "--apply", now=now + timedelta(minutes=20))
    assert [(a["task"], a["status"]) for a in todo_actions(updated)] == [(todo_task, "posted")]
    text = phorge.call("maniphest.search", constraints={"ids": [int(todo_task[1:])]})["data"][0]["fields"]["description"]["raw"]
    assert f"[x] [[ /{first['monogram']} | {first['monogram']} ]]" in text
    assert f"[ ] [[ /{second['monogram']} | {second['monogram']} ]]" in text
    # the checklist carries task text as data: as Phorge renders it, nothing pings, links, embeds or bolds
    rendered = inspect_rendered(phorge.render(text))
    links = {f"/{first['monogram']}", f"/{second['monogram']}"}
    assert rendered.problems(links=links, inert=("bold", "italic", "click")) == []
    assert phorge.edges([second["phid"]], ["mentioned-in"]) == []
    # handoff: closed with a summary; the next shift's task is a new one
    after = check(config, "--apply", now=handoff + timedelta(hours=1))
    ops = {a["text"].split()[0]: a for a in todo_actions(after)}
    assert set(ops) == {"close", "create"} and all(a["status"] == "posted" for a in ops.values())
    closed = phorge.call("maniphest.search", constraints={"ids": [int(todo_task[1:])]})["data"][0]["fields"]
    assert closed["status"]["value"] == "resolved"
    summary = phorge.comments(todo_task, author="clinicbot")
    assert len(summary) == 1 and summary[0].startswith("Shift over") and "1 still open" in summary[0]
    assert ops["create"]["task"] != todo_task
    final = check(config, "--apply", now=handoff + timedelta(hours=2))
    assert todo_actions(final) == []
    mine = [x for x in phorge.bot_comment_transactions(todo_task)]
    assert sum(1 for x in mine if x["type"] == "status") == 1
