"""Episodes, repetition and escalation (pure decisions), and the ledger bookkeeping around the outbox."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from clinicbot.delivery.outbox import Action, Resolution
from clinicbot.checks.base import Finding
from clinicbot.checks.settings import CheckSettings
from clinicbot.state.ledger import Intent, Ledger, Outcome, iso
from clinicbot.jobs.check import Decision, apply_resolutions, decide, record_outcomes

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)
DAY = 86400
F = Finding("untriaged", "PHID-TASK-12", 12, "warning", "T12 waited")


def settings(**kw) -> CheckSettings:
    return CheckSettings(slug="untriaged", **kw)


@pytest.fixture
def book(tmp_path):
    with Ledger.open(tmp_path) as ledger:
        yield ledger


def handled(book: Ledger, at: datetime, times: int = 1, created: datetime | None = None):
    rec = book.start_episode(F, created or at)
    for _ in range(times):
        rec = book.note_handled(rec.doc_id, at, [Outcome("comment", "posted", iso(at))])
    return rec


def test_new_finding_acts_with_its_handlers():
    d = decide(F, None, settings(handlers=("comment", "chat")), NOW)
    assert d.act and d.handlers == ["comment", "chat"] and d.reason == "new" and d.repetition == 0


def test_default_handler_is_console():
    assert decide(F, None, None, NOW).handlers == ["console"]


def test_fire_once_never_repeats(book):
    rec = handled(book, NOW)
    d = decide(F, rec, settings(handlers=("comment",)), NOW + timedelta(days=30))
    assert not d.act and "fires once" in d.reason


def test_repetition_waits_for_the_interval(book):
    rec = handled(book, NOW)
    s = settings(handlers=("comment",), repetition_seconds=DAY)
    early = decide(F, rec, s, NOW + timedelta(hours=23))
    assert not early.act and "repetition due at 2026-11-23T09:00:00Z" == early.reason
    due = decide(F, rec, s, NOW + timedelta(days=1))
    assert due.act and due.repetition == 1 and due.handlers == ["comment"]


def test_escalation_after_repetitions(book):
    s = settings(handlers=("comment",), repetition_seconds=DAY,
                 escalation=({"after_repetitions": 2, "handlers": ["chat", "email"]},))
    rec = handled(book, NOW, times=1)
    assert decide(F, rec, s, NOW + timedelta(days=1)).handlers == ["comment"]  # reminder 1
    rec = book.note_handled(rec.doc_id, NOW, [])
    d = decide(F, rec, s, NOW + timedelta(days=1))  # reminder 2: escalated
    assert d.act and d.repetition == 2 and d.handlers == ["comment", "chat", "email"] and d.escalated
    assert d.escalations == [0]


def test_time_escalation_fires_once_even_between_reminders(book):
    s = settings(handlers=("comment",), escalation=({"after_seconds": 2 * DAY, "handlers": ["email"]},))
    rec = handled(book, NOW)
    assert not decide(F, rec, s, NOW + timedelta(days=1)).act
    d = decide(F, rec, s, NOW + timedelta(days=2))
    assert d.act and d.handlers == ["email"] and d.reason == "escalation"
    rec = book.note_handled(rec.doc_id, NOW + timedelta(days=2), [], escalations=d.escalations)
    assert not decide(F, rec, s, NOW + timedelta(days=3)).act  # told once


def test_unhandled_record_is_retried(book):
    rec = book.start_episode(F, NOW)
    rec = book.note_handled(rec.doc_id, NOW, [Outcome("comment", "failed", iso(NOW))], handled=False)  # all failed
    d = decide(F, rec, settings(handlers=("comment",)), NOW + timedelta(minutes=5))
    assert d.act and d.reason == "not handled yet"


def test_record_outcomes_marks_handled_only_when_something_arrived(book):
    rec = book.start_episode(F, NOW)
    d = Decision(F, rec, True, ["comment", "chat"], "new")
    ref = {"record": rec.doc_id, "escalations": [], "handling": 1}
    failed = [Action("comment", "T12", "failed", "x", "k1", error="boom", refs=[ref]),
              Action("chat", None, "failed", "y", "k2", error="down", refs=[ref])]
    record_outcomes(book, [d], failed, NOW)
    rec = book.record(rec.doc_id)
    assert rec.times_handled == 0 and [o["status"] for o in rec.outcomes] == ["failed", "failed"]
    ok = [Action("comment", "T12", "posted", "x", "k1", refs=[ref], transaction_phid="PHID-XACT-1"),
          Action("chat", None, "failed", "y", "k2", error="down", refs=[ref])]
    record_outcomes(book, [Decision(F, rec, True, ["comment", "chat"], "not handled yet")], ok, NOW)
    rec = book.record(rec.doc_id)
    assert rec.times_handled == 1 and rec.outcomes[-2]["transaction_phid"] == "PHID-XACT-1"


def test_rotation_notice_is_told_once(book):
    n = Finding("rotation-notice", None, None, "info", "alice goes on duty", {"notice_key": "alice:on:2026-11-23"},
                subject="alice:on:2026-11-23")
    rec = book.start_episode(n, NOW)
    ref = {"record": rec.doc_id, "escalations": [], "handling": 1}
    record_outcomes(book, [Decision(n, rec, True, ["chat"], "new")],
                    [Action("chat", None, "posted", "t", "c", refs=[ref])], NOW)
    assert book.notice_told("alice:on:2026-11-23")


def test_found_write_of_a_crashed_run_counts_as_one_handling(book):
    rec = book.start_episode(F, NOW)
    ref = {"record": rec.doc_id, "escalations": [0], "handling": 1}
    intents = [Intent(1, "k1", "comment", "PHID-TASK-12", "T12", "h", NOW, "pending", [ref]),
               Intent(2, "k2", "chat", None, None, "h2", NOW, "pending", [ref])]
    apply_resolutions(book, [Resolution(intents[0], "found", "PHID-XACT-1"), Resolution(intents[1], "assumed")])
    rec = book.record(rec.doc_id)
    assert rec.times_handled == 1 and rec.handled_at == NOW and rec.escalations == [0]
    assert [o["handler"] for o in rec.outcomes] == ["comment", "chat"]
    # not found: nothing changes, the run decides afresh
    apply_resolutions(book, [Resolution(intents[0], "not-applied")])
    assert book.record(rec.doc_id).times_handled == 1
