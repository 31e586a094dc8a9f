"""The check job: snapshot -> checks -> ledger (episodes, repetition, escalation) -> outbox.

:func:`run_check_job` is what ``clinicbot check`` and the scheduler both call. The pure parts
(:func:`decide`, :func:`on_duty_recipients`, the renderers) take everything as arguments so
tests feed them plain data.

Episodes. A finding's ``key`` names a condition. The first run that sees it opens a record
(episode 1) and handles it; later runs that still see it are *repetitions*, handled again only
when ``repetition_seconds`` have passed since the last handling (``None``: never again). A run
of the same checks that no longer sees the key closes the record; seeing it again later opens
episode 2. Escalation steps (``after_repetitions: N`` / ``after_seconds: S`` since the episode
began) add their handlers, once the step applies, for the rest of the episode.

Dry runs use a private in-memory copy of the ledger (no lock, nothing saved): the same code
runs, so the dry run shows exactly what the real run would post.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, Mapping, Sequence

from clinicbot.delivery.outbox import (
    Action,
    Outbox,
    Recipient,
    Resolution,
    chat_sender_from_config,
    email_sender_from_config,
    settle_window,
    text_hash,
    validate_delivery,
)
from clinicbot.checks.base import Finding
from clinicbot.delivery import tasks as task_edits
from clinicbot.delivery.todo import TodoPlanner, current_shift, record_written
from clinicbot.errors import EXIT_CAP, EXIT_FAILURE, EXIT_OK, ConfigError, SafetyCapExceeded
from clinicbot.state.ledger import Ledger, Outcome, Record, iso
from clinicbot.reports.templating import Templates

log = logging.getLogger(__name__)

CRASH_ENV = "CLINICBOT_TEST_CRASH_AFTER_WRITE"  # test-only, see delivery/outbox.py


# --------------------------------------------------------------------------------------------
# Deciding what to do about one finding


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


def _step(step: Any, name: str) -> Any:
    return step.get(name) if isinstance(step, Mapping) else getattr(step, name, None)


def _setting(settings: Any, name: str, default: Any) -> Any:
    if settings is None:
        return default
    value = settings.get(name, default) if isinstance(settings, Mapping) else getattr(settings, name, default)
    return default if value is None and name == "handlers" else value


def decide(finding: Finding, record: Record | None, settings: Any, now: datetime) -> Decision:
    """Act now, and with which handlers? Pure: the record says what happened before."""
    base = list(_setting(settings, "handlers", ("console",)))
    repeat = _setting(settings, "repetition_seconds", None)
    steps = list(_setting(settings, "escalation", ()) or ())
    fired = set(record.escalations) if record else set()
    started = record.created_at if record else now
    episode_age = (now - started).total_seconds()

    def applies(step: Any, repetition: int, repeating: bool) -> bool:
        after_reps, after_secs = _step(step, "after_repetitions"), _step(step, "after_seconds")
        if after_secs is not None:
            return episode_age >= after_secs
        return repeating and after_reps is not None and repetition >= after_reps

    def with_steps(handlers: list[str], idx: list[int]) -> list[str]:
        out = list(handlers)
        for i in idx:
            out += [h for h in _step(steps[i], "handlers") or () if h not in out]
        return out

    if record is None or record.handled_at is None:
        idx = [i for i, s in enumerate(steps) if applies(s, 0, False)]
        # A record made this run has no outcomes yet; one with outcomes saw every write fail before.
        reason = "new" if record is None or not record.outcomes else "not handled yet"
        return Decision(finding, record, True, with_steps(base, idx), reason, 0, idx, bool(idx))

    repetition = record.times_handled  # this handling would be reminder number `repetition`
    since = (now - record.handled_at).total_seconds()
    if repeat is not None and since >= repeat:
        idx = [i for i, s in enumerate(steps) if applies(s, repetition, True)]
        return Decision(finding, record, True, with_steps(base, idx), f"repetition {repetition}", repetition, idx,
                        bool(idx))
    # Not due for a reminder; a time-based escalation step may still have come due.
    new = [i for i, s in enumerate(steps) if i not in fired and applies(s, repetition - 1, False)]
    if new:
        return Decision(finding, record, True, with_steps([], new), "escalation", repetition, new, True)
    if repeat is None:
        reason = f"fires once; handled at {iso(record.handled_at)}"
    else:
        reason = f"repetition due at {iso(record.handled_at + timedelta(seconds=repeat))}"
    return Decision(finding, record, False, [], reason, repetition)


# --------------------------------------------------------------------------------------------
# Who gets pinged


def on_duty_recipients(rotation: Any, now: datetime, users_by_name: Mapping[str, Any]) -> tuple[list[Recipient], str]:
    """Engineers on duty who are not away on Phabricator; the manager when there is nobody."""
    members: list[Any] = []
    if rotation is not None:
        from clinicbot.rotation import on_duty

        members = on_duty(rotation, now)
    out, away = [], []
    for m in members:
        user = users_by_name.get(m.username)
        if user is not None and (user.is_away or user.is_disabled):
            away.append(m.username)
            continue
        out.append(Recipient(m.username, m.name, m.email, m.chat, user.phid if user else None))
    if out:
        return out, ""
    manager = getattr(rotation, "manager", None) if rotation is not None else None
    if manager is not None:
        if isinstance(manager, str):
            manager = getattr(rotation, "members", {}).get(manager) or type("M", (), {
                "username": manager, "name": "", "email": "", "chat": ""})()
        user = users_by_name.get(manager.username)
        why = "everyone on duty is away" if away else "nobody is on duty"
        return [Recipient(manager.username, manager.name, manager.email, manager.chat,
                          user.phid if user else None)], f"{why}: pinging the manager"
    return [], "nobody is on duty and the rotation names no manager"


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
        """Each write's urgency (over the cap, on_cap: most-urgent): its most severe finding, then the oldest."""
        by_record = {d.record.doc_id: d for d in decisions if d.record is not None}
        order = {"critical": 0, "warning": 1, "info": 2}
        for action in self.outbox.actions:
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


# --------------------------------------------------------------------------------------------
# Ledger bookkeeping around the outbox


def apply_resolutions(ledger: Ledger, resolutions: Iterable[Resolution]) -> None:
    """An earlier run's write turned out to have happened: count its handling now."""
    for res in resolutions:
        if not res.delivered:
            continue
        for ref in res.intent.refs:
            if not isinstance(ref, Mapping) or "record" not in ref:
                continue
            rid = int(ref["record"])
            try:
                rec = ledger.record(rid)
            except KeyError:
                continue
            outcome = Outcome(res.intent.handler, "posted", iso(res.intent.at), res.intent.text_hash,
                              res.transaction_phid, res.detail)
            # One crashed run = one handling, however many of its writes turn up.
            handled = rec.times_handled < int(ref.get("handling", 1))
            ledger.note_handled(rid, res.intent.at, [outcome], escalations=ref.get("escalations") or (), handled=handled)


def record_outcomes(ledger: Ledger, decisions: Sequence[Decision], actions: Sequence[Action], now: datetime) -> None:
    """After delivery: outcomes per record; a record counts as handled when anything reached someone
    (or nothing could fail), and stays unhandled — retried next run — when every write failed."""
    by_record: dict[int, list[Action]] = {}
    for a in actions:
        for ref in a.refs:
            if isinstance(ref, Mapping) and "record" in ref:
                by_record.setdefault(int(ref["record"]), []).append(a)
    for d in decisions:
        if not d.act or d.record is None:
            continue
        acts = by_record.get(d.record.doc_id, [])
        outcomes = [Outcome(a.handler, "posted" if a.done else a.status, iso(now), text_hash(a.text) if a.text else "",
                            a.transaction_phid, a.error or a.reason) for a in acts]
        # Skipped for a reason that will not change (snoozed, nobody to email) counts as handled;
        # skipped while an earlier write is unconfirmed does not: the next run settles it first. A
        # write deferred over the cap keeps the whole handling open: the next run plans it again
        # (the keys of what did go out this run are delivered: they are not written twice).
        handled = not any(a.deferred for a in acts) and (
            any(a.done for a in acts) or all(a.status == "skipped" and not a.waiting for a in acts))
        ledger.note_handled(d.record.doc_id, now, outcomes, escalations=d.escalations, handled=handled)
        if any(a.done for a in acts) and d.finding.slug == "rotation-notice":
            ledger.mark_notice_told(str(d.finding.facts.get("notice_key") or d.finding.key), now, d.finding.summary)


# --------------------------------------------------------------------------------------------
# The job


@dataclass
class CheckRunResult:
    apply: bool
    now: datetime
    findings: list[Finding]
    failures: list[Any]
    decisions: list[Decision] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    cleared: list[Record] = field(default_factory=list)
    resolutions: list[Resolution] = field(default_factory=list)
    recipients: list[Recipient] = field(default_factory=list)
    on_duty_note: str = ""
    cap_error: SafetyCapExceeded | None = None

    @property
    def exit_code(self) -> int:
        if self.cap_error is not None:
            return EXIT_CAP
        return EXIT_FAILURE if self.findings or self.failures else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return {
            "apply": self.apply,
            "now": self.now.isoformat(),
            "findings": [finding_json(f) for f in self.findings],
            "actions": [a.to_dict() for a in self.actions],
            "failures": [failure_json(f) for f in self.failures],
            "decisions": [d.to_dict() for d in self.decisions],
            "cleared": [r.key for r in self.cleared],
            "on_duty": [r.username for r in self.recipients],
            "cap_error": str(self.cap_error) if self.cap_error else None,
        }


def finding_json(f: Finding) -> dict[str, Any]:
    return {"slug": f.slug, "task": f"T{f.task_id}" if f.task_id is not None else None, "severity": f.severity,
            "summary": f.summary, "key": f.key, "facts": dict(f.facts)}


def failure_json(f: Any) -> dict[str, Any]:
    if isinstance(f, Mapping):
        return dict(f)
    slug = getattr(f, "slug", None)
    error = getattr(f, "error", None) or getattr(f, "message", None) or str(f)
    return {"slug": slug, "error": str(error)}


def _find(checks: list[Any], settings: Mapping[str, Any], snapshot: Any, rotation: Any, team: Any, *,
          only: str | None, task: int | None) -> tuple[list[Finding], list[Any], set[str]]:
    """Run the checks; also say which slugs ran cleanly (only their missing keys may be cleared)."""
    from clinicbot.checks import context_factory, run_checks

    # An explicit --only runs the check even if the config switched it off.
    chosen = [c for c in checks if c.slug == only] if only else [c for c in checks if settings[c.slug].enabled]
    result = run_checks(chosen, context_factory(snapshot, settings, team=team, rotation=rotation), task_id=task)
    failed = {f.slug for f in result.failures}
    return list(result.findings), list(result.failures), set(result.ran) - failed


def run_check_job(app: Any, *, apply: bool | None = None, only: str | None = None, task: int | None = None,
                  chat_sender: Any = None, email_sender: Any = None,
                  console: Callable[[str], None] | None = None) -> CheckRunResult:
    """Snapshot -> checks -> ledger -> outbox. ``apply=None`` takes the config's ``apply``.

    Senders default to the ones ``delivery:`` configures; tests pass fakes. ``console`` receives
    the ``console`` handler's lines (default: the app's console). Raises ClinicbotError
    for config, state (lock held, corrupt ledger) and Conduit problems, and
    :class:`SafetyCapExceeded` (before any write, dry run or not) with the planned result
    attached as ``exc.result`` so the caller can still show the plan.
    """
    config = app.config()
    now = app.now()
    apply = bool(config.get("apply")) if apply is None else apply
    rotation = app.rotation()
    from clinicbot.checks import TeamSettings, load_checks_and_settings

    team = TeamSettings.from_config(config, rotation)
    checks, settings = load_checks_and_settings(config.section("checks"), error=config.error)
    validate_delivery(config.section("delivery"), config.error)
    if only is not None and only not in {c.slug for c in checks}:
        raise ConfigError(None, "--only", f"unknown check {only!r}; known checks: {', '.join(sorted(c.slug for c in checks))}")

    # Take the lock before the (slow) snapshot: a second instance fails fast and fetches nothing.
    ledger = Ledger.open(config.state_dir, readonly=not apply)
    try:
        from clinicbot.jobs.context import load_snapshot

        client = app.client()
        snapshot = load_snapshot(app, open_only=True)  # every check reads open tasks only
        findings, failures, ran = _find(checks, settings, snapshot, rotation, team, only=only, task=task)
        users_by_name = {u.username: u for u in snapshot.users.values()}
        recipients, note = on_duty_recipients(rotation, now, users_by_name)
        delivery = config.section("delivery")
        outbox = Outbox(
            client, ledger, apply=apply, cap=int(config.get("max_writes_per_run")), now=now,
            chat_sender=chat_sender if chat_sender is not None else chat_sender_from_config(delivery, app.env),
            email_sender=email_sender if email_sender is not None else email_sender_from_config(delivery, app.env),
            console=console or (lambda text: app.console.print(text, markup=False, highlight=False)),
            bot_phid=snapshot.bot_phid, crash_after_write=app.env.get(CRASH_ENV) == "1",
            clock=app.wall_clock, settle=settle_window(config), on_cap=str(config.get("on_cap")),
        )
        result = CheckRunResult(apply, now, findings, failures, recipients=recipients, on_duty_note=note)
        result.resolutions = outbox.resolve_pending()
        with ledger.batch():
            apply_resolutions(ledger, result.resolutions)
            record_written(ledger, (), result.resolutions, now)
            result.decisions = _decisions(ledger, findings, settings, snapshot, now)
            result.cleared = ledger.clear_missing({f.key for f in findings}, now, slugs=ran, task_id=task)
        planner = Planner(outbox, Templates(config.templates_dir), snapshot, recipients, note,
                          str(config.get("team.name")), config.url, now)
        planner.plan(result.decisions)
        if only is None and task is None:  # a narrowed run does not see the whole checklist
            plan_todo(planner, ledger, settings, result.decisions, rotation, str(config.get("team.name")), ran)
        try:
            outbox.deliver()
        except SafetyCapExceeded as exc:
            # Nothing was written. The plan rides along so the CLI can still show it.
            result.cap_error = exc
            result.actions = outbox.actions
            exc.result = result  # type: ignore[attr-defined]
            raise
        result.actions = outbox.actions
        if apply:
            with ledger.batch():
                record_outcomes(ledger, result.decisions, outbox.actions, now)
                record_written(ledger, outbox.actions, (), now)
                ledger.prune(now)
            forget_untagged(config, outbox.actions)
        return result
    finally:
        ledger.close()


def forget_untagged(config: Any, actions: Sequence[Action]) -> None:
    """Drop the tasks this run untagged from the sync cache. An incremental sync asks only for tasks on
    the watched boards, so a task untagged from them would stay cached with its old tags (and be found
    again); forgotten, it comes back with the next sync only if it is still on a watched board (the
    untag bumped its dateModified past the high-water mark)."""
    phids = {a.task_phid for a in actions if a.handler == "untag" and a.status == "posted" and a.task_phid}
    if not phids:
        return
    from clinicbot.state.cache import CacheStore, cache_path

    with CacheStore(cache_path(config)) as store:
        store.forget_tasks(phids)


def plan_todo(planner: Planner, ledger: Ledger, settings: Mapping[str, Any], decisions: Sequence[Decision],
              rotation: Any, team: str, ran: set[str]) -> None:
    """The ``todo`` handler: the shift's checklist task holds the findings of the checks that use it
    (snoozed ones too: they are still there); items of a check that failed this run stay as they were."""
    findings = [d.finding for d in decisions if "todo" in _setting(settings.get(d.finding.slug), "handlers", ())]
    statuses = [s.value for s in planner.snapshot.statuses if s.closed]
    closed = "resolved" if "resolved" in statuses or not statuses else statuses[0]
    todo = TodoPlanner(planner.outbox, ledger, planner.templates.render, planner.now, closed_status=closed, team=team)
    with ledger.batch():
        todo.plan(current_shift(rotation, planner.now), planner.recipients, findings, ran=ran)


def _decisions(ledger: Ledger, findings: list[Finding], settings: Mapping[str, Any], snapshot: Any,
               now: datetime) -> list[Decision]:
    out = []
    seen: set[str] = set()
    for f in findings:
        if f.key in seen:  # one condition, one decision, even if a check reports it twice
            continue
        seen.add(f.key)
        record = ledger.open_record(f.key)
        if record is None:
            task = snapshot.tasks.get(f.task_phid) if f.task_phid else None
            record = ledger.start_episode(f, now, project_phids=getattr(task, "project_phids", ()) or ())
        else:
            ledger.seen(record.doc_id, now, f)
        if f.slug == "rotation-notice" and ledger.notice_told(str(f.facts.get("notice_key") or f.key)):
            out.append(Decision(f, record, False, [], "notice already told"))
            continue
        d = decide(f, record, settings.get(f.slug), now)
        snooze = ledger.snoozed(f.slug, f.task_id, now)
        if snooze is not None and d.act:
            # Shown as skipped actions (with the reason) for the handlers that would have fired.
            d.act, d.snoozed = False, True
            d.reason = f"snoozed until {iso(snooze.until)}" + (f" ({snooze.reason})" if snooze.reason else "")
        out.append(d)
    return out
