"""Scenarios: deterministic generation, save/load round trips, the situations the checks need."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from clinicbot.sandbox import Sandbox, Store, generate_scenario, load_scenario

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)
NOW_EPOCH = int(NOW.timestamp())
DAY = 86400
TEAM = {"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "mona"}
BOTS = {"clinicbot", "phab-automation"}


@pytest.fixture(scope="module")
def scenario():
    return generate_scenario(NOW, size=300)


@pytest.fixture(scope="module")
def store(scenario) -> Store:
    return scenario.build_store()


def who(store: Store, x) -> str:
    return store.username(x.author)


def column_entered(store: Store, task_id: int, board: str) -> int:
    """When the task last moved into its current column on ``board``."""
    board_phid = store.project(board).phid
    for x in reversed(store.task(task_id).xactions):
        if x.type == "core:columns" and any(m["boardPHID"] == board_phid for m in x.new):
            return x.date
    raise AssertionError(f"T{task_id} never moved on {board}")


def test_same_arguments_same_bytes(tmp_path, scenario):
    again = generate_scenario(NOW, size=300, seed=1)
    a, b = scenario.save(tmp_path / "a.yaml"), again.save(tmp_path / "b.yaml")
    assert a.read_bytes() == b.read_bytes()
    other = generate_scenario(NOW, size=300, seed=2).save(tmp_path / "c.yaml")
    assert other.read_bytes() != a.read_bytes()
    # Round trips, YAML and JSON.
    assert load_scenario(a).save(tmp_path / "d.yaml").read_bytes() == a.read_bytes()
    j = scenario.save(tmp_path / "a.json")
    assert load_scenario(j).save(tmp_path / "b.json").read_bytes() == j.read_bytes()
    assert load_scenario(j).to_data() == load_scenario(a).to_data()


def test_a_loaded_scenario_serves_the_same_answers(tmp_path, scenario):
    path = scenario.save(tmp_path / "s.json")
    answers = []
    for sc in (scenario, load_scenario(path)):
        with Sandbox(scenario=sc) as sb:
            body = sb.answer("transaction.search", [("params", json.dumps(
                {"__conduit__": {"token": sb.token}, "objectIdentifier": "T7"}))])
            answers.append(json.loads(body)["result"])
    assert answers[0] == answers[1] and answers[0]["data"]


def test_team_boards_and_people(scenario, store):
    assert {u["username"] for u in scenario.users} >= TEAM | BOTS | {"pete", "admin", "victor"}
    assert 12 <= len(scenario.users) <= 20
    assert {p.slug for p in store.projects.values()} >= {"core_platform_team", "clinic_duty_team",
                                                          "cpt_external_code_reviews", "infrastructure_releases"}
    assert store.user("heidi").availability == "away" and store.user("heidi").away_until > NOW_EPOCH
    assert store.user("victor").disabled and store.user("clinicbot").bot and store.user("phab-automation").bot
    cpt = store.project("Core Platform Team")
    assert {store.username(m) for m in cpt.members} >= TEAM
    assert [c.name for c in store.board_columns(store.project("Clinic Duty Team").phid)] == [
        "Inbox", "Ready", "Doing", "Waiting for Review", "Done"]
    assert [c.name for c in store.board_columns(store.project("CPT External Code Reviews").phid)] == [
        "Review Needed", "In Progress", "Review Completed", "Discussing"]
    assert store.column("cpt", "Icebox (archived)").hidden
    assert {d.slug for d in store.documents.values()} == {"/", "core_platform_team/"}


def test_dates_span_four_months_and_ids_follow_time(scenario, store):
    created = [store.task(i).date_created for i in sorted(store.tasks)]
    assert created == sorted(created)
    assert NOW_EPOCH - 125 * DAY < min(created) and max(created) < NOW_EPOCH
    dates = [x.date for x in store.xactions if x.object.startswith("PHID-TASK-")]
    assert dates == sorted(dates) and max(dates) <= NOW_EPOCH
    resolved = Counter((NOW_EPOCH - t.date_closed) // (30 * DAY) for t in store.tasks.values()
                       if t.status == "resolved")
    assert all(resolved[month] >= 5 for month in range(4)), resolved
    assert {t.status for t in store.tasks.values()} >= {"open", "stalled", "resolved", "declined", "invalid",
                                                        "duplicate"}
    assert sum(len(t.projects) > 1 and len(t.columns) > 1 for t in store.tasks.values()) >= 3  # two boards


def test_histories_explain_the_final_state(store):
    for task in store.tasks.values():
        columns, owner, status, priority, points, title = {}, None, "open", 90, None, None
        for x in task.xactions:
            if x.type == "core:columns":
                columns.update({m["boardPHID"]: m["columnPHID"] for m in x.new})
            elif x.type == "reassign":
                owner = x.new
            elif x.type == "status":
                status = x.new
            elif x.type == "priority":
                priority = x.new
            elif x.type == "points":
                points = x.new
            elif x.type == "title":
                title = x.new
        assert (columns, owner, status, priority, points, title) == (
            task.columns, task.owner, task.status, task.priority, task.points, task.title), task.id
        own = [x.date for x in task.xactions if x.type not in ("core:edge", "unblock")]
        assert task.date_modified == max(own) and task.date_created == task.xactions[0].date


def test_unbreak_now_cases(scenario, store):
    facts = scenario.facts["tasks"]
    ubn = [t for t in store.tasks.values() if t.priority == 100 and t.status == "open"]
    assert len(ubn) >= 3
    unanswered = store.task(facts["ubn_unanswered"])
    assert unanswered.owner is None and NOW_EPOCH - unanswered.date_created > DAY
    assert not [x for x in unanswered.xactions if who(store, x) in TEAM]
    unowned = store.task(facts["ubn_unowned"])
    assert unowned.priority == 100 and unowned.owner is None
    assert [x for x in unowned.xactions if x.comment and who(store, x) in TEAM]
    answered = store.task(facts["ubn_answered"])
    first = next(x for x in answered.xactions if x.comment and who(store, x) in TEAM)
    assert first.date - answered.date_created < 3600 and answered.owner is not None


def test_triage_cases(scenario, store):
    facts = scenario.facts["tasks"]
    assert len(facts["untriaged_old"]) >= 3
    for task_id in facts["untriaged_old"] + facts["untriaged_fresh"]:
        t = store.task(task_id)
        assert store.column_of(task_id, "cpt") == "Inbox" and t.priority == 90 and t.owner is None
    assert all(NOW_EPOCH - store.task(i).date_created > 2 * DAY for i in facts["untriaged_old"])
    assert all(NOW_EPOCH - store.task(i).date_created < DAY for i in facts["untriaged_fresh"])
    for task_id in facts["triage_meeting_old"]:
        assert store.column_of(task_id, "cpt") == "Triage Meeting Inbox"
        assert NOW_EPOCH - column_entered(store, task_id, "cpt") > 7 * DAY
    assert NOW_EPOCH - column_entered(store, facts["tmi_recent"], "cpt") < 7 * DAY
    for task_id in facts["needs_triage_old"]:
        assert store.task(task_id).priority == 90 and NOW_EPOCH - store.task(task_id).date_created > 7 * DAY
    assert store.task(facts["escaping_title"]).title == "@alice {F1} <script>alert(1)</script> <!channel> **bold**"


def test_review_and_staleness_cases(scenario, store):
    facts = scenario.facts["tasks"]
    for task_id in facts["review_stale"]:
        t = store.task(task_id)
        assert store.column_of(task_id, "CPT External Code Reviews") == "Review Needed"
        assert NOW_EPOCH - t.date_created > 7 * DAY
        assert not [x for x in t.xactions if who(store, x) in TEAM]
    for task_id in facts["waiting_for_review_stale"]:
        assert store.column_of(task_id, "cpt") == "Waiting for Review"
        assert NOW_EPOCH - column_entered(store, task_id, "cpt") > 7 * DAY
    bob = store.user("bob").phid
    assert len([t for t in store.tasks.values() if t.owner == bob and t.status in ("open", "stalled")]) > 5
    untouched = store.task(facts["claimed_untouched"])
    assert untouched.owner == bob and NOW_EPOCH - untouched.xactions[-1].date > 14 * DAY
    for task_id in facts["stale_with_bot_activity"]:
        t = store.task(task_id)
        assert store.column_of(task_id, "cpt") in ("Doing", "Blocked Externally")
        human = [x.date for x in t.xactions if who(store, x) not in BOTS]
        bots = [x.date for x in t.xactions if who(store, x) in BOTS]
        assert NOW_EPOCH - max(human) > 14 * DAY and NOW_EPOCH - max(bots) < 3 * DAY
        assert t.date_modified == max(bots)
    away = store.task(facts["stale_owner_away"])
    assert store.username(away.owner) == "heidi" and store.column_of(away.id, "cpt") == "Doing"
    assert store.username(store.task(facts["disabled_owner"]).owner) == "victor"
    assert store.column_of(facts["icebox"], "cpt") == "Icebox (archived)"


def test_small_sizes_keep_the_most_important_cases():
    small = generate_scenario(NOW, size=40)
    assert len(small.tasks) == 40 and "ubn_unanswered" in small.facts["tasks"]
    assert generate_scenario(NOW, size=0).tasks == []


@pytest.mark.slow
def test_hundred_thousand_tasks(tmp_path):
    # Counts only: how long generating and paging take is measured by bench/timed_checks.py.
    big = generate_scenario(NOW, size=100_000)
    assert len(big.tasks) == 100_000
    with Sandbox(scenario=big) as sb:
        for _ in range(3):
            body = json.loads(sb.answer("maniphest.search", [("params", json.dumps(
                {"__conduit__": {"token": sb.token}, "constraints": {"statuses": ["open"]}, "limit": 100}))]))
        page = body["result"]
        nxt = json.loads(sb.answer("maniphest.search", [("params", json.dumps(
            {"__conduit__": {"token": sb.token}, "constraints": {"statuses": ["open"]}, "limit": 100,
             "after": page["cursor"]["after"]}))]))["result"]
        assert len(nxt["data"]) == 100 and nxt["data"][0]["id"] < page["data"][-1]["id"]


def test_command_line_serves_until_interrupted(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "clinicbot.sandbox", "--port", "0", "--size", "30", "--now",
                             NOW.isoformat(), "--token", "api-" + "q" * 28, "--save", str(tmp_path / "s.yaml")],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline()
        url = line.split("serving Conduit at ")[1].split("api/")[0]
        body = requests.post(f"{url}api/user.whoami", data={"params": json.dumps(
            {"__conduit__": {"token": "api-" + "q" * 28}})}, timeout=5).json()
        assert body["result"]["userName"] == "clinicbot"
        assert load_scenario(Path(tmp_path / "s.yaml")).facts["tasks"]
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
