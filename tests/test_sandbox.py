"""The sandbox server: protocol, auth, searches and paging, edits, faults, latency, counters."""

from __future__ import annotations

import gzip
import json
import time
from datetime import datetime, timezone
from typing import Any

import pytest
import requests

from clinicbot.sandbox import DEFAULT_TOKEN, Sandbox, generate_scenario

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)
NOW_EPOCH = int(NOW.timestamp())


@pytest.fixture(scope="module")
def scenario():
    return generate_scenario(NOW, size=300)


@pytest.fixture(scope="module")
def shared(scenario):
    """A sandbox for read-only tests."""
    with Sandbox(scenario=scenario) as sb:
        yield sb


@pytest.fixture
def sb(scenario):
    """A fresh sandbox (tests that edit or add faults)."""
    sandbox = Sandbox(scenario=scenario, clock=lambda: NOW_EPOCH + 60)
    sandbox.start()
    yield sandbox
    sandbox.stop()


class Client:
    def __init__(self, sb: Sandbox, token: str | None = None, timeout: float = 10):
        self.sb, self.token, self.timeout = sb, token or sb.token, timeout
        self.session = requests.Session()

    def raw(self, method: str, **params: Any) -> dict[str, Any]:
        params["__conduit__"] = {"token": self.token}
        resp = self.session.post(f"{self.sb.url}api/{method}", timeout=self.timeout,
                                 data={"params": json.dumps(params), "output": "json", "__conduit__": "1"})
        assert resp.status_code == 200
        return resp.json()

    def __call__(self, method: str, **params: Any) -> Any:
        body = self.raw(method, **params)
        assert body["error_code"] is None, body
        return body["result"]

    def error(self, method: str, **params: Any) -> tuple[str, str]:
        body = self.raw(method, **params)
        assert body["result"] is None and body["error_code"], body
        return body["error_code"], body["error_info"]

    def all(self, method: str, **params: Any) -> list[dict[str, Any]]:
        items, after = [], None
        while True:
            page = self(method, **params, **({"after": after} if after else {}))
            items += page["data"]
            after = page["cursor"]["after"]
            if after is None:
                return items


def phid_of(sb: Sandbox, kind: str, name: str) -> str:
    store = sb.store
    if kind == "user":
        return store.user(name).phid
    if kind == "project":
        return store.project(name).phid
    board, col = name.split(":")
    return store.column(board, col).phid


# -- protocol and auth -------------------------------------------------------------------

def test_envelope_headers_and_keep_alive(shared):
    session = requests.Session()
    shared.stats.reset()
    for _ in range(50):
        resp = session.post(f"{shared.url}api/user.whoami",
                            data={"params": json.dumps({"__conduit__": {"token": shared.token}})})
        assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert int(resp.headers["Content-Length"]) == len(resp.content)
    assert resp.headers["X-Conduit-Capabilities"] == "gzip"
    assert resp.raw.version == 11  # HTTP/1.1
    assert set(resp.json()) == {"result", "error_code", "error_info"}
    assert shared.stats.requests["user.whoami"] == 50
    assert shared.stats.connections == 1
    assert shared.stats.connections_by_method == {"user.whoami": 1}


def test_default_token_is_the_bot_and_other_tokens_act_as_their_user(scenario):
    with Sandbox(scenario=scenario) as sb:
        me = Client(sb)("user.whoami")
        assert sb.token == DEFAULT_TOKEN and me["userName"] == "clinicbot" and "agent" in me["roles"]
        sb.add_token("api-" + "x" * 28, "alice")
        assert Client(sb, "api-" + "x" * 28)("user.whoami")["userName"] == "alice"
    with pytest.raises(ValueError):
        Sandbox(scenario=scenario, token="not-a-token")


def test_auth_errors_match_the_real_server(shared):
    assert Client(shared, "api-" + "z" * 28).error("user.whoami") == (
        "ERR-INVALID-AUTH", f'API token "api-{"z" * 28}" is not valid.')
    assert Client(shared, "short").error("user.whoami")[0] == "ERR-INVALID-AUTH"
    resp = requests.post(f"{shared.url}api/maniphest.search", data={"params": "{}"})
    assert resp.json() == {"result": None, "error_code": "ERR-INVALID-SESSION",
                           "error_info": "Session key is not present."}
    assert requests.get(f"{shared.url}api/conduit.ping").json()["error_code"] is None
    assert Client(shared).error("maniphest.frobnicate") == (
        "ERR-CONDUIT-CALL", 'Conduit API method "maniphest.frobnicate" does not exist.')


def test_php_form_encoding_and_gzip_bodies(shared):
    cpt = phid_of(shared, "project", "Core Platform Team")
    resp = requests.post(f"{shared.url}api/maniphest.search", data=[
        ("api.token", shared.token), ("constraints[projects][0]", cpt), ("constraints[statuses][0]", "open"),
        ("attachments[columns]", "1"), ("limit", "5")]).json()["result"]
    assert len(resp["data"]) == 5 and resp["cursor"]["limit"] == "5"
    assert all(cpt in t["attachments"]["columns"]["boards"] for t in resp["data"])
    body = gzip.compress(f"params={json.dumps({'__conduit__': {'token': shared.token}})}".encode())
    resp = requests.post(f"{shared.url}api/user.whoami", data=body, headers={
        "Content-Encoding": "gzip", "Content-Type": "application/x-www-form-urlencoded"})
    assert resp.json()["result"]["userName"] == "clinicbot"


# -- searches and paging -----------------------------------------------------------------

def test_paging_through_all_tasks(shared, scenario):
    c = Client(shared)
    shared.stats.reset()
    tasks = c.all("maniphest.search", limit=100)
    assert shared.stats.requests["maniphest.search"] == 3
    assert sorted(t["id"] for t in tasks) == list(range(1, 301))
    prios = [t["fields"]["priority"]["value"] for t in tasks]
    assert prios == sorted(prios, reverse=True)  # default order: priority, then newest
    assert c.error("maniphest.search", limit=101)[0] == "ERR-INVALID-PAGE-SIZE"
    assert c.error("maniphest.search", after="x") == ("ERR-CONDUIT-CORE", "Task IDs must be integer numbers.")


def test_after_and_before_cursors_walk_pages_both_ways(shared):
    c = Client(shared)
    p1 = c("maniphest.search", limit=7, order="updated")
    p2 = c("maniphest.search", limit=7, order="updated", after=p1["cursor"]["after"])
    assert isinstance(p1["cursor"]["after"], str) and p1["cursor"]["before"] is None
    assert p2["cursor"]["before"] == str(p2["data"][0]["id"])
    back = c("maniphest.search", limit=7, order="updated", before=p2["cursor"]["before"])
    assert [t["id"] for t in back["data"]] == [t["id"] for t in p1["data"]]
    assert back["cursor"]["before"] is None and back["cursor"]["after"] == p1["cursor"]["after"]
    modified = [t["fields"]["dateModified"] for t in p1["data"] + p2["data"]]
    assert modified == sorted(modified, reverse=True)
    assert [t["id"] for t in c("maniphest.search", order=["-id"], limit=3)["data"]] == [1, 2, 3]


def test_task_constraints(shared, scenario):
    c = Client(shared)
    facts = scenario.facts["tasks"]
    cpt = phid_of(shared, "project", "Core Platform Team")
    inbox = phid_of(shared, "column", "Core Platform Team:Inbox")
    bob = phid_of(shared, "user", "bob")
    by_slug = c.all("maniphest.search", constraints={"projects": ["cpt"], "statuses": ["open"]})
    by_phid = c.all("maniphest.search", constraints={"projects": [cpt], "statuses": ["open"]})
    assert by_slug == by_phid and by_slug
    in_inbox = c.all("maniphest.search", constraints={"columnPHIDs": [inbox]}, attachments={"columns": True})
    assert {t["attachments"]["columns"]["boards"][cpt]["columns"][0]["name"] for t in in_inbox} == {"Inbox"}
    assert set(facts["untriaged_old"]) <= {t["id"] for t in in_inbox}
    owned = c.all("maniphest.search", constraints={"assigned": [bob], "statuses": ["open", "stalled"]})
    assert len(owned) > 5 and all(t["fields"]["ownerPHID"] == bob for t in owned)
    ubn = c.all("maniphest.search", constraints={"priorities": [100], "statuses": ["open"]})
    assert {facts["ubn_unanswered"], facts["ubn_unowned"], facts["ubn_answered"]} <= {t["id"] for t in ubn}
    recent = c.all("maniphest.search", constraints={"modifiedStart": NOW_EPOCH - 86400})
    assert recent and all(t["fields"]["dateModified"] >= NOW_EPOCH - 86400 for t in recent)
    assert [t["id"] for t in c.all("maniphest.search", constraints={"hasParents": True})] == [facts["subtask"]]
    # Every word must match (in any order, any case): the one task with both words in its title.
    found = c.all("maniphest.search", constraints={"query": "3DS checkout"})
    assert [t["id"] for t in found] == [facts["ubn_unanswered"]]
    assert all({"3ds", "checkout"} <= set(t["fields"]["name"].lower().split()) for t in found)
    assert c.all("maniphest.search", constraints={"query": "checkout nosuchword"}) == []
    assert c.all("maniphest.search", constraints={"query": "push notification ios"})[0]["id"] == facts["ubn_answered"]
    milestones = c("maniphest.search", constraints={"ids": facts["milestone_only"]}, attachments={"columns": True})
    assert [t["attachments"]["columns"]["boards"] for t in milestones["data"]] == [[], []]
    # Unknown values match nothing; unknown keys, attachments and scalars-for-lists are errors.
    for constraints in ({"projects": ["no-such-project"]}, {"statuses": ["bogus"]},
                        {"columnPHIDs": ["PHID-PCOL-doesnotexist00000000"]}):
        assert c("maniphest.search", constraints=constraints)["data"] == []
    assert c.error("maniphest.search", constraints={"project": [cpt]})[0] == "ERR-INVALID-CONSTRAINT"
    assert c.error("maniphest.search", attachments={"bogus": True})[0] == "ERR-INVALID-ATTACHMENT"
    assert c.error("maniphest.search", constraints={"ids": "4"}) == (
        "ERR-CONDUIT-CORE", 'Error while reading "ids": Expected a list, but value is not a list.')
    assert c.error("maniphest.search", order="bogus")[0] == "ERR-CONDUIT-CORE"


def test_boards_users_and_projects_look_like_the_recorded_team(shared):
    c = Client(shared)
    cpt = phid_of(shared, "project", "Core Platform Team")
    cols = c("project.column.search", constraints={"projects": [cpt]})["data"]
    assert [x["id"] for x in cols] == sorted((x["id"] for x in cols), reverse=True)  # newest first
    names = [x["fields"]["name"] for x in sorted(cols, key=lambda x: x["fields"]["sequence"])]
    assert names == ["Inbox", "Triage Meeting Inbox", "Ready", "Doing", "Blocked Externally", "Waiting for Review",
                     "Waiting for Deployment", "Done", "Icebox (archived)"]
    assert [x["fields"]["isHidden"] for x in cols][0] is True
    projects = c("project.search", constraints={"slugs": ["cpt", "clinic-duty-team"]})
    assert {p["fields"]["slug"] for p in projects["data"]} == {"core_platform_team", "clinic_duty_team"}
    assert projects["maps"]["slugMap"]["cpt"]["projectPHID"] == cpt
    rel = phid_of(shared, "project", "Infrastructure Releases")
    proxies = [x for x in c("project.column.search", constraints={"projects": [rel]})["data"]
               if x["fields"]["proxyPHID"]]
    assert len(proxies) == 2 and all(x["fields"]["name"].endswith(" Release") for x in proxies)
    users = c("user.search", constraints={"usernames": ["heidi", "clinicbot", "nobody"]},
              attachments={"availability": True})["data"]
    by_name = {u["fields"]["username"]: u for u in users}
    assert set(by_name) == {"heidi", "clinicbot"}
    assert by_name["heidi"]["attachments"]["availability"]["value"] == "away"
    assert by_name["heidi"]["attachments"]["availability"]["until"] > NOW_EPOCH
    assert "bot" in by_name["clinicbot"]["fields"]["roles"]
    bots = {u["fields"]["username"] for u in c("user.search", constraints={"isBot": True})["data"]}
    assert bots == {"clinicbot", "phab-automation"}


def test_transactions_modern_and_legacy_agree(shared, scenario):
    c = Client(shared)
    task_id = scenario.facts["tasks"]["ubn_answered"]
    modern = c.all("transaction.search", objectIdentifier=f"T{task_id}", limit=3)
    assert [x["id"] for x in modern] == sorted((x["id"] for x in modern), reverse=True)
    assert modern[-1]["type"] == "create"
    legacy = c("maniphest.gettasktransactions", ids=[task_id])[str(task_id)]
    assert [int(x["transactionID"]) for x in legacy] == [x["id"] for x in modern]
    assert all(isinstance(x["dateCreated"], str) for x in legacy)
    moves = [x for x in modern if x["type"] == "core:columns"]
    assert moves[-1]["fields"]["new"][0]["fromColumnPHIDs"] == []  # first placement
    assert isinstance(moves[0]["fields"]["new"][0]["fromColumnPHIDs"], dict)
    # Many tasks per legacy call; keyed by id string, unknown ids dropped.
    batch = c("maniphest.gettasktransactions", ids=list(range(1, 301)) + [99999])
    assert len(batch) == 300 and "99999" not in batch
    assert c.error("transaction.search", objectIdentifier="T99999")[0] == "ERR-INVALID-OBJECT-PHID"
    page = c("transaction.search", objectType="TASK", limit=5)
    assert len(page["data"]) == 5 and set(page["cursor"]) == {"limit", "after", "before"}
    assert page["cursor"]["before"] is None
    nxt = c("transaction.search", objectType="TASK", limit=5, after=page["cursor"]["after"])
    assert nxt["data"][0]["id"] < page["data"][-1]["id"] and nxt["cursor"]["before"] == str(nxt["data"][0]["id"])
    back = c("transaction.search", objectType="TASK", limit=5, before=nxt["cursor"]["before"])
    assert back["data"] == page["data"] and back["cursor"]["before"] is None
    assert {x["objectPHID"][:10] for x in c.all("transaction.search", objectType="PROJ")} == {"PHID-PROJ-"}


def test_phriction_root_exists_and_pages_nest(sb):
    c = Client(sb)
    docs = c("phriction.document.search", attachments={"content": True})["data"]
    assert {d["fields"]["path"] for d in docs} >= {"/", "core_platform_team/"}
    assert c.error("phriction.create", slug="core_platform_team/triage/2026-11-22/", title="x", content="y")[0] \
        == "ERR-CONDUIT-CORE"
    c("phriction.create", slug="Core Platform Team/Triage", title="Triage", content="reports")
    made = c("phriction.create", slug="core_platform_team/triage/2026-11-22", title="Report", content="v1")
    assert made["slug"] == "core_platform_team/triage/2026-11-22/" and made["version"] == 1
    again = c("phriction.edit", slug=made["slug"], content="v1")
    assert again["version"] == "1"  # no change: strings, as recorded
    edited = c("phriction.edit", slug=made["slug"], content="v2", description="refresh")
    assert edited["version"] == 2 and edited["content"] == "v2"
    under = c("phriction.document.search", constraints={"ancestorPaths": ["core_platform_team/"]})["data"]
    assert {d["fields"]["path"] for d in under} == {"core_platform_team/triage/",
                                                    "core_platform_team/triage/2026-11-22/"}


# -- edits -------------------------------------------------------------------------------

def test_edit_semantics(sb, scenario):
    c = Client(sb)
    facts = scenario.facts["tasks"]
    task_id = facts["untriaged_old"][0]
    ready = phid_of(sb, "column", "Core Platform Team:Ready")
    clinic_inbox = phid_of(sb, "column", "Clinic Duty Team:Inbox")
    out = c("maniphest.edit", objectIdentifier=f"T{task_id}", transactions=[
        {"type": "priority", "value": "high"}, {"type": "column", "value": [ready]},
        {"type": "comment", "value": "Triaged; @dave can you take this?"}])
    assert len(out["transactions"]) == 4  # subscribe (bot + @dave), priority, column, comment
    history = c("transaction.search", objectIdentifier=f"T{task_id}", limit=4)["data"]
    assert len({x["groupID"] for x in history}) == 1
    assert {x["authorPHID"] for x in history} == {sb.store.user("clinicbot").phid}
    assert {x["dateCreated"] for x in history} == {NOW_EPOCH + 60}
    task = sb.store.task(task_id)
    assert task.date_modified == NOW_EPOCH + 60 and sb.store.user("dave").phid in task.subscribers
    assert sb.store.column_of(task_id, "cpt") == "Ready"
    assert sb.store.comments_on(task_id)[-1] == ("clinicbot", "Triaged; @dave can you take this?", NOW_EPOCH + 60)
    # No-ops write nothing: same value, empty comment, a column of a board the task is not on.
    for tx in ({"type": "priority", "value": "high"}, {"type": "comment", "value": "  "},
               {"type": "column", "value": [clinic_inbox]}):
        assert c("maniphest.edit", objectIdentifier=f"T{task_id}", transactions=[tx])["transactions"] == []
    assert sb.store.column_of(task_id, "Clinic Duty Team") is None
    # ...unless the edit also tags the board.
    clinic = phid_of(sb, "project", "Clinic Duty Team")
    c("maniphest.edit", objectIdentifier=f"T{task_id}", transactions=[
        {"type": "projects.add", "value": [clinic]}, {"type": "column", "value": [clinic_inbox]}])
    assert sb.store.column_of(task_id, "Clinic Duty Team") == "Inbox"
    # Recorded rejections.
    for value, info in ((ready, "Expected a list, but value is not a list."),
                        ([{"columnPHID": ready}], "Expected string, got something else.")):
        code, text = c.error("maniphest.edit", objectIdentifier=f"T{task_id}",
                             transactions=[{"type": "column", "value": value}])
        assert code == "ERR-CONDUIT-CORE" and text.endswith(info)
    assert "not a valid task priority" in c.error("maniphest.edit", objectIdentifier=f"T{task_id}",
                                                  transactions=[{"type": "priority", "value": "80"}])[1]
    # Closing an unowned task as resolved makes the closer its owner.
    c("maniphest.edit", objectIdentifier=f"T{task_id}", transactions=[{"type": "status", "value": "resolved"}])
    task = sb.store.task(task_id)
    assert task.owner == task.closer == sb.store.user("clinicbot").phid and task.date_closed == NOW_EPOCH + 60


def test_create_task(sb):
    c = Client(sb)
    cpt = phid_of(sb, "project", "Core Platform Team")
    out = c("maniphest.edit", transactions=[{"type": "title", "value": "New"}, {"type": "projects.add", "value": [cpt]},
                                            {"type": "points", "value": "0.5"}])
    assert out["object"]["id"] == 301
    created = c("maniphest.search", constraints={"ids": [301]}, attachments={"columns": True})["data"][0]
    assert created["fields"]["points"] == "0.5" and created["fields"]["priority"]["value"] == 90
    assert created["attachments"]["columns"]["boards"][cpt]["columns"][0]["name"] == "Inbox"
    types = [x["type"] for x in reversed(c("transaction.search", objectIdentifier="T301")["data"])]
    assert types == ["create", "title", "projects", "core:columns", "points", "subscribers"]


# -- faults, latency ---------------------------------------------------------------------

@pytest.mark.parametrize("kind,status", [("http500", 500), ("http502", 502), ("http429", 429)])
def test_http_faults(sb, kind, status):
    sb.faults.add(method="user.whoami", kind=kind, times=2)
    for _ in range(2):
        resp = requests.post(f"{sb.url}api/user.whoami",
                             data={"params": json.dumps({"__conduit__": {"token": sb.token}})})
        assert resp.status_code == status and "Retry-After" not in resp.headers
        assert resp.headers["Content-Type"].startswith("text/plain")
    assert Client(sb)("user.whoami")["userName"] == "clinicbot"
    assert sb.faults.fired == [("user.whoami", kind)] * 2 and sb.faults.pending == []


def test_garbage_and_reset_faults(sb):
    sb.faults.add(method="*", kind="garbage")
    resp = requests.post(f"{sb.url}api/conduit.ping")
    assert resp.status_code == 200
    with pytest.raises(ValueError):
        resp.json()
    sb.faults.add(method="conduit.ping", kind="reset")
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{sb.url}api/conduit.ping")
    assert requests.post(f"{sb.url}api/conduit.ping").json()["result"] == "sandbox"
    assert sb.stats.requests["conduit.ping"] == 3


def test_timeout_fault_applies_the_edit_once_then_answers_late(sb):
    sb.faults.add(method="maniphest.edit", kind="timeout", times=1, apply=True, delay=1.0)
    client = Client(sb, timeout=0.3)
    with pytest.raises(requests.ReadTimeout):
        client.raw("maniphest.edit", objectIdentifier="T1", transactions=[{"type": "comment", "value": "late"}])
    assert [c for c in sb.store.comments_on(1) if c[1] == "late"] == [("clinicbot", "late", NOW_EPOCH + 60)]
    assert sb.stats.requests["maniphest.edit"] == 1
    # Without apply, the stalled call never happens.
    sb.faults.add(method="maniphest.edit", kind="timeout", apply=False, delay=0.5)
    with pytest.raises(requests.RequestException):
        client.raw("maniphest.edit", objectIdentifier="T1", transactions=[{"type": "comment", "value": "lost"}])
    time.sleep(0.6)
    assert [c for c in sb.store.comments_on(1) if c[1] == "lost"] == []


def test_http500_after_applying(sb):
    sb.faults.add(method="maniphest.edit", kind="http500", apply=True)
    resp = requests.post(f"{sb.url}api/maniphest.edit", data={"params": json.dumps({
        "__conduit__": {"token": sb.token}, "objectIdentifier": "T2",
        "transactions": [{"type": "comment", "value": "crashed after commit"}]})})
    assert resp.status_code == 500
    assert sb.store.comments_on(2)[-1][1] == "crashed after commit"


def test_latency_is_added_to_every_call(sb):
    c = Client(sb)
    c("conduit.ping")
    sb.latency = 0.15
    started = time.monotonic()
    c("conduit.ping")
    assert time.monotonic() - started >= 0.15  # a lower bound (the added wait), never a speed target
    # How fast a call is without latency is measured by bench/timed_checks.py, not asserted here.


def test_stop_does_not_wait_for_a_stalled_call(sb):
    sb.faults.add(method="conduit.ping", kind="timeout", delay=30)
    client = Client(sb, timeout=0.2)
    with pytest.raises(requests.ReadTimeout):
        client.raw("conduit.ping")
    started = time.monotonic()
    sb.stop()
    assert time.monotonic() - started < 5
