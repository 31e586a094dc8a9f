"""The ledger's records: their types, the shape each table's documents must have (checked when
the file is read: a hand edit that put a number where a time goes is caught naming the record),
and the schema migrations.

:mod:`clinicbot.state.ledger` stores them (TinyDB, atomic writes, the lock).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Mapping

from clinicbot.errors import StateError
from clinicbot.model import parse_iso

SCHEMA_VERSION = 1


@dataclass
class Outcome:
    handler: str
    status: str  # posted | skipped | failed | manual
    at: str
    text_hash: str = ""
    transaction_phid: str | None = None
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"handler": self.handler, "status": self.status, "at": self.at, "text_hash": self.text_hash,
                "transaction_phid": self.transaction_phid, "error": self.error}


@dataclass
class Record:
    """One episode of one finding key."""

    doc_id: int
    key: str
    check_slug: str
    task_id: int | None
    task_phid: str | None
    episode: int
    created_at: datetime
    last_seen_at: datetime | None
    handled_at: datetime | None
    times_handled: int
    outcomes: list[dict[str, Any]]
    escalations: list[int]  # indexes of escalation steps already fired in this episode
    cleared_at: datetime | None
    is_deleted: bool
    project_phids: list[str] = field(default_factory=list)
    summary: str = ""
    severity: str = ""

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], doc_id: int | None = None) -> "Record":
        """A record from its stored document: a TinyDB Document, or the raw dict and its ``doc_id``."""
        return cls(
            doc_id=doc.doc_id if doc_id is None else doc_id,  # type: ignore[attr-defined]
            key=doc["key"], check_slug=doc["check_slug"], task_id=doc.get("task_id"),
            task_phid=doc.get("task_phid"), episode=int(doc.get("episode", 1)),
            created_at=parse_iso(doc["created_at"]),  # type: ignore[arg-type]
            last_seen_at=parse_iso(doc.get("last_seen_at")), handled_at=parse_iso(doc.get("handled_at")),
            times_handled=int(doc.get("times_handled", 0)), outcomes=list(doc.get("outcomes") or []),
            escalations=list(doc.get("escalations") or []), cleared_at=parse_iso(doc.get("cleared_at")),
            is_deleted=bool(doc.get("is_deleted")), project_phids=list(doc.get("project_phids") or []),
            summary=doc.get("summary", ""), severity=doc.get("severity", ""),
        )

    @property
    def is_open(self) -> bool:
        return self.cleared_at is None and not self.is_deleted

    @property
    def task(self) -> str:
        return f"T{self.task_id}" if self.task_id is not None else "-"


@dataclass
class Intent:
    doc_id: int
    key: str
    handler: str
    task_phid: str | None
    task: str | None
    text_hash: str
    at: datetime
    status: str  # pending | posted | failed | found | not-applied | assumed
    refs: list[Any]
    text: str = ""
    wall_at: datetime | None = None
    # Task edits (move, untag, todo): what the task looks like once the write happened, so an
    # unconfirmed write is settled by reading the task (delivery/tasks.py). None for comments.
    state: dict[str, Any] | None = None

    @property
    def earliest(self) -> datetime:
        """The earliest the write can have happened, by either clock."""
        return min(self.at, self.wall_at) if self.wall_at else self.at

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> "Intent":
        return cls(doc_id=doc.doc_id, key=doc["key"], handler=doc["handler"],  # type: ignore[attr-defined]
                   task_phid=doc.get("task_phid"), task=doc.get("task"), text_hash=doc.get("text_hash", ""),
                   at=parse_iso(doc["at"]), status=doc.get("status", "pending"),  # type: ignore[arg-type]
                   refs=list(doc.get("refs") or []), text=doc.get("text", ""), wall_at=parse_iso(doc.get("wall_at")),
                   state=doc.get("state"))


@dataclass
class Todo:
    """The checklist task of one duty shift: which task, what it lists, what it says now."""

    doc_id: int
    shift: str  # stable id: the shift's start and members
    start: datetime
    end: datetime | None
    members: list[str]
    task_phid: str | None
    task_id: int | None
    items: list[dict[str, Any]]  # {"key", "summary", "task", "severity", "open"} in order of appearance
    description_hash: str
    closed_at: datetime | None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> "Todo":
        return cls(doc_id=doc.doc_id, shift=doc["shift"], start=parse_iso(doc["start"]),  # type: ignore[attr-defined,arg-type]
                   end=parse_iso(doc.get("end")), members=list(doc.get("members") or []),
                   task_phid=doc.get("task_phid"), task_id=doc.get("task_id"), items=list(doc.get("items") or []),
                   description_hash=doc.get("description_hash", ""), closed_at=parse_iso(doc.get("closed_at")))


@dataclass
class Snooze:
    target: str  # a check slug or a task monogram "T123"
    until: datetime
    at: datetime
    reason: str = ""


# Migrations: MIGRATIONS[v] turns a schema-v ledger (a dict of tables) into schema v+1.
def _migrate_0_to_1(tables: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    # v0 (pre-release) had no _meta table, no episodes and no escalation tracking.
    for doc in (tables.get("records") or {}).values():
        doc.setdefault("episode", 1)
        doc.setdefault("escalations", [])
        doc.setdefault("outcomes", [])
        doc.setdefault("cleared_at", None)
        doc.setdefault("is_deleted", doc.get("cleared_at") is not None)
    return tables


MIGRATIONS: dict[int, Callable[[dict[str, dict[str, Any]]], dict[str, dict[str, Any]]]] = {0: _migrate_0_to_1}


def _upgrade(tables: dict[str, dict[str, Any]], path: str) -> tuple[dict[str, dict[str, Any]], bool]:
    meta = tables.get("_meta") or {}
    version = int(next(iter(meta.values()), {}).get("schema_version", 0)) if meta else 0
    if version > SCHEMA_VERSION:
        raise StateError(path, f"ledger schema v{version} was written by a newer clinicbot (this one understands "
                               f"v{SCHEMA_VERSION}); upgrade clinicbot")
    changed = False
    while version < SCHEMA_VERSION:
        tables = MIGRATIONS[version](tables)
        version += 1
        changed = True
    tables["_meta"] = {"1": {"schema_version": SCHEMA_VERSION}}
    return tables, changed



# What each table's records must hold: field -> (kind, required). Kinds: str, int, bool, time
# (an ISO 8601 string), list, and "?" for "or null". Fields a migration adds may be missing.
_SHAPES: dict[str, dict[str, tuple[str, bool]]] = {
    "records": {"key": ("str", True), "check_slug": ("str", True), "task_id": ("int?", False),
                "task_phid": ("str?", False), "episode": ("int", False), "created_at": ("time", True),
                "last_seen_at": ("time?", False), "handled_at": ("time?", False), "times_handled": ("int", False),
                "outcomes": ("list?", False), "escalations": ("list?", False), "cleared_at": ("time?", False),
                "is_deleted": ("bool?", False), "project_phids": ("list?", False), "summary": ("str", False),
                "severity": ("str", False)},
    "intents": {"key": ("str", True), "handler": ("str", True), "task_phid": ("str?", False),
                "task": ("str?", False), "text_hash": ("str", False), "at": ("time", True),
                "wall_at": ("time?", False), "status": ("str", False), "refs": ("list?", False),
                "text": ("str", False), "resolved_at": ("time?", False), "state": ("dict?", False)},
    "delivered": {"key": ("str", True), "at": ("time", True)},
    "snoozes": {"target": ("str", True), "until": ("time", True), "at": ("time", True), "reason": ("str", False)},
    "notices": {"key": ("str", True), "at": ("time", True)},
    # The duty TODO task of one shift (delivery/todo.py).
    "todos": {"shift": ("str", True), "start": ("time", True), "end": ("time?", False), "members": ("list?", False),
              "task_phid": ("str?", False), "task_id": ("int?", False), "items": ("list?", False),
              "description_hash": ("str", False), "closed_at": ("time?", False)},
}
_KIND_NAMES = {"str": "a string", "int": "a whole number", "bool": "true or false", "list": "a list",
               "dict": "an object", "time": "an ISO 8601 time"}


def _fits(value: Any, kind: str) -> bool:
    if kind.endswith("?"):
        if value is None:
            return True
        kind = kind[:-1]
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list)
    if kind == "dict":
        return isinstance(value, dict)
    if kind == "time":
        if not isinstance(value, str):
            return False
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return False
        return True
    raise AssertionError(kind)


def validate_tables(tables: Mapping[str, Any]) -> str | None:
    """The first record of a known table with a missing or wrongly typed field, as one phrase."""
    for doc_id, doc in (tables.get("_meta") or {}).items():
        version = doc.get("schema_version") if isinstance(doc, dict) else None
        if not isinstance(version, int) or isinstance(version, bool):
            return f"table '_meta', record {doc_id}: field 'schema_version' should be a whole number"
    for table, shape in _SHAPES.items():
        docs = tables.get(table) or {}
        for doc_id, doc in docs.items():
            where = f"table '{table}', record {doc_id}"
            if not str(doc_id).isdigit():
                return f"{where}: the record id is not a number"
            if not isinstance(doc, dict):
                return f"{where}: not an object"
            for name, (kind, required) in shape.items():
                if name not in doc:
                    if required:
                        return f"{where}: field '{name}' is missing"
                    continue
                if not _fits(doc[name], kind):
                    expected = _KIND_NAMES[kind.rstrip("?")] + (" or null" if kind.endswith("?") else "")
                    return f"{where}: field '{name}' should be {expected}, not {json.dumps(doc[name])[:40]}"
            if table == "records":
                for sub in ("outcomes",):
                    if any(not isinstance(o, dict) for o in doc.get(sub) or []):
                        return f"{where}: field '{sub}' should be a list of objects"
                if any(not isinstance(i, int) or isinstance(i, bool) for i in doc.get("escalations") or []):
                    return f"{where}: field 'escalations' should be a list of whole numbers"
                if any(not isinstance(p, str) for p in doc.get("project_phids") or []):
                    return f"{where}: field 'project_phids' should be a list of strings"
            if table == "todos" and any(not isinstance(i, dict) or not isinstance(i.get("key"), str)
                                        for i in doc.get("items") or []):
                return f"{where}: field 'items' should be a list of objects with a 'key'"
    return None
