"""Who put a task in the Triage Meeting Inbox: a mover, or nobody (created or tagged into it).

Phorge records the column a task is created into as a ``core:columns`` transaction of the
creation edit (same ``groupID`` as ``create``, same second, authored by the creator) with
``fromColumnPHIDs: []``. docs/reports.md: such a task has no mover.
"""

from __future__ import annotations

import re

from dataclasses import replace
from datetime import datetime

import pytest

from clinicbot.phab.history import Event, Timeline
from clinicbot.model import Board
from clinicbot.reports.digest import arrival, build_digest
from clinicbot.reports.agenda import build_agenda
from clinicbot.model import iso
from tests.test_metrics import ALICE, BOB, D, DOING, H, INBOX, NOW, OUTSIDER, TEAM, snapshot, task
from tests.test_reports import TMI

CREATED = NOW - 2 * D


def ev(kind: str, at: datetime, author: str | None, group: str | None = None, **kw) -> Event:
    return Event(kind=kind, at=at, author_phid=author, group_id=group, **kw)


def into_tmi(at: datetime, author: str, group: str | None, *, came_from: tuple[str, ...] = ()) -> Event:
    return ev("column", at, author, group, board_phid=TEAM, column_phid=TMI.phid, from_column_phids=came_from)


def build(events: list[Event], *, column: str = TMI.phid):
    """One task (T7, created by OUTSIDER two days ago) with exactly ``events`` as its history."""
    t = replace(task(7, created=CREATED, column=column), title="in the meeting inbox")
    snap = snapshot([t], {})
    snap.timelines[t.phid] = Timeline(t.phid, t.id, tuple(events))
    snap.boards[TEAM] = Board(TEAM, "Team", "team", (INBOX, DOING, TMI))
    return snap


def reports(snap):
    agenda = build_agenda(snap, team="Core", meeting_at=NOW + D)
    digest = build_digest(snap, team="Core", since=NOW - 3 * D, findings=None)
    return agenda["items"], digest["moved_to_meeting"]


CASES = {
    # The recorded shape: create and the placement in one transaction group, no source column.
    "created into the column": ([ev("created", CREATED, OUTSIDER, "g1"), into_tmi(CREATED, OUTSIDER, "g1")],
                                "created", None),
    # A history without group ids (older servers, the legacy method): the same second.
    "created into it, no group ids": ([ev("created", CREATED, OUTSIDER), into_tmi(CREATED, OUTSIDER, None)],
                                      "created", None),
    # Tagged with the board's project later, straight into the column: nobody moved it either.
    "tagged into the column": ([ev("created", CREATED, OUTSIDER, "g1"),
                                ev("projects", CREATED + H, ALICE, "g2", new=(TEAM,)),
                                into_tmi(CREATED + H, ALICE, "g2")], "tagged", None),
    # A real move from the Inbox.
    "moved from the inbox": ([ev("created", CREATED, OUTSIDER, "g1"),
                              ev("column", CREATED, OUTSIDER, "g1", board_phid=TEAM, column_phid=INBOX.phid),
                              into_tmi(NOW - D, BOB, "g2", came_from=(INBOX.phid,))], "moved", "bob"),
    # Created into the column, taken out, then moved back by bob: bob is the mover now.
    "created there, out, moved back": ([ev("created", CREATED, OUTSIDER, "g1"), into_tmi(CREATED, OUTSIDER, "g1"),
                                        ev("column", CREATED + H, ALICE, "g2", board_phid=TEAM,
                                           column_phid=DOING.phid, from_column_phids=(TMI.phid,)),
                                        into_tmi(NOW - D, BOB, "g3", came_from=(DOING.phid,))], "moved", "bob"),
    # A placement with no source column that is neither the creation nor a tagging: a move by its author.
    "placed later, not created or tagged": ([ev("created", CREATED, OUTSIDER, "g1"), into_tmi(NOW - D, BOB, "g9")],
                                            "moved", "bob"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_agenda_and_digest_name_a_mover_only_for_a_move(name):
    events, how, by = CASES[name]
    items, moved = reports(build(events))
    (item,) = items
    assert (item["arrival"], item["moved_by"]) == (how, by)
    # The digest lists every entry since the last digest; the latest is the one that counts now.
    assert (moved[-1]["arrival"], moved[-1]["by"]) == (how, by)
    assert [(r["arrival"], r["by"]) for r in moved[:-1]] == ([("created", None)] if len(moved) > 1 else [])


def test_created_into_the_column_is_not_moved_by_its_creator():
    # The case: dave creates the task in the Triage Meeting Inbox; the reports said
    # "Moved here by dave". They must not name anyone.
    events = [ev("created", CREATED, ALICE, "g1"), into_tmi(CREATED, ALICE, "g1")]
    items, moved = reports(build(events))
    assert items[0]["moved_by"] is None and moved[0]["by"] is None
    assert items[0]["moved_at"] == iso(CREATED)  # still dated: it has been there since creation


def test_arrival_only_matches_the_creation_of_its_own_group():
    created = ev("created", CREATED, OUTSIDER, "g1")
    same_second_other_edit = into_tmi(CREATED, BOB, "g2")
    tl = Timeline("PHID-TASK-7", 7, (created, same_second_other_edit))
    assert arrival(tl, same_second_other_edit) == "moved"  # group ids say it was another edit
    assert arrival(tl, into_tmi(CREATED, OUTSIDER, "g1")) == "created"
    tagged_elsewhere = ev("projects", CREATED + H, ALICE, "g3", new=("PHID-PROJ-other",))
    tl = Timeline("PHID-TASK-7", 7, (created, tagged_elsewhere, into_tmi(CREATED + H, ALICE, "g3")))
    assert arrival(tl, tl.events[-1]) == "moved"  # that edit tagged another project, not this board



# --------------------------------------------------------------------------------------------
# Against the sandbox Phorge: a task created straight into the column through maniphest.edit


def test_sandbox_task_created_into_the_meeting_inbox_has_no_mover(tmp_path):
    import json
    import secrets

    from click.testing import CliRunner

    from clinicbot.cli import cli
    from clinicbot.phab.conduit import ConduitClient
    from clinicbot.jobs.demo import write_sandbox_config
    from clinicbot.sandbox import Sandbox, generate_scenario
    from tests.test_reports_sandbox import NOW as SANDBOX_NOW
    from tests.test_reports_sandbox import ROTATION

    sb = Sandbox(scenario=generate_scenario(SANDBOX_NOW, size=30))
    sb.start()
    try:
        tokens = {}
        for user in ("dave", "bob"):
            tokens[user] = "api-" + secrets.token_hex(14)  # generated, never a real token
            sb.add_token(tokens[user], user)
        as_dave, as_bob = (ConduitClient(sb.url, tokens[u]) for u in ("dave", "bob"))
        board = next(as_dave.search("project.search", constraints={"name": "Core Platform Team"}))["phid"]
        columns = {c["fields"]["name"]: c["phid"]
                   for c in as_dave.search("project.column.search", constraints={"projects": [board]})}
        created = as_dave.call("maniphest.edit", transactions=[
            {"type": "title", "value": "Created straight into the meeting inbox"},
            {"type": "projects.add", "value": [board]},
            {"type": "column", "value": [columns["Triage Meeting Inbox"]]}])["object"]
        moved = as_bob.call("maniphest.edit", transactions=[
            {"type": "title", "value": "Moved into the meeting inbox by bob"},
            {"type": "projects.add", "value": [board]}])["object"]
        as_bob.call("maniphest.edit", objectIdentifier=moved["phid"],
                    transactions=[{"type": "column", "value": [columns["Triage Meeting Inbox"]]}])
        at = max(int(x["dateCreated"]) for x in as_dave.call("transaction.search",
                                                              objectIdentifier=moved["phid"])["data"])
        now = datetime.fromtimestamp(at, tz=SANDBOX_NOW.tzinfo) + H
        (tmp_path / "rotation.yaml").write_text(ROTATION)
        config = write_sandbox_config(tmp_path / "clinicbot.yaml", sb.url, sb.token)

        def text(*args: str, fmt: str = "json") -> str:
            result = CliRunner().invoke(cli, ["--config", str(config), "--now", now.isoformat(), *args,
                                              "--format", fmt], catch_exceptions=False)
            assert result.exit_code == 0, result.output
            return result.stdout

        def report(*args: str) -> dict:
            return json.loads(text(*args))

        items = {r["id"]: r for r in report("agenda")["items"]}
        assert (items[created["id"]]["moved_by"], items[created["id"]]["arrival"]) == (None, "created")
        assert (items[moved["id"]]["moved_by"], items[moved["id"]]["arrival"]) == ("bob", "moved")
        rows = {r["id"]: r for r in report("digest", "--since", (now - 2 * H).isoformat())["moved_to_meeting"]}
        assert (rows[created["id"]]["by"], rows[created["id"]]["arrival"]) == (None, "created")
        assert rows[moved["id"]]["by"] == "bob"

        # What people read: no "Moved here by dave" in any format, the real mover named.
        since = ("--since", (now - 2 * H).isoformat())
        for fmt in ("md", "remarkup", "term", "html"):
            agenda, digest = text("agenda", fmt=fmt), text("digest", *since, fmt=fmt)
            # The digest puts the mover on the task's line; the agenda a few lines under its heading.
            [created_line] = [ln for ln in digest.splitlines() if "Created straight into" in ln]
            [moved_line] = [ln for ln in digest.splitlines() if "Moved into the meeting inbox" in ln]
            assert "created here" in created_line and "dave" not in created_line, (fmt, created_line)
            # The mover by the server's display name (issue 14 point 11): "Bob Brown (@bob)".
            assert re.search(r"moved by \W?Bob Brown \W*@\u200b?bob\W", moved_line), (fmt, moved_line)
            created_item = agenda.split("Created straight into", 1)[1].split("Moved into the meeting inbox")[0]
            assert "Created here" in created_item and not re.search(r"by \W?dave", created_item), fmt
    finally:
        sb.stop()
