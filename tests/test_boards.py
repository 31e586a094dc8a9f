"""Board-layer parsers against the real-server recordings, and the call budget."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from clinicbot.phab.boards import (
    fetch_tasks,
    parse_column,
    parse_priority,
    parse_status,
    parse_task,
    parse_user,
    place_in_proxy_columns,
    resolve_boards,
)
from clinicbot.config import parse_config
from clinicbot.errors import ConfigError
from conftest import recorded_result, recording

CPT = "PHID-PROJ-xvlu2w3dfxng35zunpfl"
REL = "PHID-PROJ-acnbyftua5i4t75y4lvl"


def asked(name: str) -> tuple[str, ...]:
    """The attachments the recorded request asked for: those must be in the answer."""
    return tuple((recording(name).get("request_params") or {}).get("attachments") or {})


def statuses():
    return {s.value: s for s in map(parse_status, recorded_result("maniphest.status.search")["data"])}


def test_statuses_stalled_is_open():
    st = statuses()
    assert st["stalled"].closed is False and st["open"].closed is False
    assert st["resolved"].closed and st["duplicate"].closed


def test_priorities_keep_keywords_for_edits():
    prios = [parse_priority(p) for p in recorded_result("maniphest.priority.search")["data"]]
    by_kw = {p.keyword: p for p in prios}
    assert by_kw["unbreak"].value == 100 and by_kw["triage"].value == 90 and by_kw["wish"].name == "Wishlist"


def test_task_fields_and_attachments():
    data = recorded_result("maniphest.search--projects-attachments")["data"]
    t4 = parse_task(next(i for i in data if i["id"] == 4), statuses())
    assert t4.monogram == "T4" and t4.priority == 100 and t4.priority_name == "Unbreak Now!"
    assert t4.points == 5.0 and t4.is_open and t4.status == "open"
    assert t4.created == datetime.fromtimestamp(1792363055, tz=timezone.utc) and t4.created.tzinfo
    # on two boards at once, identified by board PHID
    assert t4.columns == {REL: "PHID-PCOL-l34fsljzalv6gz4roifc", CPT: "PHID-PCOL-nix45dp55inxirv5n2un"}
    assert set(t4.project_phids) == {REL, CPT}
    assert len(t4.subscriber_phids) == 3


def test_points_string_fraction_and_null():
    name = "maniphest.search--after-column-on-untagged-board"
    t28 = parse_task(recorded_result(name)["data"][0], statuses(), attachments=asked(name))
    assert t28.id == 28 and t28.points == 0.5
    data = recorded_result("maniphest.search--projects-attachments")["data"]
    by_id = {i["id"]: parse_task(i, statuses()) for i in data}
    assert by_id[25].points is None and by_id[25].owner_phid is None


def test_milestone_task_with_boards_as_empty_list():
    data = recorded_result("maniphest.search--milestone-tasks-empty-boards")["data"]
    for item in data:
        assert item["attachments"]["columns"]["boards"] == []
        assert parse_task(item, statuses(), attachments=asked("maniphest.search--milestone-tasks-empty-boards")).columns == {}


def test_milestone_task_is_placed_in_the_parent_board_proxy_column():
    cols = [parse_column(c) for c in recorded_result("project.column.search--milestone-proxy-columns")["data"]]
    proxies = {c.proxy_phid: c for c in cols if c.proxy_phid}
    item = recorded_result("maniphest.search--milestone-tasks-empty-boards")["data"][0]
    task = place_in_proxy_columns(parse_task(item, statuses(), attachments=asked("maniphest.search--milestone-tasks-empty-boards")),
                                  proxies)
    assert task.columns[REL] in {c.phid for c in proxies.values()}


def test_unconfigured_status_uses_date_closed():
    item = recorded_result("maniphest.search--task-with-unconfigured-status")["data"][0]
    task = parse_task(item, statuses(), attachments=asked("maniphest.search--task-with-unconfigured-status"))
    assert task.status_name == "Unknown Status"
    assert task.is_closed is (item["fields"]["dateClosed"] is not None)


def test_columns_hidden_default_and_sequence():
    cols = [parse_column(c) for c in recorded_result("project.column.search--projects-CPT")["data"]]
    ordered = sorted(cols, key=lambda c: c.sequence)
    assert [c.name for c in ordered][:3] == ["Inbox", "Triage Meeting Inbox", "Ready"]
    assert ordered[0].is_default and ordered[-1].hidden and ordered[-1].name == "Icebox (archived)"


def test_users_with_availability():
    users = [parse_user(u) for u in recorded_result("user.search--phids-availability")["data"]]
    assert {u.username for u in users} == {"carol", "admin"}
    assert all(u.availability == "available" and not u.is_away for u in users)


class FakeClient:
    """Serves recorded results by method; counts calls."""

    def __init__(self, answers):
        self.answers = answers
        self.calls: list[tuple[str, dict]] = []

    def call(self, method, **params):
        self.calls.append((method, params))
        answer = self.answers[method]
        return answer(params) if callable(answer) else answer

    def search(self, method, **kwargs):
        params = {k: v for k, v in kwargs.items() if v is not None}
        yield from self.call(method, **params)["data"]


def config_with(columns):
    return parse_config({"phabricator": {"url": "http://x/"},
                         "boards": [{"project": "Core Platform Team", "columns": columns}]}, None)


def test_resolve_boards_assigns_roles_by_phid():
    client = FakeClient({"project.search": recorded_result("project.search--name"),
                         "project.column.search": recorded_result("project.column.search--projects-CPT")})
    [board] = resolve_boards(client, config_with({"inbox": "Inbox", "triage_meeting_inbox": "triage meeting inbox"}))
    assert board.phid == CPT and board.name == "Core Platform Team"
    assert [c.phid for c in board.by_role("inbox")] == ["PHID-PCOL-veqpmo6uq677d26udlfl"]
    assert [c.name for c in board.by_role("triage_meeting_inbox")] == ["Triage Meeting Inbox"]
    assert [c.sequence for c in board.columns] == sorted(c.sequence for c in board.columns)


def test_unknown_column_lists_the_real_columns():
    client = FakeClient({"project.search": recorded_result("project.search--name"),
                         "project.column.search": recorded_result("project.column.search--projects-CPT")})
    with pytest.raises(ConfigError) as info:
        resolve_boards(client, config_with({"inbox": "Inbxo"}))
    msg = str(info.value)
    assert "boards[0].columns.inbox" in msg and "'Inbxo'" in msg
    assert "Inbox, Triage Meeting Inbox, Ready, Doing, Blocked Externally, Waiting for Review" in msg
    assert "Icebox (archived) (hidden)" in msg


def test_unknown_project_names_the_key():
    client = FakeClient({"project.search": {"data": [], "cursor": {"after": None}}})
    with pytest.raises(ConfigError, match=r"boards\[0\].project"):
        resolve_boards(client, config_with({"inbox": "Inbox"}))


def test_fetch_tasks_uses_column_constraint_and_attachments():
    client = FakeClient({"maniphest.search": recorded_result("maniphest.search--projects-attachments")})
    tasks = fetch_tasks(client, ["PHID-PCOL-b", "PHID-PCOL-a"], statuses=statuses())
    method, params = client.calls[0]
    assert params["constraints"] == {"columnPHIDs": ["PHID-PCOL-a", "PHID-PCOL-b"]}
    assert params["attachments"] == {"columns": True, "projects": True, "subscribers": True}
    assert len(tasks) == len(recorded_result("maniphest.search--projects-attachments")["data"])


# -- issue 11 point 6: wrong shapes are one clear error, never a smaller result ------------------

import copy  # noqa: E402
import json as _json  # noqa: E402

from clinicbot.errors import ConduitShapeError  # noqa: E402
from conftest import RECORDINGS, SECOND_RECORDINGS  # noqa: E402


def _task_item():
    return copy.deepcopy(next(i for i in recorded_result("maniphest.search--projects-attachments")["data"] if i["id"] == 4))


def _with(path, value):
    item = _task_item()
    target = item
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[key]
    if value is KeyError:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return item


@pytest.mark.parametrize("path,value,field", [
    ("fields.dateCreated", "2026-11-01", "fields.dateCreated"),
    ("fields.ownerPHID", 42, "fields.ownerPHID"),
    ("fields", [], "fields"),
    ("phid", None, "phid"),
    ("attachments", [], "attachments"),
    ("attachments.columns", KeyError, "attachments.columns"),
    ("attachments.columns.boards", [1], "attachments.columns.boards"),
    ("fields.priority.value", None, "fields.priority.value"),
    ("fields.priority", None, "fields.priority"),
    ("fields.status", "open", "fields.status"),
    ("fields.points", "lots", "fields.points"),
    ("attachments.projects.projectPHIDs", None, "attachments.projects.projectPHIDs"),
])
def test_parse_task_wrong_shape_is_a_shape_error(path, value, field):
    with pytest.raises(ConduitShapeError) as info:
        parse_task(_with(path, value), statuses(), attachments=asked("maniphest.search--projects-attachments"))
    exc = info.value
    assert exc.method == "maniphest.search" and exc.object == "T4" and exc.field == field
    assert str(exc).startswith(f"Conduit maniphest.search answered T4 with {field} = ") and "\n" not in str(exc)
    assert exc.exit_code == 3


def test_a_task_on_no_board_still_parses():
    # attachments.columns.boards is [] on the real server for a task on no board: not a wrong shape
    item = _with("attachments.columns.boards", [])
    assert parse_task(item, statuses(), attachments=asked("maniphest.search--projects-attachments")).columns == {}


@pytest.mark.parametrize("parse,name,path,value", [
    (parse_user, "user.search--phids-availability", "fields.username", None),
    (parse_user, "user.search--phids-availability", "fields", []),
    (parse_column, "project.column.search--projects-CPT", "fields.project", None),
    (parse_column, "project.column.search--projects-CPT", "fields.sequence", "first"),
    (parse_status, "maniphest.status.search", "closed", "yes"),
    (parse_priority, "maniphest.priority.search", "value", None),
])
def test_other_parsers_wrong_shape(parse, name, path, value):
    item = copy.deepcopy(recorded_result(name)["data"][0])
    target = item
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    with pytest.raises(ConduitShapeError) as info:
        parse(item)
    assert info.value.field == path


def test_user_without_the_availability_it_asked_for():
    item = copy.deepcopy(recorded_result("user.search--phids-availability")["data"][0])
    item["attachments"] = []
    assert parse_user(item).availability == "available"  # not asked for: fine
    with pytest.raises(ConduitShapeError):
        parse_user(item, availability=True)


PARSERS = {"maniphest.search": lambda item, rec: parse_task(item, statuses(), attachments=tuple(
               (rec.get("request_params") or {}).get("attachments") or {})),
           "user.search": lambda item, rec: parse_user(item, availability=bool(
               ((rec.get("request_params") or {}).get("attachments") or {}).get("availability"))),
           "project.column.search": lambda item, rec: parse_column(item),
           "maniphest.status.search": lambda item, rec: parse_status(item),
           "maniphest.priority.search": lambda item, rec: parse_priority(item)}
PARSED = sorted(p for p in [*RECORDINGS.glob("*.json"), *SECOND_RECORDINGS.glob("*.json")] if _json.loads(p.read_text())["method"] in PARSERS
                and _json.loads(p.read_text())["response"].get("error_code") is None)


@pytest.mark.parametrize("path", PARSED, ids=[p.stem for p in PARSED])
def test_every_recorded_answer_parses(path):
    rec = _json.loads(path.read_text())
    data = rec["response"]["result"]["data"]
    for item in data:
        PARSERS[rec["method"]](item, rec)
