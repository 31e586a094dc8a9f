"""history.py: recorded histories -> timelines, legacy == transaction.search, derived answers, fetching."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from clinicbot.phab.conduit import ConduitClient, HTTPAnswer
from clinicbot.errors import ConduitAPIError, ConduitError, ConduitTransportError
from clinicbot.phab.history import (
    Event,
    TaskHistoryError,
    Timeline,
    fetch_timelines,
    timeline_from_legacy,
    timeline_from_transaction_search,
)

RECORDINGS = Path(__file__).parent / "fixtures" / "conduit"


def result(name: str) -> Any:
    return json.loads((RECORDINGS / f"{name}.json").read_text())["response"]["result"]


def ts_items(name: str) -> list[dict]:
    return result(f"transaction.search--{name}")["data"]


def utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


# Seed data PHIDs (README of the recordings)
DAVE, CAROL, ALICE, BOB = ("PHID-USER-oujkuthn4dmelmwrfvaj", "PHID-USER-hr5hpix2vdc45imdtjwc",
                           "PHID-USER-eaaxhnhdkoszsd76zjtl", "PHID-USER-7vxcqf6f2bnwuava3hsa")
ADMIN, ERIN, FRANK = "PHID-USER-dvvw2qjn2zkd26czxg27", "PHID-USER-vhtugakzpqvnczxtv5xy", "PHID-USER-3b3rguuwa27ep2k5gmtq"
CPT, CLINIC, EXT, INFRA = ("PHID-PROJ-xvlu2w3dfxng35zunpfl", "PHID-PROJ-plplckww2fzecnlz4rl6",
                           "PHID-PROJ-mhxwfmswzjkhyrnlqx2v", "PHID-PROJ-acnbyftua5i4t75y4lvl")
CPT_INBOX, CPT_TMI, CPT_READY, CPT_DOING = ("PHID-PCOL-veqpmo6uq677d26udlfl", "PHID-PCOL-jufaqxrrropja5oxjh7s",
                                            "PHID-PCOL-c5b5xu6ersaxazidsham", "PHID-PCOL-i5tladto7kr3tpnntkuf")
CPT_WFR, CPT_WFD = "PHID-PCOL-wklzhtz6mtvoh6e2iuiy", "PHID-PCOL-nix45dp55inxirv5n2un"
CLINIC_INBOX, CLINIC_READY = "PHID-PCOL-ucb4pcyaoha7bgrjpksg", "PHID-PCOL-2d3h3wllusgdfjdkmdc6"
CLINIC_DOING, CLINIC_WFR = "PHID-PCOL-mfxvtgaorc23xfc6eyge", "PHID-PCOL-6mtyeqxqrvtb7qczwb6c"
EXT_NEEDED, EXT_PROGRESS, EXT_DISCUSS = ("PHID-PCOL-wnpu2o2pmfmti2arjull", "PHID-PCOL-bhc2qhdsx44kkt5uc6iz",
                                         "PHID-PCOL-2cc5hbauv74fqcwfmewc")
INFRA_BACKLOG = "PHID-PCOL-l34fsljzalv6gz4roifc"

T4 = "PHID-TASK-7fkq3iwtsts43qopruks"
T12 = "PHID-TASK-s3x62fu2lvadljulmi4e"
T15 = "PHID-TASK-yz5rj3w4botss2c43sut"


@pytest.fixture(scope="module")
def t4() -> Timeline:
    return timeline_from_transaction_search(T4, 4, ts_items("T4-gw502-full"))


def summary(e: Event) -> tuple:
    """The parts of an event a test wants to compare at a glance."""
    if e.kind == "column":
        return (e.xaction_id, "column", e.board_phid, e.from_column_phids, e.column_phid)
    if e.kind == "commented":
        return (e.xaction_id, "commented", e.text[:20])
    if e.kind in ("created",):
        return (e.xaction_id, e.kind)
    if e.kind == "description":
        return (e.xaction_id, "description", e.old, e.new[:20])
    return (e.xaction_id, e.kind, e.old, e.new)


# -- parsing recorded histories -----------------------------------------------------------------


def test_t4_full_history(t4):
    assert t4.task_phid == T4 and t4.task_id == 4 and t4.structured_columns and t4.unreadable == 0
    assert [summary(e) for e in t4.events] == [
        (37, "created"),
        (38, "title", "", "API gateway returns 502 under load"),
        (39, "description", "", "Since the last deplo"),
        (40, "projects", (), (CPT,)),
        (41, "column", CPT, (), CPT_INBOX),  # first placement: fromColumnPHIDs was []
        (42, "subscribers", (), tuple(sorted([DAVE, CAROL]))),
        (43, "commented", "I can reproduce this"),
        (44, "column", CPT, (CPT_INBOX,), CPT_TMI),
        (45, "subscribers", (), (ALICE,)),
        (46, "priority", 90, 100),
        (47, "commented", "Raising to UBN!: thi"),
        (48, "owner", None, ALICE),
        (49, "column", CPT, (CPT_TMI,), CPT_DOING),
        (50, "points", None, 3.0),
        (51, "title", "API gateway returns 502 under load",
         "API gateway returns 502 under sustained load (keepalive pool exhaustion)"),
        (52, "subscribers", (), (BOB,)),
        (53, "commented", "@alice the pool size"),
        (54, "points", 3.0, 5.0),
        (55, "status", "open", "stalled"),
        (56, "commented", "Blocked on the vendo"),
        (66, "status", "stalled", "open"),
        (67, "column", CPT, (CPT_DOING,), CPT_WFR),
        (68, "commented", "Vendor confirmed 60s"),
        (78, "subscribers", (CAROL,), ()),
        (79, "commented", "LGTM, deploying with"),
        (80, "column", CPT, (CPT_WFR,), CPT_WFD),
        (81, "projects", (), (INFRA,)),
    ]
    created = t4.events[0]
    assert created.at == utc(1792363055) == datetime(2026, 10, 18, 22, 37, 35, tzinfo=timezone.utc)
    assert created.author_phid == DAVE and created.group_id == "giqjrgtxpnswej67dgr7avyoecjdamio"
    assert t4.created_at() == utc(1792363055)
    assert all(e.at.tzinfo is timezone.utc for e in t4.events)
    move = t4.moved_into(CPT, CPT_TMI)
    assert [(m.author_phid, m.at) for m in move] == [(ADMIN, utc(1792397616))]
    comment = t4.of_kind("commented")[-1]
    assert comment.text == "LGTM, deploying with the Thursday train." and comment.author_phid == CAROL
    assert [e.new for e in t4.of_kind("points")] == [3.0, 5.0]


def test_t4_column_path_and_moves(t4):
    path = [e.column_phid for e in t4.moves(CPT)]
    assert path == [CPT_INBOX, CPT_TMI, CPT_DOING, CPT_WFR, CPT_WFD]
    assert t4.moves(INFRA) == []  # tagging an existing task writes no placement transaction
    assert len(t4.moves()) == 5
    assert t4.tagged_at(INFRA) == utc(1792846895)
    assert t4.tagged_at(CPT) == utc(1792363055)
    assert t4.tagged_at(EXT) is None


def test_t12_moves_on_two_boards_in_one_edit():
    t12 = timeline_from_transaction_search(T12, 12, ts_items("T12-avatar-full"))
    assert t12.structured_columns
    assert [(e.board_phid, e.column_phid) for e in t12.moves(CLINIC)] == [
        (CLINIC, CLINIC_INBOX), (CLINIC, CLINIC_READY), (CLINIC, CLINIC_DOING), (CLINIC, CLINIC_WFR)]
    assert [e.column_phid for e in t12.moves(CPT)] == [CPT_READY, CPT_DOING, CPT_WFR]
    # carol's edit moved it on both boards: two transactions of one group, same second
    both = [e for e in t12.moves() if e.group_id and e.group_id.startswith("sql7co")]
    assert [(e.xaction_id, e.board_phid, e.from_column_phids, e.column_phid) for e in both] == [
        (274, CPT, (CPT_DOING,), CPT_WFR), (275, CLINIC, (CLINIC_DOING,), CLINIC_WFR)]
    assert {e.at for e in both} == {utc(1794540335)} and {e.author_phid for e in both} == {CAROL}
    assert [(e.old, e.new, e.author_phid) for e in t12.of_kind("owner")] == [(None, FRANK, FRANK), (FRANK, CAROL, CAROL)]
    assert [(e.old, e.new) for e in t12.of_kind("priority")] == [(90, 50), (50, 80)]
    assert t12.column_entered_at(CLINIC, CLINIC_WFR) == (utc(1794540335), False)
    assert t12.column_entered_at(CPT, CPT_WFR) == (utc(1794540335), False)


def test_one_transaction_moving_on_two_boards_gives_two_events_in_server_order():
    item = {"id": 500, "type": "core:columns", "authorPHID": ALICE, "dateCreated": 1794540335, "groupID": "g",
            "comments": [], "fields": {"old": None, "new": [
                {"columnPHID": CPT_WFR, "boardPHID": CPT, "fromColumnPHIDs": {CPT_DOING: CPT_DOING},
                 "beforePHIDs": [], "afterPHIDs": []},
                {"columnPHID": CLINIC_INBOX, "boardPHID": CLINIC, "fromColumnPHIDs": [],
                 "beforePHIDs": [], "afterPHIDs": []}]}}
    earlier = dict(item, id=499, dateCreated=1794540335, type="status", fields={"old": "open", "new": "stalled"})
    tl = timeline_from_transaction_search("PHID-TASK-x", 1, [item, earlier])
    assert [(e.xaction_id, e.kind, e.board_phid, e.from_column_phids, e.column_phid) for e in tl.events] == [
        (499, "status", None, (), None),
        (500, "column", CPT, (CPT_DOING,), CPT_WFR),
        (500, "column", CLINIC, (), CLINIC_INBOX),
    ]


def test_t15_history():
    t15 = timeline_from_transaction_search(T15, 15, ts_items("T15-payments-full"))
    assert [(e.old, e.new, e.author_phid, e.at) for e in t15.of_kind("owner")] == [
        (None, ALICE, ADMIN, utc(1793719535)), (ALICE, BOB, BOB, utc(1794713135))]
    assert [(e.old, e.new) for e in t15.of_kind("status")] == [("open", "stalled"), ("stalled", "open")]
    assert [e.column_phid for e in t15.moves(EXT)] == [EXT_NEEDED, EXT_PROGRESS, EXT_DISCUSS, EXT_PROGRESS]
    assert [(e.old, e.new) for e in t15.of_kind("points")] == [(None, 2.0), (2.0, 3.0)]
    # entered In Progress twice: the current stay started with the second move
    assert [m.at for m in t15.moved_into(EXT, EXT_PROGRESS)] == [utc(1793762735), utc(1794324335)]
    assert t15.column_entered_at(EXT, EXT_PROGRESS) == (utc(1794324335), False)


def test_null_type_parent_on_create_is_skipped_but_columns_stay_structured():
    t17 = timeline_from_transaction_search("PHID-TASK-t17", 17, ts_items("null-type-parent-on-create"))
    assert 206 not in [e.xaction_id for e in t17.events]
    assert t17.unreadable == 1
    assert t17.structured_columns  # it has a readable core:columns (first placement in Ready)
    assert t17.column_entered_at(CPT, CPT_READY) == (utc(1793805935), False)
    assert [(e.old, e.new) for e in t17.of_kind("priority")] == [(90, 50)]


def test_null_type_mention_in_a_partial_history():
    # limit=2: only the mention (type null) and one comment. No column event, no project event,
    # an unreadable transaction: by the rule, the timeline cannot vouch for column times.
    t18 = timeline_from_transaction_search("PHID-TASK-t18", 18, ts_items("null-type-mention"))
    assert [(e.kind, e.xaction_id, e.author_phid, e.text) for e in t18.events] == [
        ("commented", 277, CAROL, "Moved the export to a background job.")]
    assert t18.unreadable == 1
    assert not t18.structured_columns


def test_mention_next_to_structured_columns_keeps_structured():
    t26 = timeline_from_transaction_search("PHID-TASK-xl4mqyh4wrow3iiejbvi", 26, ts_items("after-edits-stalecount"))
    assert t26.unreadable == 1 and t26.structured_columns
    assert [(e.xaction_id, e.column_phid) for e in t26.moves(CLINIC)] == [(302, CLINIC_INBOX), (316, CLINIC_READY)]
    assert t26.column_entered_at(CLINIC, CLINIC_READY) == (utc(1795318407), False)
    # two subscribers added in one operation list, sorted
    assert t26.of_kind("subscribers")[1].new == tuple(sorted([ERIN, ADMIN]))


def test_unconfigured_status_values_pass_through():
    tl = timeline_from_transaction_search("PHID-TASK-xl4mqyh4wrow3iiejbvi", 26, ts_items("unconfigured-status-xaction"))
    assert [(e.xaction_id, e.old, e.new, e.at) for e in tl.of_kind("status")] == [
        (325, "open", "stalled", utc(1795318408)), (338, "stalled", "wontfix", utc(1795318463))]
    assert tl.created_at() is None  # a partial history has no creation event
    assert tl.structured_columns  # nothing unreadable


def test_paged_history_equals_full_history(t4):
    page1, page2 = ts_items("paging-limit5-page1"), ts_items("paging-limit5-page2")
    assert result("transaction.search--paging-limit5-page1")["cursor"]["after"] == "68"
    partial = timeline_from_transaction_search(T4, 4, page1 + page2)
    ids = {x["id"] for x in page1 + page2}
    assert partial.events == tuple(e for e in t4.events if e.xaction_id in ids)
    # overlapping pages (a retried page) do not duplicate events
    assert timeline_from_transaction_search(T4, 4, page1 + page1 + page2) == partial
    # order of the input does not matter
    assert timeline_from_transaction_search(T4, 4, page2 + page1) == partial


def test_removed_and_edited_comments():
    def comment(xid, *versions, removed=False):
        return {"id": xid, "type": "comment", "authorPHID": BOB, "dateCreated": 1790000000 + xid, "groupID": f"g{xid}",
                "fields": {}, "comments": [
                    {"version": v, "removed": removed, "content": {"raw": "" if removed else text}}
                    for v, text in versions]}

    items = [comment(3, (2, "second thoughts"), (1, "first"), removed=True),
             comment(2, (2, "edited text"), (1, "original text")),
             comment(1, (1, "plain"))]
    tl = timeline_from_transaction_search("PHID-TASK-x", 1, items)
    assert [(e.xaction_id, e.text) for e in tl.events] == [(1, "plain"), (2, "edited text")]
    assert tl.unreadable == 0
    legacy = [{"taskID": "1", "transactionID": "3", "transactionType": "core:comment", "comments": "",
               "authorPHID": BOB, "dateCreated": "1790000003", "meta": {"core.groupID": "g3"}},
              {"taskID": "1", "transactionID": "2", "transactionType": "core:comment", "comments": "edited text",
               "authorPHID": BOB, "dateCreated": "1790000002", "meta": {"core.groupID": "g2"}},
              {"taskID": "1", "transactionID": "1", "transactionType": "core:comment", "comments": "plain",
               "authorPHID": BOB, "dateCreated": "1790000001", "meta": {"core.groupID": "g1"}}]
    assert timeline_from_legacy("PHID-TASK-x", 1, legacy) == tl


def test_untyped_server_keeps_comments_and_flags_columns():
    # An old server: no "type" key at all, fields {}, but comments still attached.
    items = [
        {"id": 12, "authorPHID": ALICE, "dateCreated": 1790000300, "comments": [], "fields": {}},
        {"id": 11, "authorPHID": ALICE, "dateCreated": 1790000200, "fields": {},
         "comments": [{"version": 1, "removed": False, "content": {"raw": "on it"}}]},
        {"id": 10, "type": None, "authorPHID": DAVE, "dateCreated": 1790000100, "comments": [], "fields": {}},
    ]
    tl = timeline_from_transaction_search("PHID-TASK-x", 1, items)
    assert [(e.kind, e.text, e.author_phid) for e in tl.events] == [("commented", "on it", ALICE)]
    assert tl.unreadable == 2
    assert not tl.structured_columns


def test_tagged_later_with_unreadable_and_no_moves_is_not_structured():
    items = [
        {"id": 3, "type": None, "authorPHID": ALICE, "dateCreated": 300, "comments": [], "fields": {}},
        {"id": 2, "type": "projects", "authorPHID": ALICE, "dateCreated": 200, "comments": [],
         "fields": {"operations": [{"operation": "add", "phid": CPT}]}},
        {"id": 1, "type": "create", "authorPHID": ALICE, "dateCreated": 100, "comments": [], "fields": {}},
    ]
    assert not timeline_from_transaction_search("PHID-TASK-x", 1, items).structured_columns
    # the same without the unreadable transaction: nothing hints at hidden moves
    assert timeline_from_transaction_search("PHID-TASK-x", 1, items[1:]).structured_columns


def test_values_normalised_from_strings_and_other_kinds():
    legacy = [
        {"transactionID": "9", "transactionType": "points", "oldValue": "", "newValue": "0.5",
         "authorPHID": ALICE, "dateCreated": "1790000009", "meta": {}},
        {"transactionID": "8", "transactionType": "priority", "oldValue": "90", "newValue": "25",
         "authorPHID": ALICE, "dateCreated": "1790000008", "meta": {}},
        {"transactionID": "7", "transactionType": "core:edge", "oldValue": [], "newValue": ["PHID-TASK-parent"],
         "authorPHID": ALICE, "dateCreated": "1790000007", "meta": {"edge:type": 4}},
        {"transactionID": "6", "transactionType": "mergedinto", "oldValue": None, "newValue": "PHID-TASK-y",
         "authorPHID": ALICE, "dateCreated": "1790000006", "meta": {}},
        {"transactionID": "5", "transactionType": "core:subscribers", "oldValue": [ALICE], "newValue": [ALICE],
         "authorPHID": ALICE, "dateCreated": "1790000005", "meta": {}},
        {"transactionID": "4", "transactionType": "core:edge", "oldValue": {CPT: {}}, "newValue": {CLINIC: {}},
         "authorPHID": ALICE, "dateCreated": "1790000004", "meta": {"edge:type": "41"}},
    ]
    tl = timeline_from_legacy("PHID-TASK-x", 1, legacy)
    assert [(e.xaction_id, e.kind, e.old, e.new) for e in tl.events] == [
        (4, "projects", (CPT,), (CLINIC,)),  # raw edge maps work too
        (6, "other", None, None),  # merges are not modelled
        (8, "priority", 90, 25),
        (9, "points", None, 0.5),
    ]  # the parent edge (7) and the no-op subscriber edit (5) are gone
    assert tl.events[0].at == utc(1790000004)


def test_legacy_old_style_project_column():
    item = {"transactionID": "3", "transactionType": "projectcolumn", "authorPHID": ALICE, "dateCreated": "1700000000",
            "oldValue": {"projectPHID": CPT, "columnPHIDs": [CPT_INBOX]},
            "newValue": {"projectPHID": CPT, "columnPHIDs": [CPT_DOING]}, "meta": {}}
    tl = timeline_from_legacy("PHID-TASK-x", 1, [item])
    assert [(e.board_phid, e.from_column_phids, e.column_phid) for e in tl.moves()] == [(CPT, (CPT_INBOX,), CPT_DOING)]


# -- legacy == transaction.search --------------------------------------------------------------


@pytest.mark.parametrize("task_id, phid, name", [(4, T4, "T4-gw502-full"), (15, T15, "T15-payments-full")])
def test_legacy_equals_transaction_search(task_id, phid, name):
    legacy = result("maniphest.gettasktransactions")
    ts = timeline_from_transaction_search(phid, task_id, ts_items(name))
    old = timeline_from_legacy(phid, task_id, legacy[str(task_id)])
    assert old.events == ts.events  # field by field, in the same order
    assert old == ts
    assert len(ts.events) == len(ts_items(name))  # every recorded transaction became one event here


@pytest.mark.parametrize("task_id, phid, name", [(4, T4, "T4-gw502-full"), (15, T15, "T15-payments-full")])
def test_the_rows_the_sync_stores_are_the_timelines_events(task_id, phid, name):
    """The sync stores EventRows as they are (no Event built): field for field the Timeline's events,
    in its order, and the cache text is the same either way."""
    from dataclasses import fields

    from clinicbot.phab.history import rows_from_legacy, rows_from_transaction_search
    from clinicbot.state.cache_rows import dump_timeline, load_timeline

    for rows in (rows_from_transaction_search(phid, task_id, ts_items(name)),
                 rows_from_legacy(phid, task_id, result("maniphest.gettasktransactions")[str(task_id)])):
        timeline = rows.timeline()
        names = [f.name for f in fields(Event)]
        assert [dict(zip(names, r)) for r in rows.rows] == [
            {n: (getattr(e, n).timestamp() if n == "at" else getattr(e, n)) for n in names} for e in timeline.events]
        assert timeline == timeline_from_transaction_search(phid, task_id, ts_items(name))
        assert dump_timeline(rows) == dump_timeline(timeline)
        assert load_timeline(phid, task_id, dump_timeline(rows)) == timeline


def test_odd_but_valid_transaction_shapes_still_go_through_the_checks():
    """The quick path takes ids and epochs as numbers or digit strings; the rest is Shape's (a
    negative epoch is a date before 1970, a huge one a shape error naming the transaction)."""
    from clinicbot.errors import ConduitShapeError

    base = {"transactionID": "9", "transactionType": "core:create", "authorPHID": ALICE, "meta": {}}
    assert timeline_from_legacy(T4, 4, [{**base, "dateCreated": -60}]).events[0].at == utc(-60)
    assert timeline_from_legacy(T4, 4, [{**base, "dateCreated": "1700000000"}]).events[0].at == utc(1700000000)
    with pytest.raises(ConduitShapeError, match="transaction 9 dateCreated"):
        timeline_from_legacy(T4, 4, [{**base, "dateCreated": 10**20}])
    with pytest.raises(ConduitShapeError, match="authorPHID"):
        timeline_from_legacy(T4, 4, [{**base, "dateCreated": 5, "authorPHID": "alice"}])


# -- derived answers on hand-built timelines ---------------------------------------------------

NOW = datetime(2026, 11, 22, 3, 25, tzinfo=timezone.utc)
BOT, AUTHOR, TEAM1, TEAM2, OUTSIDER = ("PHID-USER-bot", "PHID-USER-author", "PHID-USER-team1",
                                       "PHID-USER-team2", "PHID-USER-outsider")
TASK = "PHID-TASK-hand"


def ev(kind: str, days_ago: float, author: str | None = TEAM1, xid: int | None = None, **kw: Any) -> Event:
    return Event(kind=kind, at=NOW - timedelta(days=days_ago), author_phid=author, xaction_id=xid, **kw)


def tl(*events: Event, structured: bool = True) -> Timeline:
    return Timeline(TASK, 1, tuple(events), structured_columns=structured)


def col(days_ago: float, column: str, frm: tuple[str, ...] = (), board: str = CPT, author: str = TEAM1) -> Event:
    return ev("column", days_ago, author, board_phid=board, column_phid=column, from_column_phids=frm)


def test_timeline_sorts_hand_built_events_stably():
    a = ev("commented", 1, xid=7, text="a")
    b = ev("status", 1, xid=6, old="open", new="stalled")
    c = ev("created", 5, xid=1)
    assert tl(a, b, c).events == (c, b, a)


class TestColumnEnteredAt:
    def test_last_move_into_the_column(self):
        t = tl(ev("created", 10), col(10, CPT_INBOX), col(6, CPT_DOING, (CPT_INBOX,)), col(4, CPT_WFR, (CPT_DOING,)),
               col(3, CPT_DOING, (CPT_WFR,)))
        assert t.column_entered_at(CPT, CPT_DOING) == (NOW - timedelta(days=3), False)

    def test_reorder_within_the_column_is_not_an_entry(self):
        t = tl(ev("created", 10), col(10, CPT_INBOX), col(6, CPT_DOING, (CPT_INBOX,)), col(1, CPT_DOING, (CPT_DOING,)))
        assert t.column_entered_at(CPT, CPT_DOING) == (NOW - timedelta(days=6), False)
        assert [e.at for e in t.moved_into(CPT, CPT_DOING)] == [NOW - timedelta(days=6)]

    def test_moves_on_other_boards_do_not_count(self):
        t = tl(ev("created", 10), col(10, CPT_INBOX), col(2, CLINIC_READY, (CLINIC_INBOX,), board=CLINIC))
        assert t.column_entered_at(CPT, CPT_INBOX) == (NOW - timedelta(days=10), False)

    def test_tagged_not_moved_uses_tag_time(self):
        t = tl(ev("created", 10), ev("projects", 4, old=(), new=(INFRA,)))
        assert t.column_entered_at(INFRA, INFRA_BACKLOG) == (NOW - timedelta(days=4), False)
        # a caller-supplied tag time wins when later (e.g. the history was cut short)
        assert t.column_entered_at(INFRA, INFRA_BACKLOG, tagged_at=NOW - timedelta(days=2)) == (
            NOW - timedelta(days=2), False)

    def test_never_moved_nor_tagged_uses_creation(self):
        t = tl(ev("created", 10, AUTHOR))
        assert t.column_entered_at(CPT, CPT_INBOX) == (NOW - timedelta(days=10), False)
        assert tl().column_entered_at(CPT, CPT_INBOX) is None

    def test_retagged_after_the_move(self):
        t = tl(ev("created", 10), col(10, CPT_INBOX), ev("projects", 5, old=(CPT,), new=()),
               ev("projects", 3, old=(), new=(CPT,)))
        assert t.column_entered_at(CPT, CPT_INBOX) == (NOW - timedelta(days=3), False)

    def test_current_column_disagrees_with_last_move(self):
        t = tl(ev("created", 10), col(10, CPT_INBOX), col(6, CPT_DOING, (CPT_INBOX,)))
        assert t.column_entered_at(CPT, CPT_READY) == (NOW - timedelta(days=6), True)
        seen = {(TASK, CPT, CPT_READY): NOW - timedelta(days=1)}
        assert t.column_entered_at(CPT, CPT_READY, sightings=seen) == (NOW - timedelta(days=1), True)

    def test_unstructured_server_uses_sightings(self):
        t = tl(ev("created", 30), ev("projects", 30, old=(), new=(CPT,)), ev("commented", 2, text="x"),
               structured=False)
        seen = {(TASK, CPT, CPT_DOING): NOW - timedelta(days=5), (TASK, CPT, CPT_INBOX): NOW - timedelta(days=29)}
        assert t.column_entered_at(CPT, CPT_DOING, sightings=seen) == (NOW - timedelta(days=5), True)
        # no sighting: the tag time, a lower bound, flagged approximate
        assert t.column_entered_at(CPT, CPT_READY, sightings=seen) == (NOW - timedelta(days=30), True)
        assert t.column_entered_at(CPT, CPT_READY) == (NOW - timedelta(days=30), True)
        # a sighting older than a later re-tag cannot be right: the tag time wins
        later_tag = NOW - timedelta(days=3)
        assert t.column_entered_at(CPT, CPT_DOING, sightings=seen, tagged_at=later_tag) == (later_tag, True)
        assert tl(structured=False).column_entered_at(CPT, CPT_DOING, sightings=seen) == (NOW - timedelta(days=5), True)
        assert tl(structured=False).column_entered_at(CPT, CPT_DOING) is None

    def test_recorded_t4(self, t4):
        assert t4.column_entered_at(CPT, CPT_WFD) == (utc(1792846895), False)
        assert t4.column_entered_at(INFRA, INFRA_BACKLOG) == (utc(1792846895), False)  # tagged by dave (81)
        assert t4.moved_into(CPT, CPT_WFD)[0].author_phid == DAVE


class TestFirstResponse:
    created = NOW - timedelta(days=10)

    def timeline(self) -> Timeline:
        return tl(
            ev("created", 10, AUTHOR, xid=1),
            ev("priority", 10, AUTHOR, xid=2, old=90, new=50),  # in the creation edit, by the author
            ev("subscribers", 9, TEAM1, xid=3, old=(), new=(TEAM1,)),  # subscribing is not a response
            ev("commented", 8, BOT, xid=4, text="clinicbot: nobody looked at this yet"),
            ev("commented", 7, AUTHOR, xid=5, text="any news?"),
            ev("points", 6.5, TEAM1, xid=6, old=None, new=3.0),  # points are not a response
            ev("commented", 6, "PHID-APPS-PhabricatorHeraldApplication", xid=7, text="herald"),
            ev("commented", 5, OUTSIDER, xid=8, text="me too"),
            col(4, CPT_READY, (CPT_INBOX,), author=TEAM2),
            ev("owner", 3, TEAM1, xid=10, old=None, new=TEAM1),
        )

    def test_first_non_excluded_human(self):
        r = self.timeline().first_response(self.created, exclude={AUTHOR, BOT})
        assert (r.kind, r.author_phid, r.text) == ("commented", OUTSIDER, "me too")

    def test_only_responders_count(self):
        r = self.timeline().first_response(self.created, exclude={AUTHOR, BOT}, responders={TEAM1, TEAM2})
        assert (r.kind, r.author_phid, r.at) == ("column", TEAM2, NOW - timedelta(days=4))

    def test_strictly_after(self):
        t = self.timeline()
        at_move = NOW - timedelta(days=4)
        r = t.first_response(at_move, exclude={AUTHOR, BOT}, responders={TEAM1, TEAM2})
        assert (r.kind, r.at) == ("owner", NOW - timedelta(days=3))
        assert t.first_response(NOW - timedelta(days=3), exclude={AUTHOR, BOT}) is None

    def test_bot_comment_is_not_a_response(self):
        t = tl(ev("created", 3, AUTHOR), ev("commented", 2, BOT, text="ping"))
        assert t.first_response(NOW - timedelta(days=3), exclude={AUTHOR, BOT}) is None
        assert t.first_response(NOW - timedelta(days=3), exclude={AUTHOR}).author_phid == BOT

    def test_reorder_is_not_a_response(self):
        t = tl(ev("created", 3, AUTHOR), col(2, CPT_INBOX, (CPT_INBOX,), author=TEAM1))
        assert t.first_response(NOW - timedelta(days=3), exclude={AUTHOR}) is None

    def test_recorded_t4(self, t4):
        r = t4.first_response(t4.created_at(), exclude={DAVE})
        assert (r.xaction_id, r.kind, r.author_phid, r.at) == (43, "commented", CAROL, utc(1792380335))
        r = t4.first_response(t4.created_at(), exclude={DAVE}, responders={ADMIN, ALICE})
        assert (r.xaction_id, r.kind, r.author_phid) == (44, "column", ADMIN)


class TestActivity:
    def test_last_activity_skips_excluded_and_subscriptions(self):
        t = tl(ev("created", 10, AUTHOR), ev("commented", 5, TEAM1, text="x"), ev("title", 4, AUTHOR, old="a", new="b"),
               ev("subscribers", 2, OUTSIDER, old=(), new=(OUTSIDER,)), ev("commented", 1, BOT, text="nag"))
        assert t.last_activity(exclude={BOT}).at == NOW - timedelta(days=4)
        assert t.last_activity(exclude={BOT, AUTHOR}).at == NOW - timedelta(days=5)
        assert t.last_activity(exclude={BOT, AUTHOR, TEAM1}) is None
        assert t.last_activity(exclude=set()).author_phid == BOT

    def test_last_comment(self):
        t = tl(ev("commented", 5, TEAM1, text="human"), ev("status", 3, TEAM2, old="open", new="stalled"),
               ev("commented", 1, BOT, text="bot"))
        assert t.last_comment(exclude={BOT}).text == "human"
        assert t.last_comment(exclude=set()).text == "bot"
        assert tl().last_comment(exclude=set()) is None

    def test_recorded_t4(self, t4):
        assert t4.last_activity(exclude=set()).xaction_id == 81  # dave tagged Infrastructure Releases
        assert t4.last_activity(exclude={DAVE}).xaction_id == 79
        assert t4.last_comment(exclude={CAROL}).xaction_id == 68


# -- fetch_timelines ---------------------------------------------------------------------------


class FakeClient:
    """Enough of ConduitClient: call/search/has_method over recorded histories.

    transaction.search pages like the real server (newest first, ``after`` = the id of the last
    item of the page, at most ``page_size`` items); ``search`` follows the cursor through ``call``
    as ConduitClient.search does. Counts calls and the most calls in flight at once.
    """

    def __init__(self, histories: dict[str, list[dict]], legacy: dict[str, list[dict]], *,
                 methods=("transaction.search", "maniphest.gettasktransactions"), page_size=100,
                 delay=0.0, fail: dict[str, Exception] | None = None):
        self.histories, self.legacy, self.methods = histories, legacy, set(methods)
        self.page_size, self.delay, self.fail = page_size, delay, fail or {}
        self.calls: list[tuple[str, dict]] = []
        self.threads: set[int] = set()
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0

    def has_method(self, name: str) -> bool:
        return name in self.methods

    def call(self, method: str, **params: Any) -> Any:
        with self.lock:
            self.calls.append((method, params))
            self.threads.add(threading.get_ident())
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)
            return self._answer(method, params)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _answer(self, method: str, params: dict) -> Any:
        if method == "maniphest.gettasktransactions":
            if "batch" in self.fail:
                raise self.fail["batch"]
            answer = {str(i): self.legacy[str(i)] for i in params["ids"] if str(i) in self.legacy}
            return answer or []  # PHP: an empty map is encoded as []
        assert method == "transaction.search"
        phid = params["objectIdentifier"]
        if phid in self.fail:
            raise self.fail[phid]
        if phid not in self.histories:
            raise ConduitAPIError(method, "ERR-INVALID-OBJECT-PHID", 'Specified "objectIdentifier" does not exist.')
        items = sorted(self.histories[phid], key=lambda x: -x["id"])
        if "after" in params:
            items = [x for x in items if x["id"] < int(params["after"])]
        limit = min(params.get("limit", 100), self.page_size)
        page = items[:limit]
        after = str(page[-1]["id"]) if len(items) > limit else None
        return {"data": page, "cursor": {"limit": limit, "after": after, "before": None}}

    def search(self, method: str, *, constraints=None, attachments=None, order=None, limit=100, **extra):
        params = dict(extra, limit=limit)
        while True:
            answer = self.call(method, **params)
            yield from answer["data"]
            if answer["cursor"]["after"] is None:
                return
            params["after"] = answer["cursor"]["after"]

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.calls if m == method)


def recorded_client(**kw: Any) -> FakeClient:
    return FakeClient({T4: ts_items("T4-gw502-full"), T15: ts_items("T15-payments-full")},
                      result("maniphest.gettasktransactions"), **kw)


TASKS = [(4, T4), (15, T15), (9999, "PHID-TASK-gone")]


def test_fake_server_pages_like_the_recorded_server():
    client = recorded_client(page_size=5)
    first = client.call("transaction.search", objectIdentifier=T4, limit=5)
    second = client.call("transaction.search", objectIdentifier=T4, limit=5, after=first["cursor"]["after"])
    assert first["data"] == ts_items("paging-limit5-page1") and first["cursor"]["after"] == "68"
    assert second["data"] == ts_items("paging-limit5-page2") and second["cursor"]["after"] == "54"


def test_both_paths_give_equal_timelines_and_drop_missing_tasks():
    batch_client, search_client = recorded_client(), recorded_client()
    batch = fetch_timelines(batch_client, TASKS, use_batch=True)
    per_task = fetch_timelines(search_client, TASKS, use_batch=False)
    assert set(batch) == set(per_task) == {T4, T15}  # 9999 is unknown to the server: left out
    assert batch == per_task
    assert batch[T4] == timeline_from_transaction_search(T4, 4, ts_items("T4-gw502-full"))
    assert batch_client.count("maniphest.gettasktransactions") == 1 and batch_client.count("transaction.search") == 0
    assert search_client.count("transaction.search") == 3 and search_client.count("maniphest.gettasktransactions") == 0


def test_auto_picks_batch_when_available():
    client = recorded_client()
    fetch_timelines(client, TASKS)
    assert client.count("maniphest.gettasktransactions") == 1
    client = recorded_client(methods=("transaction.search",))
    assert set(fetch_timelines(client, TASKS)) == {T4, T15}
    assert client.count("transaction.search") == 3 and client.count("maniphest.gettasktransactions") == 0


@pytest.mark.parametrize("n, batch_size, calls", [(1, 100, 1), (100, 100, 1), (101, 100, 2), (250, 100, 3), (7, 3, 3)])
def test_batch_makes_ceil_n_over_batch_size_calls(n, batch_size, calls):
    client = recorded_client()
    tasks = [(4, T4), (15, T15)] + [(1000 + i, f"PHID-TASK-{i}") for i in range(n - 2)] if n >= 2 else [(4, T4)]
    got = fetch_timelines(client, tasks, use_batch=True, batch_size=batch_size)
    assert client.count("maniphest.gettasktransactions") == calls
    sent = [p["ids"] for m, p in client.calls]
    assert all(len(ids) <= batch_size for ids in sent) and sorted(i for ids in sent for i in ids) == sorted(
        i for i, _ in tasks)
    assert set(got) == ({T4, T15} if n >= 2 else {T4})


def test_batch_answer_with_no_known_task_is_an_empty_list():
    client = recorded_client()
    assert fetch_timelines(client, [(9998, "PHID-TASK-a"), (9999, "PHID-TASK-b")], use_batch=True) == {}
    assert fetch_timelines(client, [], use_batch=True) == {} and client.count("maniphest.gettasktransactions") == 1


def test_search_path_pages_and_counts_calls():
    client = recorded_client(page_size=5)
    got = fetch_timelines(client, [(4, T4), (15, T15)], use_batch=False, concurrency=1)
    # T4 has 27 transactions -> 6 pages; T15 has 23 -> 5 pages
    assert client.count("transaction.search") == 11
    assert got[T4] == timeline_from_transaction_search(T4, 4, ts_items("T4-gw502-full"))
    assert all(p["limit"] == 100 for _, p in client.calls)  # asks for the most; the server caps


def test_search_path_respects_concurrency():
    histories = {f"PHID-TASK-{i}": [dict(x, objectPHID=f"PHID-TASK-{i}") for x in ts_items("T15-payments-full")]
                 for i in range(12)}
    tasks = [(i, f"PHID-TASK-{i}") for i in range(12)]
    client = FakeClient(histories, {}, delay=0.02)
    got = fetch_timelines(client, tasks, use_batch=False, concurrency=4)
    assert 2 <= client.max_in_flight <= 4
    assert list(got) == [p for _, p in tasks]  # input order whatever order threads finished in
    assert got["PHID-TASK-3"].task_id == 3

    client = FakeClient(histories, {}, delay=0.005)
    sequential = fetch_timelines(client, tasks, use_batch=False, concurrency=1)
    assert client.max_in_flight == 1 and client.threads == {threading.get_ident()}
    assert sequential == got


def test_errors_name_the_task():
    boom = ConduitTransportError("transaction.search", "no answer within 30 s", attempts=5)
    client = recorded_client(fail={T15: boom})
    with pytest.raises(TaskHistoryError) as info:
        fetch_timelines(client, TASKS, use_batch=False, concurrency=2)
    err = info.value
    assert isinstance(err, ConduitError) and err.exit_code == 3
    assert err.task_ids == (15,) and err.cause is boom and "T15" in str(err) and "no answer" in str(err)

    api = ConduitAPIError("maniphest.gettasktransactions", "ERR-CONDUIT-CORE", "boom")
    client = recorded_client(fail={"batch": api})
    with pytest.raises(TaskHistoryError) as info:
        fetch_timelines(client, TASKS, use_batch=True)
    assert info.value.code == "ERR-CONDUIT-CORE" and "T4, T15, T9999" in str(info.value)


def test_with_the_real_client_over_a_fake_transport():
    """ConduitClient.search really pages this through cursor.after (server page size 5 here)."""
    full = {T4: ts_items("T4-gw502-full")}
    server = FakeClient(full, {}, page_size=5)

    class Transport:
        def post(self, url: str, data: dict[str, str], timeout: float) -> HTTPAnswer:
            params = json.loads(data["params"])
            params.pop("__conduit__")
            try:
                res = server._answer(url.rsplit("/", 1)[1], params)
            except ConduitAPIError as exc:
                return HTTPAnswer(200, json.dumps({"result": None, "error_code": exc.code, "error_info": exc.info}))
            return HTTPAnswer(200, json.dumps({"result": res, "error_code": None, "error_info": None}))

        def close(self) -> None:
            pass

    client = ConduitClient("https://phab.example.org/", "api-" + "t" * 28, transport=Transport())
    got = fetch_timelines(client, [(4, T4), (9999, "PHID-TASK-gone")], use_batch=False)
    assert got == {T4: timeline_from_transaction_search(T4, 4, full[T4])}
    assert client.stats.calls["transaction.search"] == 6


# -- issue 11 point 6: wrong shapes in histories ---------------------------------------------------

from clinicbot.errors import ConduitShapeError  # noqa: E402
from clinicbot.phab.history import timeline_from_legacy as _legacy, timeline_from_transaction_search as _ts  # noqa: E402


@pytest.mark.parametrize("change,field", [
    ({"dateCreated": "yesterday"}, "dateCreated"),
    ({"dateCreated": None}, "dateCreated"),
    ({"authorPHID": 7}, "authorPHID"),
    ({"type": 12}, "type"),
    ({"fields": "status"}, "fields"),
])
def test_transaction_search_wrong_shape_is_a_shape_error(change, field):
    item = {"id": 5, "phid": "PHID-XACT-TASK-x", "type": "status", "authorPHID": "PHID-USER-a",
            "objectPHID": "PHID-TASK-a", "dateCreated": 1792363055, "dateModified": 1792363055,
            "groupID": "g", "comments": [], "fields": {"old": "open", "new": "stalled"}}
    assert _ts("PHID-TASK-a", 3, [item]).of_kind("status")
    item.update(change)
    with pytest.raises(ConduitShapeError) as info:
        _ts("PHID-TASK-a", 3, [item])
    assert info.value.object == "T3" and field in info.value.field and info.value.method == "transaction.search"


def test_legacy_wrong_shapes():
    with pytest.raises(ConduitShapeError):
        _legacy("PHID-TASK-a", 3, {"not": "a list"})
    with pytest.raises(ConduitShapeError):
        _legacy("PHID-TASK-a", 3, [{"transactionID": "9", "transactionType": "priority", "dateCreated": "x",
                                     "authorPHID": "PHID-USER-a", "oldValue": None, "newValue": "90"}])
    with pytest.raises(ConduitShapeError):
        _legacy("PHID-TASK-a", 3, [{"transactionID": "9", "transactionType": "priority", "dateCreated": "1792363055",
                                     "authorPHID": "PHID-USER-a", "oldValue": None, "newValue": "high-ish"}])
