"""The outbox's task edits and its most-urgent cap, without a server (issue 14 points 3, 4, 8)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from clinicbot.delivery import tasks as task_edits
from clinicbot.delivery.outbox import Outbox
from clinicbot.errors import SafetyCapExceeded
from clinicbot.state.ledger import Ledger

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)
BOARD, COLUMN, OTHER = "PHID-PROJ-new", "PHID-PCOL-needed", "PHID-PCOL-other"


class Server:
    """maniphest.search and maniphest.edit over a dict of task rows."""

    def __init__(self, rows: dict[str, dict[str, Any]]):
        self.rows = rows
        self.edits: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> Any:
        if method == "maniphest.edit":
            self.edits.append(params)
            return {"object": {"id": 1, "phid": params.get("objectIdentifier")}, "transactions": [{"phid": "PHID-XACT-1"}]}
        return {"data": [self.rows[p] for p in params["constraints"]["phids"] if p in self.rows]}

    def search_pages(self, method: str, **params: Any):
        yield self.call(method, **params)["data"]


def row(phid: str, column: str | None, projects: list[str]) -> dict[str, Any]:
    boards = {BOARD: {"columns": [{"id": 1, "phid": column, "name": "x"}]}} if column else []
    return {"id": int(phid[-1]), "phid": phid, "fields": {"description": {"raw": ""}, "status": {"value": "open"}},
            "attachments": {"columns": {"boards": boards}, "projects": {"projectPHIDs": projects}}}


def task(n: int, projects: tuple[str, ...] = ()) -> Any:
    return SimpleNamespace(id=n, phid=f"PHID-TASK-{n}", project_phids=projects, columns={})


def outbox(server: Server, **kw: Any) -> Outbox:
    return Outbox(server, Ledger.open("/nonexistent", readonly=True), apply=True, now=NOW, **kw)


def move(box: Outbox, n: int, severity: str = "info", age: int = 0):
    t = task(n)
    action = box.task_edit("move", t, task_edits.move_transactions(t, BOARD, COLUMN), f"move:T{n}",
                           text="move", state=task_edits.column_state(BOARD, COLUMN))
    action.severity, action.since = severity, NOW - timedelta(days=age)
    return action


def test_a_move_tags_the_new_board_in_the_same_edit_and_uses_a_list_of_column_phids():
    assert task_edits.move_transactions(task(1), BOARD, COLUMN) == [
        {"type": "projects.add", "value": [BOARD]}, {"type": "column", "value": [COLUMN]}]
    assert task_edits.move_transactions(task(1, (BOARD,)), BOARD, COLUMN) == [{"type": "column", "value": [COLUMN]}]


def test_edits_already_done_on_the_server_are_not_written_nor_counted():
    server = Server({"PHID-TASK-1": row("PHID-TASK-1", COLUMN, [BOARD]), "PHID-TASK-2": row("PHID-TASK-2", OTHER, [BOARD])})
    box = outbox(server, cap=1)
    done, todo, gone = move(box, 1), move(box, 2), move(box, 3)
    box.deliver()  # 3 planned, cap 1: only one is really wanted
    assert (done.status, done.already, done.reason) == ("skipped", True, "already so on the server")
    assert (gone.status, gone.reason) == ("skipped", "the task is gone (or not visible to the bot)")
    assert todo.status == "posted" and [e["objectIdentifier"] for e in server.edits] == ["PHID-TASK-2"]
    assert server.edits[0]["transactions"] == [{"type": "projects.add", "value": [BOARD]},
                                               {"type": "column", "value": [COLUMN]}]


def test_over_the_cap_abort_or_the_most_urgent():
    rows = {f"PHID-TASK-{n}": row(f"PHID-TASK-{n}", OTHER, []) for n in range(1, 6)}
    box = outbox(Server(rows), cap=2)
    for n in range(1, 6):
        move(box, n)
    with pytest.raises(SafetyCapExceeded):
        box.deliver()

    server = Server(rows)
    box = outbox(server, cap=2, on_cap="most-urgent")
    plan = [move(box, 1, "info", 9), move(box, 2, "warning", 1), move(box, 3, "critical", 0),
            move(box, 4, "warning", 5), move(box, 5, "info", 20)]
    box.deliver()
    assert [a.task for a in plan if a.status == "posted"] == ["T3", "T4"]  # critical, then the older warning
    deferred = [a for a in plan if a.deferred]
    assert [a.task for a in deferred] == ["T1", "T2", "T5"] and not any(a.done for a in deferred)
    assert all(a.reason == "over the per-run cap (max_writes_per_run 2); next run" for a in deferred)
    assert not box.ledger.already_delivered("move:T1") and box.ledger.already_delivered("move:T3")
    with pytest.raises(ValueError):
        outbox(server, cap=2, on_cap="sometimes")
