"""Issue 14 points 1 and 2 against the real Phorge, on boards of this test's own: the Discussing
column (a task the team has not answered is flagged, one it has answered is listed) and the
internal board's unassigned tasks; with --apply each flagged task gets one comment, never two.

The expectations come from the tasks this test makes and docs/checks.md, not from clinicbot's output.
"""

from __future__ import annotations

import json
import time

import pytest

from .realserver import BOARD_ROLES, PhorgeServer, inspect_rendered, run_clinicbot, seed

pytestmark = pytest.mark.phorge

REVIEW_COLUMNS = ["Review Needed", "In Progress", "Review Completed", "Discussing"]
# key: (board, column at creation, author, owner, age in days, events (days ago, actor, kind, value))
TASKS = {
    "unanswered": ("review", "Review Needed", "mallory", None, 12.0,
                   [(10, "mallory", "move", "Discussing"), (5, "mallory", "comment", "Any advice on this?")]),
    "answered": ("review", "Review Needed", "mallory", None, 12.0,
                 [(10, "mallory", "move", "Discussing"), (3, "alice", "comment", "Use the batch API instead.")]),
    "answered-before": ("review", "Review Needed", "mallory", None, 12.0,
                        [(11, "alice", "comment", "Looks fine so far."), (10, "mallory", "move", "Discussing")]),
    "discussing-fresh": ("review", "Review Needed", "mallory", None, 3.0, [(2, "mallory", "move", "Discussing")]),
    "unowned-ready": ("internal", "Ready", "mallory", None, 3.0, []),
    "outsider-doing": ("internal", "Doing", "mallory", "mallory", 3.0, []),
    "owned-ready": ("internal", "Ready", "mallory", "bob", 3.0, []),
    "unowned-inbox": ("internal", "Inbox", "mallory", None, 3.0, []),
    "unowned-on-review-board": ("review", "In Progress", "mallory", None, 3.0, []),
}
EXPECTED = {
    "unanswered": {"discussing-unanswered"},
    "answered": {"discussing-answered"},
    "answered-before": {"discussing-unanswered"},  # the answer came before it entered Discussing
    "discussing-fresh": set(),  # 2 days < 7
    "unowned-ready": {"unassigned-on-internal-board"},
    "outsider-doing": {"unassigned-on-internal-board"},  # mallory is not on the team
    "owned-ready": set(),
    "unowned-inbox": set(),  # the inbox is not judged
    "unowned-on-review-board": set(),  # the review board is not internal
}
MINE = ("discussing-unanswered", "discussing-answered", "unassigned-on-internal-board")
COMMENTED = ("discussing-unanswered", "unassigned-on-internal-board")
SECTION = {"discussing-unanswered": "without an answer from the team",
           "unassigned-on-internal-board": "should be assigned to a team member"}


@pytest.fixture(scope="module")
def boards(phorge: PhorgeServer):
    made = {"review": phorge.new_board("Reviews", columns=REVIEW_COLUMNS), "internal": phorge.new_board("Kanban")}
    tasks = {}
    for key, (board, column, author, owner, age, events) in TASKS.items():
        tasks[key] = phorge.scratch_task(f"Issue 14: {key}", column=column, priority="normal", author=author,
                                         owner=owner, age_days=age, events=events, board=made[board])
    config_boards = [{"project": made["internal"].name, "columns": dict(BOARD_ROLES[seed.CPT])},
                     {"project": made["review"].name, "columns": dict(BOARD_ROLES[seed.ER])}]
    return made, tasks, config_boards


def _mine(data: dict) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in data["findings"]:
        if f["slug"] in MINE:
            out.setdefault(f["task"], set()).add(f["slug"])
    return out


def test_discussing_and_unassigned_findings_then_one_comment_each_never_two(phorge: PhorgeServer,
                                                                             make_phorge_config, boards):
    made, tasks, config_boards = boards
    config = make_phorge_config("issue14-checks", boards=config_boards, on_duty=("alice", "bob"),
                                extra={"checks": {slug: {"handlers": ["comment"]} for slug in COMMENTED}})
    expected = {tasks[k]["monogram"]: v for k, v in EXPECTED.items() if v}

    dry = run_clinicbot(config, "check", "--format", "json", now=phorge.now)
    assert dry.returncode == 1, dry.stdout + dry.stderr
    data = json.loads(dry.stdout)
    assert data["failures"] == [] and _mine(data) == expected
    by_key = {f["key"]: f for f in data["findings"]}
    answered = by_key[f"discussing-answered:{tasks['answered']['monogram']}"]
    assert answered["facts"]["answered_by"] == "alice" and answered["facts"]["column"] == "Discussing"
    assert answered["facts"]["board"] == made["review"].name and answered["severity"] == "info"
    outsider = by_key[f"unassigned-on-internal-board:{tasks['outsider-doing']['monogram']}"]
    assert (outsider["facts"]["reason"], outsider["facts"]["owner"], outsider["facts"]["role"]) == \
        ("owner-not-in-team", "mallory", "doing")
    # a dry run writes nothing
    since = int(time.time()) - 1
    assert all(phorge.bot_comment_transactions(t["monogram"], since=since) == [] for t in tasks.values())

    first = run_clinicbot(config, "check", "--apply", "--format", "json", now=phorge.now)
    assert first.returncode == 1, first.stdout + first.stderr
    assert _mine(json.loads(first.stdout)) == expected
    second = run_clinicbot(config, "check", "--apply", "--format", "json", now=phorge.now)
    assert second.returncode in (0, 1), second.stdout + second.stderr
    for key, task in tasks.items():
        comments = phorge.comments(task["monogram"], author="clinicbot", since=since)
        commented = EXPECTED[key] & set(COMMENTED)
        assert len(comments) == (1 if commented else 0), (key, comments)  # once, not again on the second run
        for slug in commented:
            assert SECTION[slug] in comments[0], (key, comments[0])
            rendered = inspect_rendered(phorge.render(comments[0]))
            assert phorge.edges([task["phid"]], ["mention"]) == [], key
            assert set(rendered.people) <= {"alice", "bob"}, (key, rendered.people)
