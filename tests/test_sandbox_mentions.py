"""Mentions as Phorge finds them (clinicbot/sandbox/mentions.py) and what the sandbox makes of them."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from clinicbot.sandbox import Scenario
from clinicbot.sandbox.edges import destinations
from clinicbot.sandbox.mentions import find_mentions

HOST = "127.0.0.1"


@pytest.mark.parametrize("text, tasks", [
    # The recorded forms (maniphest.edit--comment-ref-*.json): edges for these four...
    ("Digest line: T35 needs triage.", [35]),
    ("Digest line: {T36} needs triage.", [36]),
    ("Digest line: T39 (Scratch recording: a title) needs triage.", [39]),
    ("Digest line: http://127.0.0.1:19280/T41 needs triage.", [41]),
    # ...and none for these five.
    ("Digest line: [[ /T37 | T37 ]] needs triage.", []),
    ("Digest line: [[ http://127.0.0.1:19280/T38 | T38 ]] needs triage.", []),
    ("Digest line: `T40` needs triage.", []),
    ("%%%T42%%%", []),
    ("Digest line: T\u200b43 needs triage.", []),
    # Phorge's rules beyond the recordings (read from its sources).
    ("%%%T1%%% — please triage.\nT2", []),  # a literal block runs until a line ending in %%%
    ("See %%%T3%%% today.", [3]),  # %%% inside a line is no literal (recorded for rendering)
    ("##T4## and ``T5``", []),
    ("`x`T6", []),  # the stored token ends in "Z": no word boundary before T6
    ("  indented T7\npara T8", [8]),
    ("```\nT9\n```\nT10", [10]),
    ("> quoted T11\n> %%%T12%%%", [11]),
    ("- item T13", [13]),
    ("http://evil.example/T14 <http://127.0.0.1/T15> {http://127.0.0.1/t16} http://127.0.0.1/T17/x", [15, 16]),
    ("(see http://127.0.0.1/T18).", [18]),
    ("[T19](http://127.0.0.1/T19) xT20 T21x #T22 @T23 -T24 T0 T025", []),
])
def test_task_mentions_follow_phorge(text, tasks):
    assert find_mentions(text, HOST).tasks == tasks


def test_user_mentions_follow_phorge():
    text = "cc @Bob, @carol. mail@example.com `@dave` @@erin [[ /p/frank | @frank ]] %%%@gina%%%"
    # %%%…%%% inside a line is no literal: @gina stays live (recorded for rendering).
    assert find_mentions(text, HOST).users == ["bob", "carol", "gina"]
    assert find_mentions("@\u200balice", HOST).users == []


@pytest.fixture
def store():
    users = [{"id": 1, "phid": "PHID-USER-aaaaaaaaaaaaaaaaaaaa", "username": "admin", "admin": True},
             {"id": 2, "phid": "PHID-USER-bbbbbbbbbbbbbbbbbbbb", "username": "alice"},
             {"id": 3, "phid": "PHID-USER-cccccccccccccccccccc", "username": "clinicbot", "bot": True},
             {"id": 4, "phid": "PHID-USER-dddddddddddddddddddd", "username": "otherbot", "bot": True}]
    store = Scenario(now=datetime(2026, 11, 1, tzinfo=timezone.utc), users=users).build_store()
    for i in range(3):
        store.edit(None, "admin", [("title", f"task {i + 1}")], at=store.now)
    return store


def test_a_comment_mention_makes_the_edge_pair_and_touches_the_target(store):
    task, written = store.edit(1, "clinicbot", [("comment", "T2 and {T2}, T1 itself, T99 unknown")],
                               at=store.now + 60)
    assert [x.type for x in written] == ["core:edge", "core:comment"]  # 2 transactions, no subscription
    assert task.mentions == [store.task(2).phid] and store.task(2).mentioned_in == [task.phid]
    assert store.task(2).date_modified == store.now + 60 and store.task(3).date_modified == store.now
    assert store.task(2).xactions[-1].author == store.user("clinicbot").phid
    assert store.user("clinicbot").phid not in task.subscribers  # a bot commenting is not subscribed
    assert destinations(task, "mention") == [store.task(2).phid]
    # The same reference again makes nothing new.
    _, again = store.edit(1, "clinicbot", [("comment", "T2 again")], at=store.now + 120)
    assert [x.type for x in again] == ["core:comment"]


def test_a_description_mentions_on_create_and_edit(store):
    task, _ = store.edit(None, "admin", [("title", "new"), ("description", "Follows T1.")], at=store.now)
    assert task.mentions == [store.task(1).phid]
    store.edit(task.id, "admin", [("description", "Follows T1 and T3.")], at=store.now + 5)
    assert task.mentions == [store.task(1).phid, store.task(3).phid]


def test_mentioned_bots_and_owner_are_not_subscribed(store):
    store.edit(1, "admin", [("owner", store.user("alice").phid)], at=store.now)
    task, _ = store.edit(1, "admin", [("comment", "@alice @otherbot please")], at=store.now + 1)
    assert store.user("alice").phid not in task.subscribers
    assert store.user("otherbot").phid not in task.subscribers


def test_a_wiki_page_listing_tasks_mentions_them(store):
    admin = store.user("admin")
    store.phriction_create(admin, "/", "Root", "root", "", store.now)
    doc = store.phriction_create(admin, "report", "Report", "| T1 | `T2` |", "", store.now + 10)
    assert doc.mentions == [store.task(1).phid] and store.task(1).date_modified == store.now + 10
    assert len(store.xactions_of(doc.phid)) == 3  # title, content, the mention edge (recorded)
    store.phriction_edit(admin, "report/", None, "T1 and T3", None, store.now + 20)
    assert len(store.xactions_of(doc.phid)) == 5 and doc.mentions == [store.task(1).phid, store.task(3).phid]
