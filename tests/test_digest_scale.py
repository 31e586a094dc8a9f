"""Issue 14 point 11, a digest that scales: each section capped with "and N more" (a link in every
medium, the JSON keeps the counts), a task on two boards listed once, the server's display names,
ages in one unit system. Hand-built snapshots, fixed ``now``."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from clinicbot.model import Board, Column, User
from clinicbot.reports.agenda import build_agenda
from clinicbot.reports.common import RowCaps, display_name, format_hours, restate_ages
from clinicbot.reports.digest import build_digest
from clinicbot.reports.render import MEDIA, render
from clinicbot.reports.templating import duration
from tests.test_metrics import ALICE, BOB, D, DOING, H, INBOX, NOW, REVIEW, REVIEW_BOARD, TEAM, ev, snapshot, task

BASE = "https://phab.example/"
WFR = Column("PHID-PCOL-wfr", "Waiting for Review", TEAM, 2, role="waiting_for_review")
TMI = Column("PHID-PCOL-tmi", "Triage Meeting Inbox", TEAM, 3, role="triage_meeting_inbox")
R_TMI = Column("PHID-PCOL-rtmi", "Meeting", REVIEW_BOARD, 1, role="triage_meeting_inbox")
TEXT_MEDIA = [m for m in MEDIA if m != "json"]


def inbox_snapshot(n: int = 5):
    """``n`` tasks in the Inbox, T1 the oldest."""
    return snapshot([task(i, created=NOW - (10 - i) * D) for i in range(1, n + 1)], {})


def two_board_snapshot():
    """T1 waits for review on both boards, T2 was moved into both boards' meeting inboxes (by bob,
    then alice), T3 sits in both boards' inboxes. Alice is "Alice Adams" on the server; bob has no
    real name."""
    t1 = replace(task(1, created=NOW - 6 * D, author=ALICE), columns={TEAM: WFR.phid, REVIEW_BOARD: REVIEW.phid},
                 project_phids=(TEAM, REVIEW_BOARD))
    t2 = replace(task(2, created=NOW - 5 * D, author=BOB), columns={TEAM: TMI.phid, REVIEW_BOARD: R_TMI.phid},
                 project_phids=(TEAM, REVIEW_BOARD))
    t3 = replace(task(3, created=NOW - 4 * D), columns={TEAM: INBOX.phid, REVIEW_BOARD: REVIEW.phid},
                 project_phids=(TEAM, REVIEW_BOARD))
    snap = snapshot([t1, t2, t3], {
        1: [ev("column", NOW - 3 * D, ALICE, board_phid=TEAM, column_phid=WFR.phid, from_column_phids=(DOING.phid,)),
            ev("column", NOW - 2 * D, ALICE, board_phid=REVIEW_BOARD, column_phid=REVIEW.phid,
               from_column_phids=("PHID-PCOL-x",))],
        2: [ev("column", NOW - 10 * H, BOB, board_phid=TEAM, column_phid=TMI.phid, from_column_phids=(INBOX.phid,)),
            ev("column", NOW - 5 * H, ALICE, board_phid=REVIEW_BOARD, column_phid=R_TMI.phid,
               from_column_phids=(REVIEW.phid,))],
    })
    snap.boards[TEAM] = Board(TEAM, "Team", "team", (INBOX, DOING, WFR, TMI))
    snap.boards[REVIEW_BOARD] = Board(REVIEW_BOARD, "Reviews", "reviews", (REVIEW, R_TMI))
    snap.users[ALICE] = User(ALICE, "alice", real_name="Alice Adams")
    return snap


# -- the cap ------------------------------------------------------------------------------------


def test_each_section_is_cut_at_its_cap_and_the_json_keeps_the_counts():
    d = build_digest(inbox_snapshot(5), team="Core", findings=[], base_url=BASE, caps=RowCaps(2))
    assert [r["task"] for r in d["inbox"]] == ["T1", "T2"]
    assert d["totals"]["inbox"] == 5 and d["totals"]["unbreak"] == 0
    assert d["more"]["inbox"] == {"count": 3, "path": "/maniphest/?ids=3,4,5",
                                  "url": "https://phab.example/maniphest/?ids=3,4,5"}
    assert "unbreak" not in d["more"] and "review_queue" not in d["more"]
    # A section of its own size, or a cap of 0, shows every row.
    every = build_digest(inbox_snapshot(5), team="Core", findings=[], caps=RowCaps(2, {"inbox": 0}))
    assert len(every["inbox"]) == 5 and every["more"] == {}
    exact = build_digest(inbox_snapshot(5), team="Core", findings=[], caps=RowCaps(5))
    assert len(exact["inbox"]) == 5 and exact["more"] == {}


def test_the_default_cap_is_twenty_rows():
    d = build_digest(inbox_snapshot(23), team="Core", findings=[])
    assert len(d["inbox"]) == 20 and d["totals"]["inbox"] == 23 and d["more"]["inbox"]["count"] == 3


@pytest.mark.parametrize("fmt", TEXT_MEDIA)
def test_and_n_more_links_to_the_rest_in_every_medium(fmt):
    d = build_digest(inbox_snapshot(5), team="Core", findings=[], base_url=BASE, caps=RowCaps(2))
    out = render(d, fmt)
    assert "…and 3 more" in out, out
    assert "task 3" not in out and "task 2" in out  # the rows after the cap are not printed
    link = {"remarkup": "[[ /maniphest/?ids=3,4,5 | …and 3 more ]]",
            "md": "[…and 3 more](https://phab.example/maniphest/?ids=3,4,5)",
            "html": '<a href="https://phab.example/maniphest/?ids=3,4,5">…and 3 more</a>',
            "chat": "<https://phab.example/maniphest/?ids=3,4,5|…and 3 more>"}.get(fmt,
                                                                                "…and 3 more[/italic]: https://phab.example/maniphest/?ids=3,4,5"
                                                                                if fmt == "term" else
                                                                                "…and 3 more: https://phab.example/maniphest/?ids=3,4,5")
    assert link in out, out
    # The heading counts every task, not the rows shown.
    assert re.search(r"Inbox \(5\b", out), out


def test_and_n_more_without_a_server_url_is_plain_text():
    d = build_digest(inbox_snapshot(3), team="Core", findings=[], caps=RowCaps(1))
    assert d["more"]["inbox"]["url"] == ""
    assert "- …and 2 more\n" in render(d, "md") and "- …and 2 more\n" in render(d, "text")
    assert "[[ /maniphest/?ids=2,3 | …and 2 more ]]" in render(d, "remarkup")  # relative: works on the server


def test_the_link_lists_at_most_a_hundred_ids():
    d = build_digest(inbox_snapshot(150), team="Core", findings=[], base_url=BASE, caps=RowCaps(10))
    more = d["more"]["inbox"]
    assert more["count"] == 140 and more["path"] == "/maniphest/?ids=" + ",".join(str(i) for i in range(11, 111))


# -- a task on two boards -------------------------------------------------------------------------


def test_a_task_on_two_boards_is_one_row_naming_both_in_every_section():
    d = build_digest(two_board_snapshot(), team="Core", since=NOW - 1 * D, findings=[])
    (review,) = [r for r in d["review_queue"] if r["task"] == "T1"]
    assert [r["task"] for r in d["review_queue"]].count("T1") == 1
    assert review["boards"] == ["Team", "Reviews"] and review["waiting_hours"] == 72  # the longer wait
    assert [(p["board"], p["column"]) for p in review["places"]] == [("Team", "Waiting for Review"),
                                                                     ("Reviews", "Review Needed")]
    (moved,) = d["moved_to_meeting"]
    assert moved["task"] == "T2" and moved["boards"] == ["Team", "Reviews"] and moved["by"] == "alice"  # the latest
    assert [r["task"] for r in d["inbox"]] == ["T3"] and d["inbox"][0]["boards"] == ["Team"]
    text = render(d, "text")
    assert text.count("T1 task 1") == 1 and "Waiting for Review (Team), Review Needed (Reviews)" in text
    assert text.count("T2 task 2") == 1 and "T2 task 2 (Team, Reviews)" in text
    agenda = build_agenda(two_board_snapshot(), team="Core", meeting_at=NOW + 3 * H)
    assert [i["task"] for i in agenda["items"]] == ["T2"] and agenda["items"][0]["boards"] == ["Team", "Reviews"]
    assert "(Team, Reviews)" in render(agenda, "md")


# -- display names ----------------------------------------------------------------------------------


def test_display_name_never_repeats_the_username():
    assert display_name("carol", "Carol Chen") == "Carol Chen (@carol)"
    assert display_name("carol", "") == "carol"
    assert display_name("carol", "carol") == "carol" and display_name("carol", "Carol") == "carol"
    assert display_name("carol", "  Carol   Chen ") == "Carol Chen (@carol)"


ROTATION = """\
name: Test
timezone: UTC
handoff: "09:00"
members:
  - alice
  - username: bob
    name: Bob Builder
on_duty: {min: 1, max: 3}
cycle:
  start: 2026-11-02
  order: [alice, bob]
  shift_length: 2w
  per_shift: 2
  stagger: 1w
"""


@pytest.fixture
def rotation():
    from clinicbot.rotation import parse_rotation

    return parse_rotation(ROTATION, "rotation.yaml")


@pytest.mark.parametrize("fmt", TEXT_MEDIA)
def test_people_by_the_servers_display_name(rotation, fmt):
    """alice: no name in the rotation, "Alice Adams" on the server; bob: "Bob Builder" in the
    rotation, no real name on the server. Nobody is shown as "bob (bob)"."""
    d = build_digest(two_board_snapshot(), team="Core", rotation=rotation, since=NOW - 1 * D, findings=[])
    assert [(p["username"], p["name"]) for p in d["on_duty"]] == [("alice", "Alice Adams"), ("bob", "Bob Builder")]
    assert d["people"]["alice"] == "Alice Adams (@alice)" and d["people"]["bob"] == "Bob Builder (@bob)"
    out = render(d, fmt).replace("\\", "")  # Markdown escapes the parentheses
    if fmt == "chat":  # the header names the on-duty by chat handle; the mover shows the name
        assert "Alice Adams" not in out or "(@\u200balice)" in out
    else:
        at = "@" if fmt == "remarkup" else "@\u200b"  # Remarkup: inside inert monospace; elsewhere the @ is broken
        assert f"Alice Adams ({at}alice)" in out and f"Bob Builder ({at}bob)" in out, out
        assert "Review Needed (Reviews), by " in out.replace("`", "").replace("\\", "") or fmt == "html"
    for name in ("alice", "bob"):
        assert f"{name} ({name})" not in out and f"{name} (@\u200b{name})" not in out
    if fmt == "remarkup":  # a person never pings: every name sits inside monospace
        assert not re.search(r"(^|[^`])@alice", re.sub(r"`[^`]*`", "", out))


def test_the_agenda_names_people_the_same_way(rotation):
    agenda = build_agenda(two_board_snapshot(), team="Core", meeting_at=NOW + 3 * H, rotation=rotation)
    out = render(agenda, "text")
    assert "engineers on duty Alice Adams (@\u200balice), Bob Builder (@\u200bbob)" in out
    assert "Moved here by Bob Builder (@\u200bbob)" in out  # the rotation's name when the server has none
    assert "alice (alice)" not in out


# -- ages ----------------------------------------------------------------------------------------------


def test_one_unit_system():
    assert format_hours(384.6) == "16d" and format_hours(50) == "2d 2h" and format_hours(0.25) == "15m"
    assert duration(384.6 * 3600) == "16d" and duration(None) == "?"
    assert restate_ages("T1 Deploy has been Unbreak Now! for 384.6 hours") == "T1 Deploy has been Unbreak Now! for 16d"
    assert restate_ages("waited 2.5 days, 1 hour, 9 working days") == "waited 2d 12h, 1h, 9 working days"
    # The title is task text: kept as it is, wherever it appears.
    assert restate_ages("T1 Outage of 5 hours waited 48 hours", keep=["Outage of 5 hours"]) == \
        "T1 Outage of 5 hours waited 2d"


class Rec:
    def __init__(self, summary, task_id=1):
        self.created_at, self.check_slug, self.task_id, self.summary = NOW - 1 * H, "unbreak-now", task_id, summary
        self.severity, self.handled_at = "critical", None


@pytest.mark.parametrize("fmt", MEDIA)
def test_fired_findings_give_ages_in_the_digests_unit_system(fmt):
    snap = inbox_snapshot(1)
    snap.tasks["PHID-TASK-1"] = replace(snap.tasks["PHID-TASK-1"], title="Lost 3 hours of logs")
    d = build_digest(snap, team="Core", findings=[Rec("T1 Lost 3 hours of logs has been Unbreak Now! for 384.6 hours")])
    (f,) = d["findings"]
    assert f["text"] == "T1 Lost 3 hours of logs has been Unbreak Now! for 16d"
    assert f["summary"].endswith("384.6 hours")  # the ledger's words, unchanged in the data
    out = render(d, fmt)
    if fmt == "json":
        assert json.loads(out)["findings"][0]["text"].endswith("for 16d")
    elif fmt != "chat":  # chat lists the slugs only
        assert "384.6" not in out and "16d" in out and "3 hours of logs" in out.replace("\\", "")
