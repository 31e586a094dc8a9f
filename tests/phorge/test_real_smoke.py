"""Smoke tests against the real Phorge: `clinicbot doctor` and `clinicbot board`.

Expected numbers come from the harness's seed manifest, never from clinicbot's own output.
"""

from __future__ import annotations

import json

import pytest

from .realserver import BOARD_ROLES, PhorgeServer, run_clinicbot

pytestmark = pytest.mark.phorge


def test_the_server_is_the_seeded_phorge(phorge: PhorgeServer):
    # The harness itself: the bot account, the boards in board order and every task where the
    # manifest says, straight from Conduit (no clinicbot involved).
    me = phorge.call("user.whoami", as_user="clinicbot")
    assert me["userName"] == "clinicbot" and me["phid"] == phorge.user_phid("clinicbot")
    bot = phorge.call("user.search", constraints={"usernames": ["clinicbot"]})["data"][0]
    assert "bot" in bot["fields"]["roles"]
    for board, project in phorge.manifest["projects"].items():
        cols = phorge.call("project.column.search", constraints={"projects": [project["phid"]]})["data"]
        by_seq = [c["fields"]["name"] for c in sorted(cols, key=lambda c: c["fields"]["sequence"])]
        assert by_seq == project["column_order"] == list(BOARD_ROLES[board].values())
    found = phorge.call("maniphest.search", constraints={"ids": [t["id"] for t in phorge.tasks]},
                        attachments={"columns": True}, limit=100)["data"]
    assert len(found) == len(phorge.tasks)
    by_id = {t["id"]: t for t in found}
    for task in phorge.tasks:
        got = by_id[task["id"]]
        assert got["fields"]["name"] == task["title"]
        assert got["fields"]["dateCreated"] == task["created"]
        assert got["fields"]["priority"]["value"] == task["priority"]["value"]
        assert got["fields"]["status"]["value"] == task["status"]
        assert got["fields"]["authorPHID"] == phorge.user_phid(task["author"])
        boards = got["attachments"]["columns"]["boards"]
        for board in task["boards"].values():
            assert [c["phid"] for c in boards[board["project_phid"]]["columns"]] == [board["column_phid"]]


def test_doctor_against_the_real_phorge(phorge: PhorgeServer, phorge_config):
    result = run_clinicbot(phorge_config, "doctor", now=phorge.now)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert f"connected to {phorge.url} as clinicbot" in out
    for board, project in phorge.manifest["projects"].items():
        assert f"board {board} ({project['phid']})" in out
    leaked = phorge.token("clinicbot") in out  # (never let an assertion message print the token)
    assert not leaked, "the bot's Conduit token appears in doctor's output"


def test_board_json_counts_match_the_seed(phorge: PhorgeServer, phorge_config):
    result = run_clinicbot(phorge_config, "board", "--format", "json", now=phorge.now)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert [b["name"] for b in data["boards"]] == list(phorge.manifest["projects"])
    for board in data["boards"]:
        expected = phorge.expected_columns(board["name"])
        assert [c["name"] for c in board["columns"]] == list(expected)
        for col in board["columns"]:
            want = expected[col["name"]]
            assert col["phid"] == want["phid"]
            assert col["open_tasks"] == want["open_tasks"], col["name"]
            got_oldest = None if col["oldest"] is None else col["oldest"]["task"]
            assert got_oldest == want["oldest"], col["name"]
            if want["oldest"] is not None:
                assert col["oldest"]["age_seconds"] == want["oldest_age_seconds"]
        assert board["open_tasks"] == sum(c["open_tasks"] for c in expected.values())
    # The seeded boards are not empty, so the comparison above means something.
    assert sum(b["open_tasks"] for b in data["boards"]) >= 20


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_board_shows_no_control_characters_from_titles(phorge: PhorgeServer, phorge_config, fmt):
    # The seeded oldest task of the Triage Meeting Inbox has ESC, BEL and U+202E in its title.
    hostile = phorge.task("hostile-control")
    assert phorge.expected_columns("Core Platform Team")["Triage Meeting Inbox"]["oldest"] == hostile["monogram"]
    args = ["board"] if fmt == "text" else ["board", "--format", "json"]
    result = run_clinicbot(phorge_config, *args, now=phorge.now)
    assert result.returncode == 0, result.stdout + result.stderr
    assert hostile["monogram"] in result.stdout and "Terminal" in result.stdout
    for ch in ("\x1b", "\x07", "\u202e", "\u202c"):
        assert ch not in result.stdout


def test_scratch_tasks_live_on_their_own_board_and_are_backdated(phorge: PhorgeServer, scratch):
    # Tests that write use the session's scratch board; the seeded boards stay as the manifest says.
    task = phorge.scratch_task("Scratch smoke: backdated", column="Inbox", author="mallory", age_days=5,
                               events=[(3, "carol", "comment", "Looking."), (2, "carol", "move", "Doing")])
    got = phorge.call("maniphest.search", constraints={"phids": [task["phid"]]},
                      attachments={"columns": True, "projects": True})["data"][0]
    assert got["fields"]["dateCreated"] == task["created"] == int(phorge.now.timestamp()) - 60 - 5 * 86400
    assert got["fields"]["dateModified"] == task["modified"] == task["created"] + 3 * 86400
    assert got["attachments"]["projects"]["projectPHIDs"] == [scratch.phid]
    columns = got["attachments"]["columns"]["boards"][scratch.phid]["columns"]
    assert [c["phid"] for c in columns] == [scratch.columns["Doing"]]
    history = {x["type"]: x["dateCreated"] for x in phorge.transactions(task["monogram"])}
    assert history["create"] == task["created"] and history["comment"] == task["created"] + 2 * 86400
    assert phorge.comments(task["monogram"], author="carol") == ["Looking."]
    for project in phorge.manifest["projects"].values():
        assert scratch.phid != project["phid"]
        assert not set(scratch.columns.values()) & set(project["columns"].values())
