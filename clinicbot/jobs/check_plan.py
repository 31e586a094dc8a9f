"""Planning the check job's writes: decisions -> outbox actions (comments, subscribes, chat, email,
console lines, task edits), one per handler and task (or one message for chat and email).

:mod:`clinicbot.jobs.check` decides (:func:`~clinicbot.jobs.check.decide`) and keeps the ledger; the
:class:`Planner` here turns its :class:`Decision` list into the :class:`~clinicbot.delivery.outbox.Outbox`'s
planned actions, with idempotency keys stable across runs (a rerun after a crash plans the same keys).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Sequence

from clinicbot.checks.base import Finding
from clinicbot.delivery import tasks as task_edits
from clinicbot.delivery.outbox import Outbox, Recipient
from clinicbot.reports.templating import Templates
from clinicbot.state.ledger import Record


@dataclass
class Decision:
    finding: Finding
    record: Record | None
    act: bool
    handlers: list[str]
    reason: str
    repetition: int = 0  # 0: first handling of the episode; n: the n-th reminder
    escalations: list[int] = field(default_factory=list)  # escalation steps applying now
    escalated: bool = False
    snoozed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.finding.key, "act": self.act, "handlers": self.handlers, "reason": self.reason,
                "repetition": self.repetition, "episode": self.record.episode if self.record else None}



# --------------------------------------------------------------------------------------------
# Planning: decisions -> outbox actions


def _short_hash(parts: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()[:16]


def _ref(d: Decision) -> dict[str, Any]:
    assert d.record is not None
    return {"record": d.record.doc_id, "escalations": d.escalations, "handling": d.record.times_handled + 1}


def _handling_id(d: Decision) -> str:
    # Stable across runs for the same handling: a rerun after a crash plans the same key.
    assert d.record is not None
    return f"{d.finding.key}#{d.record.episode}.{d.record.times_handled + 1}"


@dataclass
class Planner:
    outbox: Outbox
    templates: Templates
    snapshot: Any
    recipients: list[Recipient]
    on_duty_note: str
    team: str
    base_url: str
    now: datetime

    def task_url(self, finding: Finding) -> str | None:
        return f"{self.base_url}T{finding.task_id}" if finding.task_id is not None else None

    def plan(self, decisions: Sequence[Decision]) -> None:
        by_handler: dict[str, list[Decision]] = {}
        for d in decisions:
            if d.snoozed:
                task = f"T{d.finding.task_id}" if d.finding.task_id is not None else None
                for h in d.handlers:
                    self.outbox.skip(h, task, f"{h}:{_handling_id(d)}", d.reason, text=d.finding.summary)
                continue
            if not d.act:
                continue
            for h in d.handlers:
                by_handler.setdefault(h, []).append(d)
        for handler in ("move", "untag"):
            self._task_edits(handler, by_handler.get(handler, []))
        commented_tasks = self._comments(by_handler.get("comment", []))
        self._subscribes(by_handler.get("subscribe", []), commented_tasks)
        if by_handler.get("chat"):
            self._chat(by_handler["chat"])
        if by_handler.get("email"):
            self._email(by_handler["email"])
        for d in by_handler.get("console", []):
            task = f"T{d.finding.task_id}" if d.finding.task_id is not None else None
            self.outbox.console_message(f"[{d.finding.severity}] {d.finding.slug}: {d.finding.summary}",
                                        "console:" + _handling_id(d), task=task, refs=[_ref(d)])
        known = {"comment", "subscribe", "chat", "email", "console", "move", "untag", "todo"}  # todo: plan_todo
        for h, ds in by_handler.items():
            if h not in known:
                for d in ds:
                    self.outbox.skip(h, None, f"{h}:{_handling_id(d)}", f"unknown handler {h!r}", refs=[_ref(d)])
        self._rank(decisions)

    def _rank(self, decisions: Sequence[Decision]) -> None:
        """Each write's urgency (over the cap, on_cap: most-urgent): its most severe finding, then the oldest.
        Only writes are ranked (console lines, one per finding, are never over the cap)."""
        by_record = {d.record.doc_id: d for d in decisions if d.record is not None}
        order = {"critical": 0, "warning": 1, "info": 2}
        for action in self.outbox.actions:
            if not action.is_write:
                continue
            ds = [by_record[r["record"]] for r in action.refs if isinstance(r, Mapping) and r.get("record") in by_record]
            if ds and not action.severity:
                action.severity = min((d.finding.severity for d in ds), key=lambda s: order.get(s, 3))
                action.since = min(d.record.created_at for d in ds if d.record is not None)

    def _task_edits(self, handler: str, ds: list[Decision]) -> None:
        """``move``: into the finding's ``to_column_phid`` (review-migration); ``untag``: remove its
        ``untag_phids`` (untag-candidate). Nothing is planned when the task already is so."""
        for phid, group in self._by_task(ds, handler).items():
            task = self.snapshot.tasks[phid]
            for d in group:
                facts, key = d.finding.facts, f"{handler}:T{task.id}:{_short_hash([_handling_id(d)])}"
                if handler == "move" and facts.get("to_column_phid") and facts.get("move_due", True):
                    state = task_edits.column_state(str(facts["to_board_phid"]), str(facts["to_column_phid"]))
                    xactions = task_edits.move_transactions(task, state["board"], state["column"])
                    text = f"move to {facts.get('to_board')}: {facts.get('to_column')}"
                elif handler == "untag" and facts.get("untag_phids"):
                    state = task_edits.untag_state(facts["untag_phids"])
                    xactions = [{"type": "projects.remove", "value": state["projects"]}]
                    text = f"remove tag(s) {', '.join(map(str, facts.get('untag') or state['projects']))}"
                else:
                    why = "waits for its next column change" if facts.get("to_column_phid") else \
                        f"nothing to {handler} in this finding (no target)"
                    self.outbox.skip(handler, f"T{task.id}", key, why, refs=[_ref(d)])
                    continue
                if task_edits.holds_locally(task, state):
                    self.outbox.skip(handler, f"T{task.id}", key, "already done on the task", refs=[_ref(d)])
                    continue
                self.outbox.task_edit(handler, task, xactions, key, text=text, state=state, refs=[_ref(d)])

    def _by_task(self, ds: list[Decision], handler: str) -> dict[str, list[Decision]]:
        grouped: dict[str, list[Decision]] = {}
        for d in ds:
            if d.finding.task_phid is None or d.finding.task_phid not in self.snapshot.tasks:
                self.outbox.skip(handler, None, f"{handler}:{_handling_id(d)}",
                                 "not about one task on the watched boards (use chat, email or console)", refs=[_ref(d)])
                continue
            grouped.setdefault(d.finding.task_phid, []).append(d)
        return grouped

    def _comments(self, ds: list[Decision]) -> set[str]:
        done = set()
        mentions = [r.username for r in self.recipients]
        for phid, group in self._by_task(ds, "comment").items():
            task = self.snapshot.tasks[phid]
            text = self.comment_text(task, group, mentions)
            key = f"comment:T{task.id}:{_short_hash(_handling_id(d) for d in group)}"
            self.outbox.comment(task, text, key, mentions=mentions, refs=[_ref(d) for d in group])
            done.add(phid)
        return done

    def comment_text(self, task: Any, group: list[Decision], mentions: list[str]) -> str:
        sections = []
        for d in group:
            name = self.templates.first_of(f"checks/{d.finding.slug}.remarkup.j2", "checks/_default.remarkup.j2")
            sections.append(self.templates.render(name, finding=d.finding, facts=dict(d.finding.facts), task=task,
                                                  repetition=d.repetition, escalated=d.escalated, now=self.now,
                                                  url=self.task_url(d.finding)).strip())
        return self.templates.render("checks/_comment.remarkup.j2", task=task, sections=sections,
                                     mentions=["@" + m for m in mentions], on_duty_note=self.on_duty_note,
                                     team=self.team, now=self.now)

    def _subscribes(self, ds: list[Decision], commented: set[str]) -> None:
        for phid, group in self._by_task(ds, "subscribe").items():
            task = self.snapshot.tasks[phid]
            key = f"subscribe:T{task.id}:{_short_hash(_handling_id(d) for d in group)}"
            refs = [_ref(d) for d in group]
            wanted = [r for r in self.recipients if r.phid]
            if phid in commented and self.recipients:
                self.outbox.skip("subscribe", f"T{task.id}", key, "the comment's @mentions subscribe them", refs=refs)
                continue
            missing = [r for r in wanted if r.phid not in set(task.subscriber_phids)]
            if not missing:
                why = "already subscribed" if wanted else "nobody on duty to subscribe"
                self.outbox.skip("subscribe", f"T{task.id}", key, why, refs=refs)
                continue
            self.outbox.subscribe(task, [r.phid for r in missing if r.phid], key,
                                  usernames=[r.username for r in missing], refs=refs)

    def _items(self, ds: list[Decision]) -> list[dict[str, Any]]:
        return [{"finding": d.finding, "url": self.task_url(d.finding), "repetition": d.repetition,
                 "escalated": d.escalated, "facts": dict(d.finding.facts)} for d in ds]

    def _context(self, ds: list[Decision]) -> dict[str, Any]:
        return {"items": self._items(ds), "on_duty_note": self.on_duty_note, "team": self.team, "now": self.now,
                "recipients": self.recipients}

    def _people(self, ds: list[Decision]) -> list[Recipient]:
        """The engineers on duty, plus whoever a rotation notice is about: they must hear it too."""
        people = list(self.recipients)
        known = {r.username for r in people}
        for d in ds:
            facts = d.finding.facts
            if d.finding.slug == "rotation-notice" and facts.get("username") and facts["username"] not in known:
                known.add(facts["username"])
                people.append(Recipient(username=str(facts["username"]), name=str(facts.get("name") or ""),
                                        email=str(facts.get("email") or ""), chat=str(facts.get("chat") or "")))
        return people

    def _chat(self, ds: list[Decision]) -> None:
        people = self._people(ds)
        handles = [r.chat_handle for r in people]
        text = self.templates.render("chat/findings.chat.j2", mentions=handles, **self._context(ds))
        key = f"chat:{_short_hash(_handling_id(d) for d in ds)}"
        self.outbox.chat(text, key, mentions=[r.chat for r in people if r.chat], refs=[_ref(d) for d in ds])

    def _email(self, ds: list[Decision]) -> None:
        ctx = self._context(ds)
        subject = self.templates.render("email/findings.subject.j2", **ctx).strip()
        text = self.templates.render("email/findings.txt.j2", **ctx)
        html = self.templates.render("email/findings.html.j2", **ctx)
        to = list(dict.fromkeys(r.email for r in self._people(ds) if r.email))
        key = f"email:{_short_hash(_handling_id(d) for d in ds)}"
        self.outbox.email(to, subject, text, html, key, refs=[_ref(d) for d in ds])


__all__ = ["Decision", "Planner"]
