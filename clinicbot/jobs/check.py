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

import logging
from collections.abc import Mapping  # not typing's: its isinstance() is ~10x slower (one per finding)
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, Sequence

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
from clinicbot.delivery.todo import TodoPlanner, current_shift, record_written
from clinicbot.errors import EXIT_CAP, EXIT_FAILURE, EXIT_OK, ConfigError, SafetyCapExceeded
from clinicbot.state.cache_rows import gc_paused
from clinicbot.state.ledger import Ledger, Outcome, Record, iso, snoozed
from clinicbot.jobs.check_plan import Decision, Planner  # re-exported: callers import them from here
from clinicbot.reports.templating import Templates

log = logging.getLogger(__name__)

CRASH_ENV = "CLINICBOT_TEST_CRASH_AFTER_WRITE"  # test-only, see delivery/outbox.py


# --------------------------------------------------------------------------------------------
# Deciding what to do about one finding


def _step(step: Any, name: str) -> Any:
    return step.get(name) if isinstance(step, Mapping) else getattr(step, name, None)


def _setting(settings: Any, name: str, default: Any) -> Any:
    if settings is None:
        return default
    value = settings.get(name, default) if isinstance(settings, Mapping) else getattr(settings, name, default)
    return default if value is None and name == "handlers" else value


@dataclass(frozen=True)
class Policy:
    """What :func:`decide` reads of a check's settings, read once per check rather than per finding."""

    handlers: tuple[str, ...]
    repeat: Any  # repetition_seconds, None: fires once
    steps: tuple[Any, ...]  # escalation steps

    @classmethod
    def of(cls, settings: Any) -> "Policy":
        if isinstance(settings, Policy):
            return settings
        return cls(tuple(_setting(settings, "handlers", ("console",))), _setting(settings, "repetition_seconds", None),
                   tuple(_setting(settings, "escalation", ()) or ()))


def decide(finding: Finding, record: Record | None, settings: Any, now: datetime) -> Decision:
    """Act now, and with which handlers? Pure: the record says what happened before. ``settings``:
    the check's settings (a CheckSettings, a mapping, None) or their :class:`Policy`."""
    policy = Policy.of(settings)
    base, repeat, steps = list(policy.handlers), policy.repeat, policy.steps
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


# The cyclic garbage collector is off for the whole job, not only while cache rows are parsed: the
# job keeps hundreds of thousands of objects until it ends (tasks, histories, findings, ledger
# records, actions) and makes hardly any cycles, so each full collection walked them all and freed
# nothing (ten of them in a 100,000-task run, 2 s of its 6 s of CPU). Cycles made meanwhile are
# collected after the job (the scheduler's process goes on).
@gc_paused()
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
    uses = {slug: "todo" in (Policy.of(settings.get(slug)).handlers) for slug in {d.finding.slug for d in decisions}}
    findings = [d.finding for d in decisions if uses[d.finding.slug]]
    statuses = [s.value for s in planner.snapshot.statuses if s.closed]
    closed = "resolved" if "resolved" in statuses or not statuses else statuses[0]
    todo = TodoPlanner(planner.outbox, ledger, planner.templates.render, planner.now, closed_status=closed, team=team)
    with ledger.batch():
        todo.plan(current_shift(rotation, planner.now), planner.recipients, findings, ran=ran)


def _decisions(ledger: Ledger, findings: list[Finding], settings: Mapping[str, Any], snapshot: Any,
               now: datetime) -> list[Decision]:
    out = []
    seen: set[str] = set()
    policies: dict[str, Policy] = {}
    snoozes = ledger.snoozes(now)  # read once, not once per finding
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
        policy = policies.get(f.slug) or policies.setdefault(f.slug, Policy.of(settings.get(f.slug)))
        d = decide(f, record, policy, now)
        snooze = snoozed(snoozes, f.slug, f.task_id) if snoozes else None
        if snooze is not None and d.act:
            # Shown as skipped actions (with the reason) for the handlers that would have fired.
            d.act, d.snoozed = False, True
            d.reason = f"snoozed until {iso(snooze.until)}" + (f" ({snooze.reason})" if snooze.reason else "")
        out.append(d)
    return out
