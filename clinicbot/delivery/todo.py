"""The ``todo`` handler: one checklist task per duty shift for the engineers on duty.

A *shift* is a stretch during which the same engineers are on duty; it is identified by its
start (the latest rotation change at or before the run) and their usernames, so every run of the
shift computes the same id. Its TODO task:

* is created at the shift's first finding (of the checks whose ``handlers`` include ``todo``),
  assigned to the first engineer on duty and subscribing all of them (``maniphest.edit`` without
  ``objectIdentifier``: title, description, owner, ``subscribers.add``);
* has a description that is a checklist of the shift's findings: ``[ ]`` while a finding is open,
  ``[x]`` once it cleared (a finding that comes back is unticked). The description is rewritten in
  place (``description`` transaction) only when the text changed: an unchanged checklist makes no
  call at all (the ledger keeps the hash of what was written);
* is closed at handoff — the first run in a later shift — with a summary comment (``status`` to
  the server's closed status + ``comment``).

Never duplicated. The shift's record (``todos`` in the ledger) holds the task once created. The
create's intent is recorded before the write, with a *marker* line in the description that names
the shift; after an uncertain create (timeout, crash) the next run searches the bot's tasks
created since the intent for that marker before creating again (``delivery/tasks.py``). Every
write counts against ``max_writes_per_run`` and is a dry run unless applied.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping, Sequence

from clinicbot import escape
from clinicbot.delivery.outbox import Action, Outbox, Recipient, Resolution, text_hash
from clinicbot.state.ledger import Ledger, Todo

MARKER = "clinicbot-todo"
Render = Callable[..., str]


@dataclass(frozen=True)
class Shift:
    start: datetime
    end: datetime | None
    members: tuple[str, ...]  # usernames on duty, sorted

    @property
    def id(self) -> str:
        return f"{self.start.isoformat()}/{'+'.join(self.members)}"

    @property
    def marker(self) -> str:
        return marker_of(self.id)


def marker_of(shift_id: str) -> str:
    """The line a shift's TODO description carries: finds the task after an uncertain create."""
    return f"{MARKER}:{hashlib.sha256(shift_id.encode()).hexdigest()[:16]}"


def current_shift(rotation: Any, now: datetime, *, lookback_days: int = 62) -> Shift | None:
    """The shift at ``now`` from the rotation, or None when nobody is on duty."""
    if rotation is None:
        return None
    from datetime import timedelta

    from clinicbot.rotation import changes_between, on_duty, upcoming_changes

    members = tuple(sorted(m.username for m in on_duty(rotation, now)))
    if not members:
        return None
    past = [c.at for c in changes_between(rotation, now - timedelta(days=lookback_days), now)]
    start = max(past) if past else now - timedelta(days=lookback_days)
    future = [c.at for c in upcoming_changes(rotation, now, lookback_days) if c.at > now]
    return Shift(start, min(future) if future else None, members)


def merge_items(items: Sequence[Mapping[str, Any]], findings: Iterable[Any],
                ran: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The checklist: earlier items (ticked when their finding is gone), then new findings, in order.
    ``ran``: the checks that ran cleanly; an item of another check keeps its state."""
    current = {f.key: f for f in findings}
    judged = set(ran) if ran is not None else None
    out = []
    for item in items:
        f = current.pop(item["key"], None)
        if f is None and judged is not None and item.get("slug") not in judged:
            out.append(dict(item))
            continue
        out.append({**item, "open": f is not None})
    out += [{**_item(f), "open": True} for f in current.values()]
    return out


def _item(finding: Any) -> dict[str, Any]:
    """An item says what it is about as first seen: the task's title, or (no task) the summary. Not
    the summary of a task finding: its ages change every run, and the description would with them."""
    text = (finding.facts or {}).get("title") if finding.task_id is not None else None
    return {"key": finding.key, "summary": str(text or finding.summary), "slug": finding.slug,
            "severity": finding.severity, "task": f"T{finding.task_id}" if finding.task_id is not None else None}


@dataclass
class TodoPlanner:
    """Plans the TODO writes of one run into the outbox; keeps the shifts' records in the ledger."""

    outbox: Outbox
    ledger: Ledger
    render: Render  # render(template name, **context) -> text
    now: datetime
    closed_status: str = "resolved"
    team: str = ""

    def plan(self, shift: Shift | None, people: Sequence[Recipient], findings: Sequence[Any], *,
             ran: Iterable[str] | None = None) -> None:
        for todo in self.ledger.open_todos():
            if shift is None or todo.shift != shift.id:
                self._close(todo)
        if shift is None:
            return
        todo = self.ledger.todo(shift.id)
        if todo is None and not findings:
            return  # created at the shift's first finding
        items = merge_items(todo.items if todo else [], findings, ran)
        todo = self.ledger.save_todo(shift.id, start=shift.start, end=shift.end, members=list(shift.members),
                                     items=items)
        description = self.render("checks/_todo.remarkup.j2", items=items, shift=shift, team=self.team,
                                  now=self.now).strip() + f"\n\n//{shift.marker}//"
        digest = text_hash(description)
        refs = [{"todo": shift.id, "hash": digest}]
        severity = min((i["severity"] for i in items if i["open"]), key=_rank, default="info")
        if todo.task_phid is None:
            owner = next((p for p in people if p.phid), None)
            title = escape.one_line(f"Clinic duty TODO {shift.start.date().isoformat()}: {', '.join(shift.members)}")
            xactions: list[dict[str, Any]] = [{"type": "title", "value": title},
                                              {"type": "description", "value": description}]
            if owner is not None:
                xactions.append({"type": "owner", "value": owner.phid})
            subscribers = [p.phid for p in people if p.phid]
            if subscribers:
                xactions.append({"type": "subscribers.add", "value": subscribers})
            action = self.outbox.task_edit("todo", None, xactions, f"todo:create:{shift.marker}",
                                           text=f"create {title}\n\n{description}",
                                           state={"kind": "created", "marker": shift.marker},
                                           refs=[{**refs[0], "op": "create"}])
        elif digest != todo.description_hash:
            action = self.outbox.task_edit("todo", _Ref(todo), [{"type": "description", "value": description}],
                                           f"todo:update:{shift.marker}:{digest[7:23]}", text=description,
                                           state={"kind": "description", "hash": digest},
                                           refs=[{**refs[0], "op": "update"}])
        else:
            return  # unchanged: no call
        action.severity, action.since = severity, shift.start

    def _close(self, todo: Todo) -> None:
        if todo.task_phid is None:
            if f"todo:create:{marker_of(todo.shift)}" not in {i.key for i in self.ledger.pending_intents()}:
                self.ledger.save_todo(todo.shift, closed_at=self.now)  # never created: nothing to close
            return
        summary = self.render("checks/_todo_close.remarkup.j2", items=todo.items, todo=todo, team=self.team,
                              now=self.now).strip()
        action = self.outbox.task_edit(
            "todo", _Ref(todo), [{"type": "status", "value": self.closed_status}, {"type": "comment", "value": summary}],
            f"todo:close:{todo.shift}", text=f"close (handoff)\n\n{summary}",
            state={"kind": "closed", "status": self.closed_status}, refs=[{"todo": todo.shift, "op": "close"}])
        action.severity, action.since = "warning", todo.start


@dataclass(frozen=True)
class _Ref:
    """The TODO task as the outbox needs it (id and PHID)."""

    todo: Todo

    @property
    def id(self) -> int | None:
        return self.todo.task_id

    @property
    def phid(self) -> str | None:
        return self.todo.task_phid


def _rank(severity: str) -> int:
    return {"critical": 0, "warning": 1, "info": 2}.get(severity, 3)


def record_written(ledger: Ledger, actions: Iterable[Action], resolutions: Iterable[Resolution], now: datetime) -> None:
    """After delivery (and after settling an earlier run's writes): what the shifts' tasks now are."""
    done: list[tuple[Mapping[str, Any], dict[str, Any] | None]] = []
    for res in resolutions:
        if res.delivered and res.intent.handler == "todo":
            done += [(ref, res.object) for ref in res.intent.refs if isinstance(ref, Mapping) and "todo" in ref]
    for action in actions:
        if action.handler == "todo" and action.status == "posted":
            done += [(ref, action.extra.get("object")) for ref in action.refs if isinstance(ref, Mapping)]
    for ref, obj in done:
        shift, op = str(ref["todo"]), ref.get("op")
        if ledger.todo(shift) is None:
            continue
        if op == "create" and obj:
            ledger.save_todo(shift, task_phid=obj.get("phid"), task_id=obj.get("id"), description_hash=ref.get("hash", ""))
        elif op == "update":
            ledger.save_todo(shift, description_hash=ref.get("hash", ""))
        elif op == "close":
            ledger.save_todo(shift, closed_at=now)


__all__ = ["MARKER", "Shift", "marker_of", "TodoPlanner", "current_shift", "merge_items", "record_written"]
