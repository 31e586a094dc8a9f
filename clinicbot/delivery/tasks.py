"""Task edits the outbox performs besides comments: a column move, an untag, and the duty TODO
task (create, update its description, close it). All are one ``maniphest.edit`` each.

Never twice, by state rather than by text. Each edit carries the *state* the task is in once the
write happened (``{"kind": "column", "board": …, "column": …}``, ``{"kind": "untagged", …}``,
``{"kind": "description", "hash": …}``, ``{"kind": "closed"}``, or for a new task
``{"kind": "created", "marker": …}``). The ledger stores it with the write's intent; when the
answer never came (timeout, crash), the next run reads the task back (``maniphest.search`` with the
``columns`` and ``projects`` attachments) before anything is written again: the state holds ->
the write happened; it does not -> it did not (or not yet: an edit is idempotent, so redoing it is
harmless; a create is not, so a create not found waits for the settle window, like a comment).
A new task is found by its author (the bot), its creation time and the marker line its
description carries (``maniphest.search`` by ``authorPHIDs`` and ``createdStart``: the full-text
index may lag behind).

Phorge facts this relies on (recordings ``maniphest.edit--*``, sources at 07c1a51):

* a ``column`` value is a *list* of column PHIDs; a bare string or ``[{columnPHID, beforePHIDs}]``
  is refused (``error--maniphest.edit-column-*``);
* a move into a column of a board the task is not tagged with is silently dropped (success, no
  transaction: ``maniphest.edit--column-on-untagged-board``), so a move onto another board sends
  ``projects.add`` of that board in the same edit;
* a no-op edit (same column, same description) is dropped: success with no transactions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Mapping

from clinicbot.model import Shape

SEARCH = "maniphest.search"


def move_transactions(task: Any, board_phid: str, column_phid: str) -> list[dict[str, Any]]:
    """Into ``column_phid`` of board ``board_phid``; tagging the board first when the task is not on it."""
    out: list[dict[str, Any]] = []
    if board_phid not in set(getattr(task, "project_phids", ()) or ()):
        out.append({"type": "projects.add", "value": [board_phid]})
    out.append({"type": "column", "value": [column_phid]})
    return out


def column_state(board_phid: str, column_phid: str) -> dict[str, Any]:
    return {"kind": "column", "board": board_phid, "column": column_phid}


def untag_state(project_phids: Iterable[str]) -> dict[str, Any]:
    return {"kind": "untagged", "projects": sorted(set(project_phids))}


def holds_locally(task: Any, state: Mapping[str, Any]) -> bool:
    """Whether a snapshot task already is as ``state`` wants (then nothing is planned)."""
    kind = state.get("kind")
    if kind == "column":
        return (getattr(task, "columns", {}) or {}).get(state["board"]) == state["column"]
    if kind == "untagged":
        return not set(state["projects"]) & set(getattr(task, "project_phids", ()) or ())
    return False


def read_task(client: Any, task_phid: str) -> dict[str, Any] | None:
    """The task as the server has it now (with columns and projects), or None if it is gone."""
    result = client.call(SEARCH, constraints={"phids": [task_phid]}, attachments={"columns": True, "projects": True})
    data = Shape(SEARCH, "result").items((result or {}).get("data"), "data")
    return data[0] if data else None


def read_tasks(client: Any, task_phids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Many tasks as the server has them now (with columns and projects): PHID -> row."""
    out: dict[str, dict[str, Any]] = {}
    phids = sorted(set(task_phids))
    for i in range(0, len(phids), 100):
        for page in client.search_pages(SEARCH, constraints={"phids": phids[i:i + 100]},
                                        attachments={"columns": True, "projects": True}):
            for item in page:
                if isinstance(item, dict) and item.get("phid"):
                    out[item["phid"]] = item
    return out


def server_state_holds(item: Mapping[str, Any], state: Mapping[str, Any], text_hash: Any) -> bool:
    """Whether the task as ``maniphest.search`` returned it is in ``state``."""
    shape = Shape(SEARCH, f"T{item.get('id')}")
    fields = shape.mapping(item.get("fields"), "fields")
    attachments = shape.mapping(item.get("attachments") or {}, "attachments", empty_list=True)
    kind = state.get("kind")
    if kind == "column":
        boards = shape.mapping((attachments.get("columns") or {}).get("boards") or {}, "attachments.columns.boards",
                               empty_list=True)
        columns = (boards.get(state["board"]) or {}).get("columns") or []
        return any(isinstance(c, dict) and c.get("phid") == state["column"] for c in columns)
    if kind == "untagged":
        phids = (attachments.get("projects") or {}).get("projectPHIDs") or []
        return not set(state["projects"]) & set(phids)
    if kind == "description":
        raw = (fields.get("description") or {}).get("raw") or ""
        return bool(text_hash(raw) == state["hash"])
    if kind == "closed":
        return state.get("status") == (fields.get("status") or {}).get("value")
    raise ValueError(f"unknown task state {kind!r}")


def find_created(client: Any, bot_phid: str, marker: str, since: datetime) -> dict[str, Any] | None:
    """The task the bot created after ``since`` whose description holds ``marker`` (id, phid), or None."""
    for page in client.search_pages(SEARCH, constraints={"authorPHIDs": [bot_phid],
                                                         "createdStart": int(since.timestamp())}):
        for item in page:
            raw = (((item or {}).get("fields") or {}).get("description") or {}).get("raw") or ""
            if marker in raw:
                return {"id": item.get("id"), "phid": item.get("phid")}
    return None


__all__ = ["column_state", "find_created", "holds_locally", "move_transactions", "read_task", "read_tasks",
           "server_state_holds",
           "untag_state"]
