"""Outbox, senders, templates and escaping: what goes out, how often, and that task text stays text."""

from __future__ import annotations

import json
import re
import smtplib
import socketserver
import threading
from datetime import datetime, timedelta, timezone
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from clinicbot.delivery.outbox import (
    DeliveryError,
    Outbox,
    Recipient,
    SMTPEmailSender,
    WebhookChatSender,
    guard_chat,
    guard_mentions,
    text_hash,
)
from clinicbot.checks.base import Finding
from clinicbot.errors import ConduitAPIError, ConduitWriteUncertain, ConfigError, SafetyCapExceeded
from clinicbot.state.ledger import Ledger
from clinicbot.model import Snapshot, Task
from clinicbot.jobs.check import Decision, Planner
from clinicbot.reports.templating import Templates

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)
HOSTILE = "@alice {F1} <script>alert(1)</script> <!channel> **bold**"
BOT = "PHID-USER-bot"


def live_mentions(text: str) -> set[str]:
    return {m.rstrip("._-") for m in re.findall(r"(?<![\w@.<])@([A-Za-z][\w.-]*)", text)}


# Phorge's inline monospace rule (PhutilRemarkupMonospaceRule): what it matches shows as plain text.
MONOSPACE = re.compile(r"##(.+?)##|\B`(.+?)`", re.ASCII)


def outside_monospace(remarkup: str) -> str:
    """What a real Phorge would still interpret: the comment minus its inline monospace spans."""
    return "\n".join(MONOSPACE.sub(" ", line) for line in remarkup.split("\n"))


def make_task(i: int = 12, title: str = "Export to CSV times out", subscribers: tuple[str, ...] = ()) -> Task:
    return Task(id=i, phid=f"PHID-TASK-{i}", title=title, status="open", status_name="Open", is_closed=False,
                priority=90, priority_name="Needs Triage", author_phid=None, owner_phid=None, points=None,
                created=NOW - timedelta(days=5), modified=NOW - timedelta(days=5), subscriber_phids=subscribers)


class FakeClient:
    """Records calls; answers maniphest.edit and transaction.search like the server (facts 11, 14)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.comments: dict[str, list[dict[str, Any]]] = {}  # task PHID -> transaction.search items
        self.fail: Exception | None = None
        self.apply_before_failing = False
        self._n = 0

    def call(self, method: str, **params: Any) -> Any:
        self.calls.append((method, params))
        assert method == "maniphest.edit"
        self._n += 1
        phid = f"PHID-XACT-TASK-{self._n}"
        if self.fail is None or self.apply_before_failing:
            for tx in params["transactions"]:
                if tx["type"] == "comment":
                    self.comments.setdefault(params["objectIdentifier"], []).insert(0, {
                        "id": self._n, "phid": phid, "type": "comment", "authorPHID": BOT,
                        "dateCreated": int(NOW.timestamp()),
                        "comments": [{"content": {"raw": tx["value"]}, "removed": False, "version": 1}]})
        if self.fail is not None:
            exc, self.fail = self.fail, None
            raise exc
        return {"object": {"id": 12, "phid": params["objectIdentifier"]}, "transactions": [{"phid": phid}]}

    def search_pages(self, method: str, **params: Any):
        self.calls.append((method, params))
        assert method == "transaction.search" and params["constraints"] == {"authorPHIDs": [BOT]}
        yield self.comments.get(params["objectIdentifier"], [])

    def edits(self) -> list[dict[str, Any]]:
        return [p for m, p in self.calls if m == "maniphest.edit"]


class FakeChat:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, text: str) -> None:
        self.sent.append(text)


class FakeMail:
    def __init__(self) -> None:
        self.sent: list[tuple[list[str], str, str, str | None]] = []

    def send(self, to, subject, text, html) -> None:
        self.sent.append((list(to), subject, text, html))


@pytest.fixture
def ledger(tmp_path):
    with Ledger.open(tmp_path) as book:
        yield book


def outbox(client, ledger, *, apply=True, cap=20, now=NOW, **kw) -> Outbox:
    return Outbox(client, ledger, apply=apply, cap=cap, now=now, bot_phid=BOT, **kw)


# -- escaping guards --------------------------------------------------------------------------


def test_guard_breaks_every_mention_but_the_intended_ones():
    text = "@alice @bob: see @carol's note, mail dave@example.org, @alice."
    out = guard_mentions(text, ["alice", "bob"])
    assert live_mentions(out) == {"alice", "bob"}
    assert "dave@example.org" in out


def test_chat_guard_kills_broadcasts():
    out = guard_chat("<!channel> <!here|here> <@U123> hi <@U999>", ["<@U999>"])
    assert "<!channel>" not in out and "<!here" not in out and "<@U123>" not in out and "<@U999>" in out


# -- the outbox ---------------------------------------------------------------------------------


def test_dry_run_plans_and_writes_nothing(ledger):
    client = FakeClient()
    box = outbox(client, ledger, apply=False)
    box.comment(make_task(), "hello @alice", "k1", mentions=["alice"])
    box.deliver()
    assert client.calls == [] and [a.status for a in box.actions] == ["planned"]
    assert ledger.pending_intents() == [] and not ledger.already_delivered("k1")


def test_apply_posts_once_and_records_intent_and_outcome(ledger):
    client = FakeClient()
    box = outbox(client, ledger)
    a = box.comment(make_task(), "hello @alice", "k1", mentions=["alice"])
    box.deliver()
    assert a.status == "posted" and a.transaction_phid == "PHID-XACT-TASK-1"
    assert client.edits() == [{"objectIdentifier": "PHID-TASK-12",
                               "transactions": [{"type": "comment", "value": "hello @alice"}]}]
    intent = ledger.intents()[0]
    assert intent["status"] == "posted" and intent["text_hash"] == text_hash("hello @alice")
    # the same key again (a rerun) is not posted again
    box2 = outbox(client, ledger)
    b = box2.comment(make_task(), "hello @alice", "k1", mentions=["alice"])
    box2.deliver()
    assert b.status == "skipped" and b.already and len(client.edits()) == 1


def test_cap_counts_first_and_writes_nothing(ledger):
    client = FakeClient()
    box = outbox(client, ledger, cap=2, chat_sender=FakeChat())
    for i in range(3):
        box.comment(make_task(i + 1), "x", f"k{i}")
    box.console_message("not a write", "c")
    with pytest.raises(SafetyCapExceeded) as err:
        box.deliver()
    assert err.value.planned == 3 and err.value.limit == 2 and "3 writes" in str(err.value)
    assert client.calls == [] and ledger.intents() == []


def test_failed_write_is_recorded_and_not_delivered(ledger):
    client = FakeClient()
    client.fail = ConduitAPIError("maniphest.edit", "ERR-CONDUIT-CORE", "Monogram does not identify a valid object")
    box = outbox(client, ledger)
    a = box.comment(make_task(), "x", "k1")
    box.deliver()
    assert a.status == "failed" and "ERR-CONDUIT-CORE" in a.error
    assert ledger.intents()[0]["status"] == "failed" and not ledger.already_delivered("k1")
    assert ledger.pending_intents() == []


def test_uncertain_comment_is_found_next_run_and_not_posted_again(ledger):
    client = FakeClient()
    client.fail, client.apply_before_failing = ConduitWriteUncertain("maniphest.edit", "no answer"), True
    box = outbox(client, ledger)
    a = box.comment(make_task(), "reminder @alice", "k1", mentions=["alice"], refs=[{"record": 1}])
    box.deliver()
    assert a.status == "failed" and a.error.startswith("uncertain")
    assert [i.key for i in ledger.pending_intents()] == ["k1"]

    box2 = outbox(client, ledger, now=NOW + timedelta(minutes=5))
    [res] = box2.resolve_pending()
    assert res.outcome == "found" and res.transaction_phid == "PHID-XACT-TASK-1" and res.intent.refs == [{"record": 1}]
    b = box2.comment(make_task(), "reminder @alice", "k1", mentions=["alice"])
    box2.deliver()
    assert b.status == "skipped" and b.already
    assert len(client.edits()) == 1 and ledger.pending_intents() == []


def test_uncertain_comment_that_never_arrived_is_posted_next_run(ledger):
    client = FakeClient()
    client.fail = ConduitWriteUncertain("maniphest.edit", "no answer")  # not applied
    box = outbox(client, ledger)
    box.comment(make_task(), "reminder", "k1")
    box.deliver()
    box2 = outbox(client, ledger)
    [res] = box2.resolve_pending()
    assert res.outcome == "not-applied" and not res.delivered
    b = box2.comment(make_task(), "reminder", "k1")
    box2.deliver()
    assert b.status == "posted" and len(client.edits()) == 2


def test_old_or_other_comments_do_not_count_as_found(ledger):
    client = FakeClient()
    client.comments["PHID-TASK-12"] = [
        {"id": 1, "phid": "PHID-XACT-old", "type": "comment", "authorPHID": BOT,
         "dateCreated": int((NOW - timedelta(days=2)).timestamp()),
         "comments": [{"content": {"raw": "reminder"}, "removed": False}]},
    ]
    ledger.record_intent(key="k1", handler="comment", task_phid="PHID-TASK-12", task="T12",
                         text_hash=text_hash("reminder"), at=NOW)
    [res] = outbox(client, ledger).resolve_pending()
    assert res.outcome == "not-applied"


def test_unconfirmable_chat_is_assumed_delivered(ledger):
    ledger.record_intent(key="chat:1", handler="chat", task_phid=None, task=None, text_hash="h", at=NOW)
    chat = FakeChat()
    box = outbox(FakeClient(), ledger, chat_sender=chat)
    [res] = box.resolve_pending()
    assert res.outcome == "assumed" and ledger.already_delivered("chat:1")
    box.chat("again?", "chat:1")
    box.deliver()
    assert chat.sent == []


def test_deliver_settles_earlier_intents_even_if_nobody_asked(ledger):
    # e.g. a report job reusing the outbox: its crashed digest must not go out twice
    ledger.record_intent(key="digest:2026-11-22", handler="chat", task_phid=None, task=None, text_hash="h", at=NOW)
    chat = FakeChat()
    box = outbox(FakeClient(), ledger, chat_sender=chat)
    a = box.chat("the digest", "digest:2026-11-22")
    box.deliver()
    assert a.status == "skipped" and a.already and chat.sent == []


def test_lookup_failure_blocks_the_task_until_next_run(ledger):
    class Down(FakeClient):
        def search_pages(self, method, **params):
            from clinicbot.errors import ConduitTransportError

            raise ConduitTransportError("transaction.search", "connection refused")
            yield  # pragma: no cover

    client = Down()
    ledger.record_intent(key="k0", handler="comment", task_phid="PHID-TASK-12", task="T12", text_hash="h", at=NOW)
    box = outbox(client, ledger)
    [res] = box.resolve_pending()
    assert res.outcome == "unresolved"
    a = box.comment(make_task(), "new text", "k-new")
    box.deliver()
    assert a.status == "skipped" and "unconfirmed" in a.reason and client.edits() == []
    assert [i.key for i in ledger.pending_intents()] == ["k0"]


def test_chat_and_email_without_configuration_fail_clearly(ledger):
    box = outbox(FakeClient(), ledger)
    c = box.chat("hi", "c1")
    e = box.email(["a@example.org"], "s", "t", None, "e1")
    n = box.email([], "s", "t", None, "e2")
    assert c.status == "failed" and "delivery.chat.webhook_env" in c.error
    assert e.status == "failed" and "delivery.email" in e.error
    assert n.status == "skipped" and "nobody to email" in n.reason
    box.deliver()
    assert ledger.intents() == []


# -- senders over loopback ---------------------------------------------------------------------


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append({"type": self.headers["Content-Type"], "body": json.loads(body)})
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook():
    _Hook.received = []
    _Hook.status = 200
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/abc", _Hook
    server.shutdown()
    server.server_close()


def test_webhook_posts_slack_json(webhook):
    url, hook = webhook
    WebhookChatSender(url, timeout=5).send("hello")
    assert hook.received == [{"type": "application/json", "body": {"text": "hello"}}]
    hook.status = 500
    with pytest.raises(DeliveryError, match="HTTP 500"):
        WebhookChatSender(url, timeout=5).send("again")
    assert "abc" not in repr(WebhookChatSender(url))


class _SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) for smtplib: EHLO, MAIL, RCPT, DATA, QUIT."""

    messages: list[dict[str, Any]] = []

    def reply(self, line: str) -> None:
        self.wfile.write((line + "\r\n").encode())

    def handle(self) -> None:
        self.reply("220 localhost test SMTP")
        mail_from, rcpts = None, []
        while True:
            line = self.rfile.readline().decode().rstrip("\r\n")
            if not line:
                return
            verb = line[:4].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250 localhost")
            elif verb == "MAIL":
                mail_from = line.split(":", 1)[1].strip()
                self.reply("250 OK")
            elif verb == "RCPT":
                rcpts.append(line.split(":", 1)[1].strip())
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 go ahead")
                data = b""
                while True:
                    chunk = self.rfile.readline()
                    if chunk in (b".\r\n", b".\n", b""):
                        break
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                type(self).messages.append({"from": mail_from, "to": rcpts, "data": data})
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")


@pytest.fixture
def smtp_server():
    _SMTPHandler.messages = []
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTPHandler)
    server.daemon_threads = True
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield server.server_address[1], _SMTPHandler
    server.shutdown()
    server.server_close()


def test_smtp_sender_delivers_text_and_html(smtp_server):
    port, handler = smtp_server
    sender = SMTPEmailSender("127.0.0.1", port, sender="clinicbot@example.org", starttls=False, timeout=5)
    sender.send(["alice@example.org", "bob@example.org"], "Subject", "plain body", "<p>html body</p>")
    [msg] = handler.messages
    assert msg["to"] == ["<alice@example.org>", "<bob@example.org>"]
    parsed = message_from_bytes(msg["data"], policy=default_policy)
    assert parsed["Subject"] == "Subject" and parsed["Auto-Submitted"] == "auto-generated"
    assert parsed.get_body(("plain",)).get_content().strip() == "plain body"
    assert "<p>html body</p>" in parsed.get_body(("html",)).get_content()


def test_smtp_sender_uses_starttls_and_login():
    log: list[str] = []

    class FakeSMTP:
        def __init__(self, host, port, timeout):
            log.append(f"connect {host}:{port}")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            log.append("quit")

        def starttls(self, context=None):
            log.append("starttls")

        def login(self, user, password):
            log.append(f"login {user}/{password}")

        def send_message(self, msg):
            log.append(f"send {msg['To']}")

    SMTPEmailSender("mail.example.org", 587, sender="bot@example.org", username="bot", password="pw",
                    smtp_factory=FakeSMTP).send(["a@example.org"], "s", "t", None)
    assert log == ["connect mail.example.org:587", "starttls", "login bot/pw", "send a@example.org", "quit"]

    class Refusing(FakeSMTP):
        def send_message(self, msg):
            raise smtplib.SMTPRecipientsRefused({"a@example.org": (550, b"no")})

    with pytest.raises(DeliveryError, match="refused a@example.org"):
        SMTPEmailSender("h", 25, sender="b@x", starttls=False, smtp_factory=Refusing).send(["a@example.org"], "s", "t", None)


# -- templates ------------------------------------------------------------------------------------


def test_deployment_template_overrides_builtin(tmp_path):
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "untriaged.remarkup.j2").write_text("Custom: {{ finding.summary|remarkup }}")
    t = Templates(tmp_path)
    f = Finding("untriaged", "P", 1, "warning", "T1 @bob")
    assert t.render("checks/untriaged.remarkup.j2", finding=f).startswith("Custom: `T1 @bob`")
    assert "Unbreak" in t.render("checks/unbreak-now.remarkup.j2", finding=f, facts={"reason": "no-owner"},
                                 repetition=0, escalated=False)
    assert t.first_of("checks/my-custom.remarkup.j2", "checks/_default.remarkup.j2") == "checks/_default.remarkup.j2"


def test_strict_undefined_and_html_autoescape(tmp_path):
    (tmp_path / "x.remarkup.j2").write_text("{{ nope }}")
    (tmp_path / "x.html.j2").write_text("<p>{{ v }}</p>")
    (tmp_path / "x.txt.j2").write_text("{{ v }}")
    t = Templates(tmp_path)
    with pytest.raises(ConfigError, match="undefined"):
        t.render("x.remarkup.j2")
    assert t.render("x.html.j2", v="<b>").strip() == "<p>&lt;b&gt;</p>"
    assert t.render("x.txt.j2", v="<b>").strip() == "<b>"


def test_every_builtin_slug_has_a_template():
    from clinicbot.checks import BUILTIN_SLUGS

    t = Templates()
    for slug in BUILTIN_SLUGS:
        assert t.exists(f"checks/{slug}.remarkup.j2"), slug


# -- the hostile title in every medium ---------------------------------------------------------


def _planned(tmp_path, title: str, recipients: list[Recipient]):
    from clinicbot.checks._common import task_facts

    task = make_task(title=title)
    snap = Snapshot(now=NOW, boards={}, tasks={task.phid: task})
    facts = {**task_facts(snap, task), "board": "Core <b>", "column": "Inbox @here", "age_hours": 52.0,
             "age_days": 2.2, "business_hours": False}
    f = Finding("untriaged", task.phid, task.id, "warning", f"T12 {title} has waited 52 hours", facts)
    unbreak = Finding("unbreak-now", task.phid, task.id, "critical", f"T12 {title} is urgent",
                      {**facts, "reason": "no-owner"}, subject="no-owner")
    custom = Finding("my-custom", task.phid, task.id, "info", f"T12 {title} looks odd", facts)  # _default template
    with Ledger.open(tmp_path) as book:
        decisions = []
        for x in (f, unbreak, custom):
            rec = book.start_episode(x, NOW)
            decisions.append(Decision(x, rec, True, ["comment", "chat", "email", "subscribe"], "new"))
        chat, mail = FakeChat(), FakeMail()
        client = FakeClient()
        box = outbox(client, book, chat_sender=chat, email_sender=mail)
        Planner(box, Templates(), snap, recipients, "", "Core @team", "https://phab.example.org/", NOW).plan(decisions)
        box.deliver()
    return box, client, chat, mail


def test_hostile_title_pings_nobody_in_comment_chat_and_email(tmp_path):
    erin = Recipient("erin", "Erin Evans", "erin@example.org", "<@U0ERIN>", "PHID-USER-erin")
    box, client, chat, mail = _planned(tmp_path, HOSTILE, [erin])
    by = {a.handler: a for a in box.actions}
    assert {a.status for a in box.actions} == {"posted", "skipped"}

    # one comment for all three findings; only the on-duty engineer is mentioned
    [edit] = client.edits()
    comment = edit["transactions"][0]["value"]
    assert comment.count("**Untriaged**") == 1 and comment.count("**Unbreak Now!**") == 1
    outside = outside_monospace(comment)
    assert live_mentions(outside) == {"erin"} and comment.startswith("@erin")
    # task text appears only inside inline monospace (inert on a real Phorge): outside nothing of it
    # is left, no stray %%% and no zero-width characters inside the spans
    for bad in ("{F1}", "<script>", "<!channel>", "**bold**", "alice", "Inbox", "<b>", "%%%", "T12", "@here"):
        assert bad not in outside, bad
    assert "`T12 @alice {F1} <script>alert(1)</script> <!channel> **bold** looks odd`" in comment
    assert "\u200b" not in comment
    # subscribing is redundant next to a comment that @mentions them
    assert by["subscribe"].status == "skipped" and "mentions" in by["subscribe"].reason

    # chat: one message, no broadcast, no live mention but the handle of the on-duty engineer
    [text] = chat.sent
    assert "<!channel>" not in text and "<script>" not in text
    assert all(re.search(r"`[^`]*\*\*bold\*\*[^`]*`", line) for line in text.splitlines() if "**bold**" in line)
    assert "&lt;!channel&gt;" in text and text.startswith("<@U0ERIN> ")
    assert live_mentions(text) == set()
    assert "<https://phab.example.org/T12|T12>" in text

    # email: subject and bodies
    [(to, subject, body, html)] = mail.sent
    assert to == ["erin@example.org"]
    assert live_mentions(subject) == set() and "\n" not in subject
    assert live_mentions(body) == set() and "{F1}" in body  # shown as the text it is
    assert "<script>" not in html and "&lt;script&gt;" in html and live_mentions(html) == set()


def test_away_engineer_is_not_pinged_and_manager_steps_in():
    from clinicbot.model import User
    from clinicbot.rotation import Member
    from clinicbot.jobs.check import on_duty_recipients

    class Rot:
        manager = Member("mia", "Mia Manager", "mia@example.org")
        members = {"alice": Member("alice"), "bob": Member("bob")}

    import clinicbot.rotation as rotation_mod

    users = {"alice": User("PHID-USER-a", "alice", availability="away"), "bob": User("PHID-USER-b", "bob"),
             "mia": User("PHID-USER-m", "mia")}
    real = rotation_mod.on_duty
    try:
        rotation_mod.on_duty = lambda rot, at: [Member("alice"), Member("bob")]
        got, note = on_duty_recipients(Rot(), NOW, users)
        assert [r.username for r in got] == ["bob"] and note == ""
        rotation_mod.on_duty = lambda rot, at: [Member("alice")]
        got, note = on_duty_recipients(Rot(), NOW, users)
        assert [r.username for r in got] == ["mia"] and "away" in note and got[0].phid == "PHID-USER-m"
        rotation_mod.on_duty = lambda rot, at: []
        got, note = on_duty_recipients(Rot(), NOW, users)
        assert [r.username for r in got] == ["mia"] and "nobody is on duty" in note
    finally:
        rotation_mod.on_duty = real
    assert on_duty_recipients(None, NOW, users) == ([], "nobody is on duty and the rotation names no manager")


def test_rotation_notice_reaches_the_member_it_is_about(tmp_path):
    notice = Finding("rotation-notice", None, None, "info", "Frank Fischer (frank) rotates on in 2 days",
                     {"notice_key": "frank:on:2026-11-24", "username": "frank", "name": "Frank Fischer",
                      "email": "frank@example.org", "chat": "<@U0FRANK>"}, subject="frank:on:2026-11-24")
    erin = Recipient("erin", "Erin Evans", "erin@example.org", "<@U0ERIN>", "PHID-USER-erin")
    with Ledger.open(tmp_path) as book:
        rec = book.start_episode(notice, NOW)
        chat, mail = FakeChat(), FakeMail()
        box = outbox(FakeClient(), book, chat_sender=chat, email_sender=mail)
        snap = Snapshot(now=NOW, boards={}, tasks={})
        Planner(box, Templates(), snap, [erin], "", "Core", "https://phab.example.org/", NOW).plan(
            [Decision(notice, rec, True, ["chat", "email"], "new")])
        box.deliver()
    [text] = chat.sent
    assert "<@U0FRANK>" in text and "<@U0ERIN>" in text
    [message] = mail.sent
    assert "frank@example.org" in str(message) and "erin@example.org" in str(message)


# -- uncertain writes: the settle window (issue 11 point 8) -------------------------------------------


def test_an_uncertain_comment_not_yet_on_the_task_stays_pending_inside_the_settle_window(ledger):
    client = FakeClient()
    client.fail = ConduitWriteUncertain("maniphest.edit", "no answer")  # not (yet) applied
    clock = {"at": NOW}
    settle = timedelta(seconds=150)
    box = outbox(client, ledger, clock=lambda: clock["at"], settle=settle)
    box.comment(make_task(), "digest of Monday", "digest:2026-11-22:task:T12")
    box.deliver()
    assert [i.key for i in ledger.pending_intents()] == ["digest:2026-11-22:task:T12"]

    # 20 s later: not on the task, but the server may still apply it. Only that write waits.
    clock["at"] = NOW + timedelta(seconds=20)
    box2 = outbox(client, ledger, clock=lambda: clock["at"], settle=settle)
    [res] = box2.resolve_pending()
    assert res.outcome == "unresolved" and res.settling and "settle window 150 s" in res.detail
    again = box2.comment(make_task(), "digest of Monday", "digest:2026-11-22:task:T12")
    other = box2.comment(make_task(), "digest of Tuesday", "digest:2026-11-23:task:T12")
    box2.deliver()
    assert again.status == "skipped" and again.waiting and not again.done and "unconfirmed" in again.reason
    assert other.status == "posted"  # another report to the same task is not held up
    assert [i.key for i in ledger.pending_intents()] == ["digest:2026-11-22:task:T12"]

    # Past the window, "not on the task" is the server's word: posted once more, exactly once.
    clock["at"] = NOW + settle + timedelta(seconds=1)
    box3 = outbox(client, ledger, clock=lambda: clock["at"], settle=settle)
    [res] = box3.resolve_pending()
    assert res.outcome == "not-applied" and ledger.pending_intents() == []
    late = box3.comment(make_task(), "digest of Monday", "digest:2026-11-22:task:T12")
    box3.deliver()
    assert late.status == "posted"
    texts = [c["comments"][0]["content"]["raw"] for c in client.comments["PHID-TASK-12"]]
    assert sorted(texts) == ["digest of Monday", "digest of Tuesday"]


def test_a_late_applied_comment_found_inside_the_settle_window_is_settled_at_once(ledger):
    client = FakeClient()
    client.fail, client.apply_before_failing = ConduitWriteUncertain("maniphest.edit", "no answer"), True
    box = outbox(client, ledger, settle=timedelta(hours=1))
    box.comment(make_task(), "reminder", "k1")
    box.deliver()
    [res] = outbox(client, ledger, settle=timedelta(hours=1)).resolve_pending()
    assert res.outcome == "found" and ledger.already_delivered("k1")


def test_intents_carry_the_wall_clock_and_the_lookup_uses_it_not_now(ledger):
    # A run given --now three days ahead: the server stamps the comment with the real time.
    client = FakeClient()
    client.fail, client.apply_before_failing = ConduitWriteUncertain("maniphest.edit", "no answer"), True
    ahead = NOW + timedelta(days=3)
    box = Outbox(client, ledger, apply=True, cap=20, now=ahead, bot_phid=BOT, clock=lambda: NOW)
    box.comment(make_task(), "reminder", "k1")
    box.deliver()
    [intent] = ledger.pending_intents()
    assert intent.at == ahead and intent.wall_at == NOW
    [res] = Outbox(client, ledger, apply=True, cap=20, now=ahead, bot_phid=BOT, clock=lambda: NOW).resolve_pending()
    assert res.outcome == "found"


def test_the_bot_phid_is_looked_up_only_when_a_comment_must_be_settled(ledger):
    asked: list[int] = []

    def lookup() -> str:
        asked.append(1)
        return BOT

    client = FakeClient()
    box = Outbox(client, ledger, apply=True, cap=20, now=NOW, bot_lookup=lookup)
    assert box.resolve_pending() == [] and asked == []
    ledger.record_intent(key="k0", handler="comment", task_phid="PHID-TASK-12", task="T12", text_hash="h", at=NOW)
    [res] = Outbox(client, ledger, apply=True, cap=20, now=NOW, bot_lookup=lookup).resolve_pending()
    assert res.outcome == "not-applied" and asked == [1]
