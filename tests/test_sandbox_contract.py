"""Contract tests: replay every recorded Conduit call against the sandbox and compare shapes.

The sandbox starts from ``fixtures/scenario-recorded.yaml`` (the recorded server's seed
state, same ids and PHIDs). Read-only recordings run against one shared sandbox; the
recordings that changed the server (maniphest.edit, phriction.*) and the reads taken after
them are replayed in the order they happened on the real server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from shapes import shape_diff

from clinicbot.sandbox import Sandbox, load_scenario
from clinicbot.sandbox import methods as sandbox_methods

FIXTURES = Path(__file__).parent / "fixtures"
RECORDINGS = FIXTURES / "conduit"
ADMIN_TOKEN = "api-" + "a" * 27 + "1"
ALICE_TOKEN = "api-" + "b" * 27 + "2"
ERIN_TOKEN = "api-" + "c" * 27 + "3"
ACTING = {None: ADMIN_TOKEN, "alice": ALICE_TOKEN, "erin": ERIN_TOKEN}

# Calls that changed the real server, and reads taken in between, in the order they ran.
SEQUENCE = [
    "maniphest.edit--comment",
    "maniphest.edit--empty-comment-noop",
    "maniphest.edit--move-column",
    "maniphest.edit--change-priority",
    "maniphest.edit--no-op-same-priority",
    "maniphest.edit--set-owner",
    "maniphest.edit--claim-as-self-erin",
    "maniphest.edit--multi-status-points-subscribers",
    "transaction.search--after-edits-stalecount",
    "transaction.search--null-type-mention",
    "maniphest.edit--create-task",
    "maniphest.edit--column-on-untagged-board",
    "maniphest.search--after-column-on-untagged-board",
    "maniphest.edit--unconfigured-status-ACCEPTED",
    "maniphest.search--task-with-unconfigured-status",
    "transaction.search--unconfigured-status-xaction",
    "maniphest.status.search--after-unconfigured-status",
    "error--phriction.create-parent-missing-root",
    "error--phriction.create-parent-missing-nested",
    "phriction.create--root-document",
    "phriction.create--team-page",
    "error--phriction.create-nested-missing-intermediate",
    "phriction.create--intermediate-page",
    "phriction.create--nested-report",
    "phriction.create--slug-normalization",
    "phriction.create--already-exists",
    "phriction.edit--title-only",
    "phriction.edit--no-change",
    "phriction.edit--update-content",
    "error--phriction.edit-missing-page",
    "phriction.info",
    "phriction.history",
    "phriction.document.search--all",
    "phriction.document.search--ancestorPaths",
    "phriction.document.search--paths",
    "phriction.content.search--documentPHIDs",
    "transaction.search--phriction-document",
    "error--phriction.document.edit-content-type-unsupported",
]
# Recordings whose result is compared differently (see the tests below).
SPECIAL = {"conduit.query--full", "conduit.query"}


def _all() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(RECORDINGS.glob("*.json"))}


ALL = _all()
IMPLEMENTED = set(sandbox_methods.METHODS)


def replayable(name: str) -> bool:
    rec = ALL[name]
    return rec["method"] in IMPLEMENTED or rec["response"]["error_code"] == "ERR-CONDUIT-CALL"


READ_ONLY = [n for n in ALL if n not in SEQUENCE and n not in SPECIAL and replayable(n)]
NOT_REPLAYED = sorted(n for n in ALL if not replayable(n))


@pytest.fixture(scope="module")
def scenario():
    return load_scenario(FIXTURES / "scenario-recorded.yaml")


def start(scenario) -> Sandbox:
    sb = Sandbox(scenario=scenario)
    for user, token in ACTING.items():
        sb.add_token(token, user or "admin")
    sb.start()
    return sb


@pytest.fixture(scope="module")
def seed_sandbox(scenario):
    sb = start(scenario)
    yield sb
    sb.stop()


def replay(sb: Sandbox, rec: dict[str, Any], phids: dict[str, str] | None = None) -> requests.Response:
    """Send a recorded request as recorded (same encoding), with the sandbox's token."""
    token = ACTING[rec.get("acting_user")]
    url = f"{sb.url}api/{rec['method']}"
    if rec["request_encoding"].startswith("HTTP GET"):
        return requests.get(url, timeout=10)
    fields = rec.get("request_form_fields")
    if fields is None:  # error--params-not-json: the raw text was sent as "params"
        fields = [["params", rec["request_params"]]]
    out = []
    for key, value in fields:
        value = value.replace("api-REDACTED", token)
        for recorded, ours in (phids or {}).items():
            value = value.replace(recorded, ours)
        out.append((key, value))
    return requests.post(url, data=out, timeout=10)


def check(rec: dict[str, Any], resp: requests.Response) -> dict[str, Any]:
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    body = resp.json()
    expected = rec["response"]
    assert body["error_code"] == expected["error_code"], body
    assert body["error_info"] == expected["error_info"]
    problems = shape_diff(expected["result"], body["result"])
    assert not problems, "\n".join(problems)
    if rec["method"] == "maniphest.edit" and expected["result"]:
        # Same number of transactions written (no-ops dropped, side effects added).
        assert len(body["result"]["transactions"]) == len(expected["result"]["transactions"])
    for header in ("X-Conduit-Capabilities", "Cache-Control"):
        if header in rec.get("response_headers", {}):
            assert resp.headers[header] == rec["response_headers"][header]
    return body


@pytest.mark.parametrize("name", READ_ONLY)
def test_recorded_read_has_the_recorded_shape(seed_sandbox, name):
    check(ALL[name], replay(seed_sandbox, ALL[name]))


def test_recorded_edits_and_later_reads_replay_in_order(scenario):
    sb = start(scenario)
    phids: dict[str, str] = {}  # PHIDs the real server gave new objects -> the sandbox's
    try:
        for name in SEQUENCE:
            rec = ALL[name]
            body = check(rec, replay(sb, rec, phids))
            result, expected = body["result"], rec["response"]["result"]
            if rec["method"] == "phriction.create" and result:
                phids[expected["phid"]] = result["phid"]
            if name == "maniphest.edit--create-task":
                phids[expected["object"]["phid"]] = result["object"]["phid"]
                assert result["object"]["id"] == expected["object"]["id"] == 28
    finally:
        sb.stop()
    # The edits did to the store what they did to the real server.
    store = sb.store
    t26 = store.task(26)
    assert t26.status == "wontfix" and t26.owner == store.user("erin").phid and t26.points == 2
    assert store.column_of(26, "Clinic Duty Team") == "Ready"
    assert store.column_of(28, "Core Platform Team") == "Inbox" and store.column_of(28, "Clinic Duty Team") is None
    assert store.user("carol").phid in t26.subscribers and store.user("erin").phid in t26.subscribers
    assert store.task(18).phid in t26.mentions and t26.phid in store.task(18).mentions


def test_conduit_query_lists_implemented_methods_with_the_recorded_texts(seed_sandbox):
    rec = ALL["conduit.query--full"]
    body = replay(seed_sandbox, rec).json()
    assert body["error_code"] is None
    recorded = rec["response"]["result"]
    assert set(body["result"]) == IMPLEMENTED
    for name, doc in body["result"].items():
        assert doc == recorded[name]


def test_gettasktransactions_can_be_switched_off(scenario):
    sb = start(scenario)
    try:
        sb.store.features["gettasktransactions"] = False
        rec = ALL["maniphest.gettasktransactions"]
        body = replay(sb, rec).json()
        assert body["error_code"] == "ERR-CONDUIT-CALL"
        assert body["error_info"] == 'Conduit API method "maniphest.gettasktransactions" does not exist.'
        listed = replay(sb, ALL["conduit.query--full"]).json()["result"]
        assert "maniphest.gettasktransactions" not in listed and "transaction.search" in listed
    finally:
        sb.stop()


def test_old_servers_hide_column_moves_from_transaction_search(scenario):
    sb = start(scenario)
    try:
        sb.store.features["structured_column_transactions"] = False
        body = replay(sb, ALL["transaction.search--T4-gw502-full"]).json()["result"]
        moves = [x for x in body["data"] if x["id"] in (41, 44, 49, 67, 80)]
        assert moves and all(x["type"] is None and x["fields"] == {} for x in moves)
        # The legacy method still names them.
        legacy = replay(sb, ALL["maniphest.gettasktransactions"]).json()["result"]["4"]
        assert [x["transactionType"] for x in legacy if x["transactionID"] == "80"] == ["core:columns"]
    finally:
        sb.stop()


def test_recorded_histories_come_back_verbatim(seed_sandbox):
    """T4/T12/T15 were copied into the scenario transaction for transaction."""
    for name in ("transaction.search--T4-gw502-full", "transaction.search--T12-avatar-full",
                 "transaction.search--T15-payments-full", "transaction.search--paging-limit5-page2"):
        rec = ALL[name]
        assert replay(seed_sandbox, rec).json()["result"] == rec["response"]["result"], name
    rec = ALL["maniphest.gettasktransactions"]
    got = replay(seed_sandbox, rec).json()["result"]
    expected = rec["response"]["result"]
    assert list(got) == list(expected) == ["15", "6", "4"]
    for task_id in expected:
        for ours, theirs in zip(got[task_id], expected[task_id]):
            assert {k: v for k, v in ours.items() if k != "title"} == {k: v for k, v in theirs.items() if k != "title"}
    titles = {x["transactionID"]: x["title"] for x in got["4"]}
    assert titles["44"] == "admin moved this task from Inbox to Triage Meeting Inbox on the Core Platform Team board."
    assert titles["48"] == "alice claimed this task."


def test_not_replayed_recordings_are_methods_the_sandbox_does_not_offer():
    # feed.query, differential.*, phid.info/query and the legacy *.query methods are not used by clinicbot.
    assert {ALL[n]["method"] for n in NOT_REPLAYED} <= {
        "feed.query", "differential.revision.search", "phid.info", "phid.query", "project.query", "user.query",
        "maniphest.query"}


def test_recorded_scenario_fixture_is_up_to_date(scenario):
    """The fixture is generated: python -m clinicbot.sandbox.recorded tests/fixtures/conduit <fixture>."""
    from clinicbot.sandbox.recorded import build_recorded_scenario

    fresh = build_recorded_scenario(RECORDINGS)
    assert json.loads(json.dumps(fresh.to_data())) == json.loads(json.dumps(scenario.to_data()))
    ids = {t["id"] for t in scenario.tasks}
    assert ids == set(range(1, 28))  # the seed state: T28 is created by maniphest.edit--create-task


SEARCHES = [n for n in READ_ONLY if not ALL[n]["response"]["error_code"]
            and isinstance(ALL[n]["response"]["result"], dict) and "cursor" in ALL[n]["response"]["result"]]


@pytest.mark.parametrize("name", SEARCHES)
def test_recorded_searches_return_the_recorded_data(seed_sandbox, name):
    """Beyond shapes: same seed state, so the same objects, in the same order, with the same cursors."""
    rec = ALL[name]
    got = replay(seed_sandbox, rec).json()["result"]
    expected = rec["response"]["result"]
    if name == "user.search--all":  # the scenario adds the clinicbot account (newest user)
        assert got["data"][0]["fields"]["username"] == "clinicbot"
        got["data"] = got["data"][1:]
    assert got == expected
