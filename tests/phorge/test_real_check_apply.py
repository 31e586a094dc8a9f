"""`clinicbot check --apply`, twice, against the real Phorge, on a board of this test's own.

What the posted comments did is read back from the server itself: the bot's transactions on each
task (`transaction.search`), the comment rendered by the real renderer (`remarkup.process`), the
subscribers (`maniphest.search`) and the mention edges (`edge.search`). The expected findings come
from the tasks this test creates and the rules of docs/checks.md, never from clinicbot's output.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from .realserver import PhorgeServer, inspect_rendered, run_clinicbot

pytestmark = pytest.mark.phorge

# {ref}: a decoy task on no board, so that a live reference would never touch a seeded task.
HOSTILE = ("Ping @carol and @dave: **bold** //italic// [[ http://evil.example | click ]] {F1} {{ref}} {ref} "
           "%%%literal%%% `tick \x1b[2J \x07 \u202eRTL\u202c end")
# Words only the hostile title holds: rendered bold/italic made of them means the title went live.
INERT = ("bold", "italic", "click", "literal")
ON_DUTY = ("alice", "bob")
# The board's name is task text too: comments quote it ("waited 3 days in <board>: Inbox").
BOARD_NAME = "Checks @erin **bold** //italic// {F1} {{ref}} {ref} %%%x%%% [[ http://evil.example | click ]] `q"

# (title, column, priority, author, owner, age in days) of the tasks on this test's board.
TASKS = {
    "hostile": (HOSTILE, "Inbox", "normal", "mallory", None, 3.0),
    "outage": ("Outage nobody has picked up", "Inbox", "unbreak", "mallory", None, 1.0),
    "stale": ("Stale work in progress", "Doing", "normal", "erin", "erin", 20.0),
    "fresh": ("Fresh and fine", "Inbox", "normal", "mallory", None, 0.5),
}
COMMENTED = ["untriaged", "unbreak-now", "stale-in-progress"]
# What each finding's section of the comment says (templates/checks/<slug>.remarkup.j2).
SECTION = {"untriaged": "without triage", "no-response": "without a response from the team",
           "no-owner": "nobody owns it", "stale-in-progress": "nothing has happened on this task"}


def expected_findings(tasks: dict[str, dict[str, Any]]) -> dict[str, set[str]]:
    """Task key -> finding keys, by docs/checks.md's default thresholds (no task here has any edit
    after its creation, so no response, no activity, and every clock starts at creation)."""
    out: dict[str, set[str]] = {}
    for key, (_, column, priority, _, owner, age) in TASKS.items():
        mono = tasks[key]["monogram"]
        found = set()
        if column == "Inbox" and age * 24 >= 48:
            found.add(f"untriaged:{mono}")
        if priority == "unbreak" and age * 24 >= 4:
            found.add(f"unbreak-now:{mono}:no-response")
            if owner is None:
                found.add(f"unbreak-now:{mono}:no-owner")
        if column == "Doing" and age >= 14:
            found.add(f"stale-in-progress:{mono}")
        out[key] = found
    return out


@pytest.fixture(scope="module")
def board(phorge: PhorgeServer):
    decoy = phorge.tracking_task("Decoy that hostile task text names")["monogram"]
    board = phorge.new_board(BOARD_NAME.replace("{ref}", decoy))
    tasks = {key: phorge.scratch_task(title.replace("{ref}", decoy), column=column, priority=priority,
                                      author=author, owner=owner, age_days=age, board=board)
             for key, (title, column, priority, author, owner, age) in TASKS.items()}
    return board, tasks, decoy


def test_check_apply_twice_posts_one_comment_per_task_mentioning_only_the_engineers_on_duty(
        phorge: PhorgeServer, make_phorge_config, board):
    board, tasks, decoy = board
    expected = expected_findings(tasks)
    assert sum(map(len, expected.values())) == 4 and not expected["fresh"]
    config = make_phorge_config("check-apply", boards=phorge.scratch_board_config(board), on_duty=ON_DUTY,
                                extra={"checks": {slug: {"handlers": ["comment"]} for slug in COMMENTED}})
    phids = [t["phid"] for t in tasks.values()]
    subscribers_before = phorge.subscribers(phids)
    since = int(time.time()) - 1

    first = run_clinicbot(config, "check", "--apply", "--format", "json", now=phorge.now)
    assert first.returncode == 1, first.stdout + first.stderr  # findings fired
    data = json.loads(first.stdout)
    assert sorted(f["key"] for f in data["findings"]) == sorted(set().union(*expected.values()))
    assert data["failures"] == []

    subscribers_after = phorge.subscribers(phids)
    first_run: dict[str, list[str]] = {}
    for key, task in tasks.items():
        mono = task["monogram"]
        mine = phorge.bot_comment_transactions(mono, since=since)
        first_run[key] = [x["phid"] for x in mine]
        # One comment per task with findings (its findings are sections of it), none elsewhere; besides
        # it only the subscription its @mentions make (of the engineers on duty): no mention edge, no
        # implicitly attached file (those show as other transaction types).
        assert [x["type"] for x in mine if x["type"] != "subscribers"] == (["comment"] if expected[key] else []), key
        for x in mine:
            if x["type"] == "subscribers":
                ops = x["fields"]["operations"]
                assert {o["operation"] for o in ops} == {"add"}, (key, ops)
                assert {o["phid"] for o in ops} <= {phorge.user_phid(u) for u in ON_DUTY}, (key, ops)
        added = subscribers_after[task["phid"]] - subscribers_before[task["phid"]]
        assert added <= set(ON_DUTY), (key, added)  # the title's @carol/@dave are not subscribed
        assert phorge.edges([task["phid"]], ["mention"]) == [], key
        if not expected[key]:
            continue
        [comment] = [x for x in mine if x["type"] == "comment"]
        [text] = [c["content"]["raw"] for c in comment["comments"]]
        rendered = inspect_rendered(phorge.render(text))
        assert sorted(set(rendered.people)) == sorted(ON_DUTY), (key, rendered.people)
        assert rendered.problems(people=set(ON_DUTY), links={f"/{mono}"}, inert=INERT) == [], key
        # Every finding of the task is a section of its one comment (words of the built-in templates).
        for finding in expected[key]:
            assert SECTION[finding.split(":", 2)[-1] if finding.startswith("unbreak") else finding.split(":")[0]] \
                in text, (key, finding)
    # The board's hostile name is in the comments, as inert monospace text (quoted, not dropped).
    hostile_comment = phorge.comments(tasks["hostile"]["monogram"], author="clinicbot", since=since)
    mono_text = " ".join(inspect_rendered(phorge.render(hostile_comment[0])).monospace)
    for snippet in ("@erin", "**bold**", "{F1}", f"{{{decoy}}} {decoy}", "%%%x%%%", "[[ http://evil.example | click ]]"):
        assert snippet in mono_text, snippet
    for name in ("carol", "dave"):
        assert name not in subscribers_after[tasks["hostile"]["phid"]]

    # The second run finds the same and posts nothing.
    second = run_clinicbot(config, "check", "--apply", "--format", "json", now=phorge.now)
    assert second.returncode in (0, 1), second.stdout + second.stderr
    again = json.loads(second.stdout)
    assert not [a for a in again["actions"] if a["status"] == "posted"], again["actions"]
    for key, task in tasks.items():
        assert [x["phid"] for x in phorge.bot_comment_transactions(task["monogram"], since=since)] \
            == first_run[key], key  # not one transaction more
    assert phorge.subscribers(phids) == subscribers_after
