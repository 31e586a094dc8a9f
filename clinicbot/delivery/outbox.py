"""Deliveries: the only module that writes to the outside world.

Task comments and subscribers (``maniphest.edit``), chat (a Slack-compatible incoming
webhook) and email (SMTP); wiki pages live in ``delivery/wiki.py``, the chat and SMTP senders in ``delivery/senders.py``. Everything goes through an
:class:`Outbox`: callers *plan* actions, then :meth:`Outbox.deliver` checks them against the
ledger and the per-run cap and — only when applying — performs them.

Never twice. Before each write the ledger records an *intent* (idempotency key, task, text
hash, time); after it, the outcome. A write whose answer never came (timeout ->
:class:`ConduitWriteUncertain`, a crash, ``kill -9``) leaves a pending intent; the next run's
:meth:`Outbox.resolve_pending` looks for the bot's own comment on that task (``transaction.search``
by the bot's PHID, after the intent time, same text hash) before anything is posted again. The
intent is stamped with the wall clock (the server's comment is), not with a run's ``--now``. A
comment not found is only taken as "never posted" once the intent is older than the *settle
window* (``phabricator.settle_seconds``, default 5 × ``phabricator.timeout``): a server may apply a
write it received well after our timeout gave up; until then the intent stays pending and only
that write (its idempotency key) waits. Reports settle their intents exactly as checks do.
Chat and email cannot be looked up, so an unconfirmed message is assumed delivered (a missed
ping is better than a double one); subscribing is idempotent and simply redone. Task edits (a
column move, an untag, the duty TODO task) are settled by reading the task back: see
``delivery/tasks.py``.

The cap. More planned writes than ``cap`` abort the run before the first write
(:class:`SafetyCapExceeded`), unless ``on_cap="most-urgent"``: then the ``cap`` most urgent
writes go (severity critical > warning > info, then the oldest finding first) and the others
are ``skipped`` as *deferred* — not delivered, not counted as handled, so the next run plans them
again under the same idempotency keys (never twice still holds: keys of written ones are in the
ledger).

Test-only hook: with ``crash_after_write=True`` (the runner sets it from the environment
variable ``CLINICBOT_TEST_CRASH_AFTER_WRITE=1``) the process exits with ``os._exit(137)``
right after the first successful write and before the ledger hears of it — the SIGKILL
window the crash tests exercise. Never set it in production.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, Sequence

from clinicbot.errors import (
    ClinicbotError,
    ConduitError,
    ConduitWriteUncertain,
    SafetyCapExceeded,
)
from clinicbot import escape
from clinicbot.escape import ZWSP
from clinicbot.model import Person
from clinicbot.state.ledger import Intent, Ledger
from clinicbot.delivery import tasks as task_edits
from clinicbot.delivery.senders import (  # re-exported: callers import them from here too
    ChatSender,
    DeliveryError,
    DeliveryUncertain,
    EmailSender,
    SMTPEmailSender,
    WebhookChatSender,
    chat_sender_from_config,
    email_sender_from_config,
    validate_delivery,
)

log = logging.getLogger(__name__)

HANDLERS = ("comment", "subscribe", "chat", "email", "console", "move", "untag", "todo")
TASK_EDITS = frozenset({"move", "untag", "todo"})  # maniphest.edit with a desired state (delivery/tasks.py)
WRITE_HANDLERS = frozenset({"comment", "subscribe", "chat", "email"}) | TASK_EDITS
ON_CAP = ("abort", "most-urgent")
SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
OVER_CAP = "over the per-run cap (max_writes_per_run {cap}); next run"
STATUSES = ("planned", "posted", "skipped", "failed")
# The server's clock and ours may differ: look for the bot's comment a little before the intent.
CLOCK_SKEW = timedelta(minutes=10)
# A write whose answer timed out may still be applied by the server later (a PHP request keeps
# running after the client gave up). Until an uncertain comment is this many Conduit timeouts old,
# "not on the task" is not proof that it was never posted: the intent stays pending.
SETTLE_TIMEOUTS = 5


def settle_window(config: Any) -> timedelta:
    """``phabricator.settle_seconds``, or (unset) ``SETTLE_TIMEOUTS`` × ``phabricator.timeout``."""
    seconds = config.get("phabricator.settle_seconds")
    if seconds is None:
        seconds = SETTLE_TIMEOUTS * float(config.get("phabricator.timeout"))
    return timedelta(seconds=float(seconds))


def text_hash(text: str) -> str:
    """Hash of the text as the server will store it (line endings and outer blanks normalised)."""
    norm = text.replace("\r\n", "\n").strip()
    return "sha256:" + hashlib.sha256(norm.encode("utf-8")).hexdigest()


_MENTION = re.compile(r"(?<![\w@.\-/])@([A-Za-z0-9][A-Za-z0-9._-]*)")
# In chat, "<@U123>" left after guard_chat's first pass is an intended Slack mention.
_CHAT_MENTION = re.compile(r"(?<![\w@.\-/<])@([A-Za-z0-9][A-Za-z0-9._-]*)")


def guard_mentions(text: str, allowed: Iterable[str], *, pattern: re.Pattern[str] = _MENTION) -> str:
    """Break every ``@name`` that is not an intended mention.

    Templates escape task text already; this is the last line of defence at the write boundary
    against a custom template that forgets to, or a username in a fact rendered raw.
    """
    ok = {a.lstrip("@").lower() for a in allowed}

    def fix(m: re.Match[str]) -> str:
        name = m.group(1).rstrip("._-")
        return m.group(0) if name.lower() in ok else "@" + ZWSP + m.group(1)

    return pattern.sub(fix, text)


def guard_remarkup(text: str, allowed: Iterable[str]) -> str:
    """A comment at the write boundary: no control characters, no ``@name`` that is not intended.

    Task text quoted by ``escape.remarkup`` (inline monospace) is inert on the server and is left
    as it is; outside those spans every unintended mention is broken.
    """
    allowed = list(allowed)
    return escape.outside_monospace(escape.clean(text, lines=True), lambda part: guard_mentions(part, allowed))


_SLACK_SPECIAL = re.compile(r"<(![a-z]+(?:\^[^>|]*)?(?:\|[^>]*)?|@[A-Z0-9]+(?:\|[^>]*)?)>")


def guard_chat(text: str, allowed: Iterable[str]) -> str:
    """Chat: ``@name`` as above, plus Slack's ``<!channel>``/``<!here>``/``<@U123>`` unless intended."""
    ok = set(allowed)
    text = _SLACK_SPECIAL.sub(lambda m: m.group(0) if m.group(0) in ok else "&lt;" + m.group(1) + "&gt;",
                              escape.clean(text, lines=True))
    return guard_mentions(text, [a for a in ok if not a.startswith("<")], pattern=_CHAT_MENTION)


@dataclass(frozen=True)
class Recipient(Person):
    """An engineer to ping: a :class:`Person` and, once known, their Phabricator PHID."""

    phid: str | None = None

    @property
    def chat_handle(self) -> str:
        # The rotation's chat handle, verbatim ("<@U024BE7LH>" or "@alice"). Without one, the
        # username as plain text: a Phabricator name may be someone else's handle in chat.
        return self.chat or self.username


@dataclass
class Action:
    handler: str  # comment | subscribe | chat | email | console
    task: str | None  # "T123", or None for messages not about one task
    status: str  # planned | posted | skipped | failed
    text: str
    key: str  # idempotency key
    error: str = ""
    reason: str = ""  # why skipped
    target: str = ""  # where it goes, for humans: "T123", "chat webhook", "alice@example.org"
    task_phid: str | None = None
    subject: str = ""
    html: str | None = None
    recipients: list[str] = field(default_factory=list)
    user_phids: list[str] = field(default_factory=list)
    refs: list[Any] = field(default_factory=list)  # opaque to the outbox (the runner: ledger record ids)
    transaction_phid: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    already: bool = False  # skipped because the same key was delivered earlier: counts as done
    waiting: bool = False  # skipped because an earlier write here is unconfirmed: NOT done, retried
    deferred: bool = False  # skipped because over the cap (on_cap: most-urgent): NOT done, next run
    severity: str = ""  # of the most severe finding behind it: ranks writes when over the cap
    since: datetime | None = None  # when the oldest finding behind it was first seen: ranks ties
    state: dict[str, Any] | None = None  # task edits: the task's state once written (delivery/tasks.py)
    transactions: list[dict[str, Any]] = field(default_factory=list)  # task edits: what maniphest.edit sends

    @property
    def is_write(self) -> bool:
        return self.handler in WRITE_HANDLERS

    @property
    def done(self) -> bool:
        return self.status == "posted" or self.already

    def to_dict(self) -> dict[str, Any]:
        data = {"handler": self.handler, "task": self.task, "status": self.status, "target": self.target,
                "text": self.text, "key": self.key}
        if self.subject:
            data["subject"] = self.subject
        if self.recipients:
            data["recipients"] = list(self.recipients)
        if self.reason:
            data["reason"] = self.reason
        if self.error:
            data["error"] = self.error
        if self.transaction_phid:
            data["transaction_phid"] = self.transaction_phid
        return data


@dataclass
class Resolution:
    """What became of a pending intent from an earlier run."""

    intent: Intent
    outcome: str  # found | not-applied | assumed | unresolved (still pending: a lookup failed, or too recent)
    transaction_phid: str | None = None
    detail: str = ""
    settling: bool = False  # unresolved only because it is younger than the settle window
    object: dict[str, Any] | None = None  # a created task found on the server: {"id", "phid"}

    @property
    def delivered(self) -> bool:
        return self.outcome in ("found", "assumed")


# --------------------------------------------------------------------------------------------
# The outbox


class Outbox:
    """Collects planned actions; delivers them (only when ``apply``) under the cap and the ledger.

    >>> box = Outbox(client, ledger, apply=False, cap=20, now=now)          # doctest: +SKIP
    >>> box.comment(task, text, key="check:T12:…", mentions=["alice"])      # doctest: +SKIP
    >>> box.deliver()                                                       # doctest: +SKIP
    """

    def __init__(self, client: Any, ledger: Ledger, *, apply: bool, cap: int, now: datetime,
                 chat_sender: ChatSender | None = None, email_sender: EmailSender | None = None,
                 console: Callable[[str], None] | None = None, bot_phid: str | None = None,
                 crash_after_write: bool = False, clock: Callable[[], datetime] | None = None,
                 settle: timedelta = timedelta(0), bot_lookup: Callable[[], str | None] | None = None,
                 on_cap: str = "abort"):
        self.client = client
        self.ledger = ledger
        self.apply = apply
        self.cap = cap
        self.now = now
        self.chat_sender = chat_sender
        self.email_sender = email_sender
        self.console = console or (lambda text: None)
        self.bot_phid = bot_phid
        self.crash_after_write = crash_after_write
        # The real clock, for intents: the server stamps comments with it, not with ``now``
        # (which a --now run may have moved). Default: ``now`` (tests, simulations).
        self.clock = clock or (lambda: now)
        # How long an uncertain comment that is not (yet) on the task stays pending: see settle_window.
        self.settle = settle
        # Finds the bot's PHID when the caller did not know it (reports): asked only when an
        # earlier comment has to be looked up.
        self.bot_lookup = bot_lookup
        if on_cap not in ON_CAP:
            raise ValueError(f"on_cap must be one of {', '.join(ON_CAP)}, not {on_cap!r}")
        self.on_cap = on_cap
        self.actions: list[Action] = []
        # (handler, task PHID) pairs with an unconfirmed earlier write: nothing new goes there
        # until a later run has confirmed or ruled it out.
        self._blocked: set[tuple[str, str | None]] = set()
        # Idempotency keys of uncertain writes still inside the settle window: not redone this run.
        self._blocked_keys: set[str] = set()
        self.resolutions: list[Resolution] | None = None  # None: resolve_pending() not run yet

    # -- planning ------------------------------------------------------------------------------
    def _add(self, action: Action) -> Action:
        self.actions.append(action)
        return action

    def comment(self, task: Any, text: str, key: str, *, mentions: Iterable[str] = (), refs: Iterable[Any] = ()) -> Action:
        """A comment on a task. ``mentions``: the usernames it may ``@mention``; any other is broken."""
        mentions = list(mentions)
        return self._add(Action("comment", f"T{task.id}", "planned", guard_remarkup(text, mentions), key,
                                target=f"T{task.id}", task_phid=task.phid, recipients=mentions, refs=list(refs)))

    def subscribe(self, task: Any, user_phids: Iterable[str], key: str, *, usernames: Iterable[str] = (),
                  refs: Iterable[Any] = ()) -> Action:
        phids = list(dict.fromkeys(user_phids))
        names = list(usernames)
        return self._add(Action("subscribe", f"T{task.id}", "planned", "subscribers.add: " + (", ".join(names) or ", ".join(phids)),
                                key, target=f"T{task.id}", task_phid=task.phid, user_phids=phids, recipients=names,
                                refs=list(refs)))

    def chat(self, text: str, key: str, *, mentions: Iterable[str] = (), refs: Iterable[Any] = ()) -> Action:
        mentions = list(mentions)
        action = Action("chat", None, "planned", guard_chat(text, mentions), key, target="chat webhook",
                        recipients=mentions, refs=list(refs))
        if self.chat_sender is None:
            action.status, action.error = "failed", "chat is not configured (set delivery.chat.webhook_env and that variable)"
        return self._add(action)

    def email(self, to: Sequence[str], subject: str, text: str, html: str | None, key: str, *,
              mentions: Iterable[str] = (), refs: Iterable[Any] = ()) -> Action:
        # Email addresses contain "@": the guard would break them, so only the body is guarded
        # and the recipient list is kept apart. Control characters never leave (escape.clean).
        allowed = list(mentions)
        text, subject = escape.clean(text, lines=True), escape.one_line(subject)
        html = escape.clean(html, lines=True) if html else html
        action = Action("email", None, "planned", guard_mentions(text, allowed), key, target=", ".join(to),
                        subject=subject, html=guard_mentions(html, allowed) if html else html,
                        recipients=list(to), refs=list(refs))
        if not to:
            action.status, action.reason = "skipped", "nobody to email (no email address for the engineers on duty)"
        elif self.email_sender is None:
            action.status, action.error = "failed", "email is not configured (set delivery.email.host and delivery.email.from)"
        return self._add(action)

    def task_edit(self, handler: str, task: Any, transactions: list[dict[str, Any]], key: str, *, text: str,
                  state: dict[str, Any], refs: Iterable[Any] = ()) -> Action:
        """A ``maniphest.edit`` of ``task`` (None: create a task) that leaves it in ``state``.

        ``text`` says what it does, for humans (dry run, logs); it is not sent unless a transaction
        carries it. A created task's description is guarded like a comment."""
        transactions = [dict(t, value=guard_remarkup(t["value"], ())) if t.get("type") in ("description", "comment")
                        else t for t in transactions]
        mono = f"T{task.id}" if task is not None else None
        return self._add(Action(handler, mono, "planned", text, key, target=mono or "new task",
                                task_phid=task.phid if task is not None else None, refs=list(refs), state=dict(state),
                                transactions=transactions))

    def console_message(self, text: str, key: str, *, task: str | None = None, refs: Iterable[Any] = ()) -> Action:
        return self._add(Action("console", task, "planned", escape.one_line(text), key, target="console",
                                refs=list(refs)))

    def skip(self, handler: str, task: str | None, key: str, reason: str, *, text: str = "",
             refs: Iterable[Any] = ()) -> Action:
        return self._add(Action(handler, task, "skipped", text, key, reason=reason, target=task or "", refs=list(refs)))

    def planned_writes(self) -> int:
        return sum(1 for a in self.actions if a.status == "planned" and a.is_write)

    # -- never twice: earlier runs' unconfirmed writes -------------------------------------------
    def resolve_pending(self) -> list[Resolution]:
        """Settle every pending intent of an earlier run (of any job) before anything is written.

        Call it before planning when the outcome matters to the plan (the check runner does);
        :meth:`deliver` calls it anyway if nobody did.
        """
        out: list[Resolution] = []
        self.resolutions = out
        for intent in self.ledger.pending_intents():
            res = self._resolve(intent)
            out.append(res)
            if res.outcome == "unresolved":
                if res.settling:
                    # Only this write waits; other messages to the task are not at risk of a double.
                    self._blocked_keys.add(intent.key)
                else:
                    self._blocked.add((intent.handler, intent.task_phid))
                log.warning("cannot confirm the earlier %s on %s yet (%s); not writing %s this run",
                            intent.handler, intent.task or "-", res.detail,
                            "it again" if res.settling else "there")
                continue
            with self.ledger.batch():
                self.ledger.finish_intent(intent.doc_id, res.outcome, self.now,
                                          transaction_phid=res.transaction_phid, error=res.detail)
                if res.delivered:
                    self.ledger.mark_delivered(intent.key, intent.at, handler=intent.handler, task=intent.task,
                                               transaction_phid=res.transaction_phid, resolved=res.outcome)
        return out

    def _resolve(self, intent: Intent) -> Resolution:
        if intent.handler in TASK_EDITS and intent.state:
            return self._resolve_edit(intent)
        if intent.handler == "comment":
            try:
                if self.bot_phid is None and self.bot_lookup is not None:
                    self.bot_phid = self.bot_lookup()
                if not intent.task_phid or not self.bot_phid:
                    return Resolution(intent, "unresolved", detail="no task or bot PHID to look up the comment")
                phid = self.find_own_comment(intent.task_phid, intent.text_hash, intent.earliest - CLOCK_SKEW)
            except ConduitError as exc:
                return Resolution(intent, "unresolved", detail=str(exc))
            if phid is not None:
                return Resolution(intent, "found", phid, "the comment was posted (found on the task)")
            age = self.clock() - (intent.wall_at or intent.at)
            if age < self.settle:
                # The server may still apply a write it received before our timeout: wait.
                return Resolution(intent, "unresolved", settling=True,
                                  detail=f"not on the task yet, but only {max(age.total_seconds(), 0):.0f} s old "
                                         f"(settle window {self.settle.total_seconds():.0f} s)")
            return Resolution(intent, "not-applied", detail="no such comment on the task: it was not posted")
        if intent.handler in ("chat", "email"):
            return Resolution(intent, "assumed", detail="cannot be looked up; assumed delivered (never twice)")
        # subscribe: doing it again changes nothing if it happened.
        return Resolution(intent, "not-applied", detail="idempotent; redone if still wanted")

    def _resolve_edit(self, intent: Intent) -> Resolution:
        """A task edit's fate, from the task itself (``delivery/tasks.py``)."""
        state = intent.state or {}
        try:
            if state.get("kind") == "created":
                if self.bot_phid is None and self.bot_lookup is not None:
                    self.bot_phid = self.bot_lookup()
                if not self.bot_phid:
                    return Resolution(intent, "unresolved", detail="no bot PHID to look up the created task")
                found = task_edits.find_created(self.client, self.bot_phid, state["marker"], intent.earliest - CLOCK_SKEW)
                if found is not None:
                    return Resolution(intent, "found", detail=f"the task was created (T{found['id']})", object=found)
                age = self.clock() - (intent.wall_at or intent.at)
                if age < self.settle:
                    return Resolution(intent, "unresolved", settling=True,
                                      detail=f"no such task yet, but only {max(age.total_seconds(), 0):.0f} s old")
                return Resolution(intent, "not-applied", detail="no task with its marker: it was not created")
            item = task_edits.read_task(self.client, intent.task_phid or "")
        except ConduitError as exc:
            return Resolution(intent, "unresolved", detail=str(exc))
        if item is not None and task_edits.server_state_holds(item, state, text_hash):
            return Resolution(intent, "found", detail="the task is as the edit wanted it")
        # An edit is idempotent: redone next time if still wanted.
        return Resolution(intent, "not-applied", detail="the task is not as the edit wanted it: not applied")

    def find_own_comment(self, task_phid: str, wanted_hash: str, since: datetime) -> str | None:
        """PHID of the bot's comment on the task after ``since`` whose text hashes to ``wanted_hash``."""
        since_epoch = since.timestamp()
        for page in self.client.search_pages("transaction.search", objectIdentifier=task_phid,
                                             constraints={"authorPHIDs": [self.bot_phid]}):
            for item in page:
                if (item.get("dateCreated") or 0) < since_epoch:
                    return None  # newest first: everything further is older
                for c in item.get("comments") or []:
                    raw = ((c or {}).get("content") or {}).get("raw")
                    if raw and not c.get("removed") and text_hash(raw) == wanted_hash:
                        return item.get("phid")
        return None

    # -- delivery ------------------------------------------------------------------------------
    def deliver(self) -> list[Action]:
        """Check keys and the cap, then (only when applying) perform every planned action in order.

        Raises :class:`SafetyCapExceeded` before the first write when more writes are planned
        than ``cap`` (in a dry run too, so the dry run tells what the real run would do).
        """
        if self.resolutions is None:
            self.resolve_pending()
        for action in self.actions:
            if action.status != "planned":
                continue
            if action.is_write and self.ledger.already_delivered(action.key):
                earlier = self.ledger.delivery(action.key) or {}
                action.status, action.already = "skipped", True
                action.reason = f"already delivered at {earlier.get('at', '?')}"
            elif action.key in self._blocked_keys or (action.handler, action.task_phid) in self._blocked:
                action.status, action.waiting = "skipped", True
                action.reason = "an earlier write here is unconfirmed; checked again next run"
        self._skip_edits_done_on_server()
        planned = self.planned_writes()
        if planned > self.cap:
            if self.on_cap != "most-urgent":
                raise SafetyCapExceeded(self.cap, planned)
            self._defer_least_urgent()
        if not self.apply:
            return self.actions  # a dry run: everything stays "planned" and is shown, not sent
        for action in self.actions:
            if action.status == "planned":
                self._perform(action)
        return self.actions

    def _skip_edits_done_on_server(self) -> None:
        """A move or untag whose task already is as wanted (someone did it, or the snapshot was older than
        the server) is not written: one ``maniphest.search`` for all of them, before the cap is counted."""
        edits = [a for a in self.actions if a.status == "planned" and a.handler in ("move", "untag")
                 and a.task_phid and a.state]
        if not edits:
            return
        try:
            rows = task_edits.read_tasks(self.client, [a.task_phid for a in edits if a.task_phid])
        except ConduitError as exc:
            log.warning("cannot read the tasks to move or untag back (%s); the plan stands", exc)
            return
        for action in edits:
            row = rows.get(action.task_phid or "")
            if row is None:
                action.status, action.reason = "skipped", "the task is gone (or not visible to the bot)"
            elif task_edits.server_state_holds(row, action.state or {}, text_hash):
                action.status, action.already, action.reason = "skipped", True, "already so on the server"

    def _defer_least_urgent(self) -> None:
        """Keep the ``cap`` most urgent planned writes; the rest are deferred to the next run."""
        writes = [(i, a) for i, a in enumerate(self.actions) if a.status == "planned" and a.is_write]
        far = datetime.max.replace(tzinfo=self.now.tzinfo)
        writes.sort(key=lambda ia: (SEVERITY_RANK.get(ia[1].severity, len(SEVERITY_RANK)), ia[1].since or far, ia[0]))
        for _, action in writes[self.cap:]:
            action.status, action.deferred = "skipped", True
            action.reason = OVER_CAP.format(cap=self.cap)

    def _perform(self, action: Action) -> None:
        if action.handler == "console":
            self.console(action.text)
            action.status = "posted"
            return
        intent_id = self.ledger.record_intent(key=action.key, handler=action.handler, task_phid=action.task_phid,
                                              task=action.task, text_hash=text_hash(action.text), at=self.now,
                                              refs=action.refs, text=action.text, wall_at=self.clock(),
                                              state=action.state)
        try:
            action.transaction_phid = self._write(action)
        except (ConduitWriteUncertain, DeliveryUncertain) as exc:
            # Unknown fate: the intent stays pending and the next run checks before writing again.
            self.ledger.note_intent_error(intent_id, str(exc))
            action.status, action.error = "failed", f"uncertain: {exc}"
            self._blocked.add((action.handler, action.task_phid))
            log.warning("%s on %s: %s", action.handler, action.target, exc)
            return
        except ClinicbotError as exc:
            self.ledger.finish_intent(intent_id, "failed", self.now, error=str(exc))
            action.status, action.error = "failed", str(exc)
            log.warning("%s on %s failed: %s", action.handler, action.target, exc)
            return
        if self.crash_after_write:
            os._exit(137)  # test-only: die in the window between the write and the ledger update
        with self.ledger.batch():  # outcome and idempotency key land in one file write
            self.ledger.finish_intent(intent_id, "posted", self.now, transaction_phid=action.transaction_phid)
            self.ledger.mark_delivered(action.key, self.now, handler=action.handler, task=action.task,
                                       transaction_phid=action.transaction_phid)
        action.status = "posted"

    def _write(self, action: Action) -> str | None:
        if action.handler == "comment":
            return self._edit(action, [{"type": "comment", "value": action.text}])
        if action.handler == "subscribe":
            return self._edit(action, [{"type": "subscribers.add", "value": action.user_phids}])
        if action.handler in TASK_EDITS:
            return self._edit(action, action.transactions)
        if action.handler == "chat":
            assert self.chat_sender is not None
            self.chat_sender.send(action.text)
            return None
        if action.handler == "email":
            assert self.email_sender is not None
            self.email_sender.send(action.recipients, action.subject, action.text, action.html)
            return None
        raise ValueError(f"unknown handler {action.handler!r}")

    def _edit(self, action: Action, transactions: list[dict[str, Any]]) -> str | None:
        if action.task_phid is None:  # a new task: no objectIdentifier
            result = self.client.call("maniphest.edit", transactions=transactions)
            obj = (result or {}).get("object") or {}
            action.extra["object"] = {"id": obj.get("id"), "phid": obj.get("phid")}
            action.task, action.task_phid = f"T{obj.get('id')}", obj.get("phid")
        else:
            result = self.client.call("maniphest.edit", objectIdentifier=action.task_phid, transactions=transactions)
        xactions = (result or {}).get("transactions") or []
        return (xactions[0] or {}).get("phid") if xactions else None

    # -- summaries -------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATUSES}
        for a in self.actions:
            out[a.status] = out.get(a.status, 0) + 1
        return out


def describe(actions: Iterable[Action]) -> list[str]:
    """One line per action for logs and the dry-run header."""
    return [f"{a.status:8} {a.handler:9} {a.target or '-'}: {a.reason or a.error or iso_line(a.text)}" for a in actions]


def iso_line(text: str, limit: int = 80) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


__all__ = [
    "Action", "ChatSender", "DeliveryError", "DeliveryUncertain", "EmailSender", "Outbox", "Recipient", "Resolution",
    "SMTPEmailSender", "TASK_EDITS", "WebhookChatSender", "chat_sender_from_config", "email_sender_from_config", "guard_chat",
    "guard_mentions", "guard_remarkup", "text_hash", "validate_delivery",
]
