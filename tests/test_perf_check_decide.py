"""The check job's per-finding work is per check, not per finding, where it can be (issue 12, round 3).

Counts and structure only, never timings: each check's settings are read once per run (not once
per finding), the snoozes once per run, a new episode's Record is what reading it back gives,
one-line text takes a shortcut that gives the same text; a finding's key is made once, the checks
that ask whether each task's owner is an engineer ask who is not human once per run, only writes
are ranked for the cap (not every console line), stale-in-progress reads no history of a task
younger than its threshold, and the job runs with the cyclic garbage
collector paused (and gives it back as it found it).
"""

from __future__ import annotations

import gc
from datetime import datetime, timedelta, timezone
from dataclasses import replace
from functools import cached_property
from types import SimpleNamespace
from typing import Any

import pytest
from checkdata import ALICE, BOT, SnapshotBuilder, at, comment, days, keys, owner, run_check

from clinicbot import escape
from clinicbot.checks.hygiene import UnassignedOnInternalBoardCheck
from clinicbot.checks.workload import CookieLickingCheck, StaleInProgressCheck
from clinicbot.delivery.outbox import Outbox
from clinicbot.jobs.check import Decision, Planner
from clinicbot.model import Snapshot
from clinicbot.reports.templating import Templates
from clinicbot.checks.base import Finding
from clinicbot.checks.settings import CheckSettings
from clinicbot.jobs import check as job
from clinicbot.state.ledger import Ledger, Snooze, snoozed

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)
NOW_C = at("2024-05-08 12:00")
NOSNAP = SimpleNamespace(tasks={})  # a snapshot without the tasks (the records get no project PHIDs)


def findings(n: int, slug: str = "untriaged") -> list[Finding]:
    return [Finding(slug, f"PHID-TASK-{i}", i, "warning", f"T{i} waited") for i in range(1, n + 1)]


class CountingSettings(dict):
    """A check's settings (a mapping) that count how often a setting is read."""

    reads = 0

    def get(self, key: str, default: Any = None) -> Any:
        CountingSettings.reads += 1
        return super().get(key, default)


def test_each_checks_settings_are_read_once_per_run_not_once_per_finding(tmp_path):
    CountingSettings.reads = 0
    settings = {"untriaged": CountingSettings(handlers=["comment"], repetition_seconds=None),
                "stale-in-progress": CountingSettings(handlers=["console"])}
    with Ledger.open(tmp_path) as ledger:
        decisions = job._decisions(ledger, findings(40) + findings(30, "stale-in-progress"), settings, NOSNAP, NOW)
    assert len(decisions) == 70 and all(d.act for d in decisions)
    assert {tuple(d.handlers) for d in decisions if d.finding.slug == "untriaged"} == {("comment",)}
    assert {tuple(d.handlers) for d in decisions if d.finding.slug == "stale-in-progress"} == {("console",)}
    # handlers, repetition_seconds, escalation: three reads per check, whatever the number of findings
    assert CountingSettings.reads == 3 * 2


def test_a_policy_decides_as_the_settings_it_was_read_from():
    s = CheckSettings(slug="untriaged", handlers=("comment",), repetition_seconds=3600,
                      escalation=({"after_seconds": 60, "handlers": ["chat"]},))
    f = findings(1)[0]
    for settings in (s, {"handlers": ["comment"], "repetition_seconds": 3600,
                         "escalation": [{"after_seconds": 60, "handlers": ["chat"]}]}, None):
        assert job.decide(f, None, job.Policy.of(settings), NOW) == job.decide(f, None, settings, NOW)
    assert job.Policy.of(s) == job.Policy(("comment",), 3600, ({"after_seconds": 60, "handlers": ["chat"]},))
    assert job.Policy.of(None).handlers == ("console",)


def test_snoozes_are_read_once_per_run_and_still_apply(tmp_path, monkeypatch):
    calls = []
    real = Ledger.snoozes

    def counting(self: Ledger, now: datetime | None = None) -> list[Snooze]:
        calls.append(now)
        return real(self, now)

    monkeypatch.setattr(Ledger, "snoozes", counting)
    with Ledger.open(tmp_path) as ledger:
        ledger.snooze("T3", NOW + timedelta(days=1), NOW, reason="on it")
        ledger.snooze("stale-in-progress", NOW - timedelta(days=1), NOW - timedelta(days=2))  # over already
        calls.clear()
        decisions = job._decisions(ledger, findings(50) + findings(5, "stale-in-progress"), {}, NOSNAP, NOW)
    assert calls == [NOW]
    snoozed_keys = [d.finding.key for d in decisions if d.snoozed]
    assert snoozed_keys == ["untriaged:T3", "stale-in-progress:T3"] and not any(d.act for d in decisions if d.snoozed)
    assert "snoozed until 2026-11-23T09:00:00Z (on it)" in [d.reason for d in decisions]


def test_snoozed_covers_the_check_or_the_task():
    s = [Snooze("T7", NOW, NOW), Snooze("unprioritised", NOW, NOW)]
    assert snoozed(s, "untriaged", 7) is s[0]
    assert snoozed(s, "unprioritised", 8) is s[1]
    assert snoozed(s, "untriaged", 8) is None and snoozed(s, "untriaged", None) is None


@pytest.mark.parametrize("now", [NOW, NOW.astimezone(timezone(timedelta(hours=-5))) + timedelta(microseconds=7)])
def test_a_new_episode_is_the_record_reading_it_back_gives(tmp_path, now):
    with Ledger.open(tmp_path) as ledger:
        f = Finding("stale-in-progress", "PHID-TASK-9", 9, "info", "T9 idle " * 60)
        made = ledger.start_episode(f, now, project_phids=["PHID-PROJ-b", "PHID-PROJ-a"])
        again = ledger.record(made.doc_id)
        assert made == again and made.created_at.tzinfo == timezone.utc
        made.project_phids.append("x")  # the record's lists are its own, not the stored document's
        assert ledger.record(made.doc_id).project_phids == ["PHID-PROJ-a", "PHID-PROJ-b"]
        ledger.clear_missing(set(), now)
        second = ledger.start_episode(f, now + timedelta(hours=1))
        assert second == ledger.record(second.doc_id) and second.episode == 2


def test_one_line_shortcut_gives_the_same_text_for_every_character():
    def slow(text: Any) -> str:  # what one_line did before the shortcut
        return escape._WS.sub(" ", escape.clean(text)).strip()

    for cp in range(0x3100):
        c = chr(cp)
        for text in (c, f"a{c}b", f" {c}{c} "):
            assert escape.one_line(text) == slow(text), hex(cp)
    for text in ("\u2028x", "\u3000x\u3000", "x\u202ey", "T1  two", None, 12, "ok"):
        assert escape.one_line(text) == slow(text)


def test_the_check_job_runs_with_the_collector_paused_and_restores_it():
    seen = []

    class App:
        def config(self) -> Any:
            seen.append(gc.isenabled())
            raise LookupError("the job starts by reading the config")

    assert gc.isenabled()
    with pytest.raises(LookupError):
        job.run_check_job(App())
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        with pytest.raises(LookupError):
            job.run_check_job(App())
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()


# -- the checks ------------------------------------------------------------------------------------


def test_a_findings_key_is_made_once_and_follows_a_replaced_slug(monkeypatch):
    made = []
    real = Finding.key.func  # type: ignore[attr-defined]
    monkeypatch.setattr(Finding, "key", cached_property(lambda self: made.append(1) or real(self)))
    Finding.key.__set_name__(Finding, "key")
    f = findings(1)[0]
    assert [f.key for _ in range(12)] == ["untriaged:T1"] * 12 and len(made) == 1
    assert replace(f, slug="unprioritised").key == "unprioritised:T1"  # a new finding, its own key
    assert replace(f, subject="alice").key == "untriaged:T1:alice"


@pytest.mark.parametrize("check, settings", [(CookieLickingCheck(), {}),
                                             (UnassignedOnInternalBoardCheck(), {"boards": ["Team"]})])
def test_the_engineer_checks_ask_who_is_not_human_once_per_run_not_per_task(check, settings, monkeypatch):
    sb = SnapshotBuilder(NOW_C)
    ready = sb.column("Team", "ready")
    for i in range(1, 31):
        sb.task(i, created=NOW_C - days(30), owner=[ALICE, BOT, None][i % 3], columns=[ready],
                events=[owner(NOW_C - days(30), ALICE, [ALICE, BOT, None][i % 3])])
    snapshot = sb.build()
    before = run_check(check, snapshot, **settings)
    calls = []
    real = Snapshot.non_human_phids
    monkeypatch.setattr(Snapshot, "non_human_phids", lambda self: calls.append(1) or real(self))
    assert run_check(check, snapshot, **settings) == before and before
    assert len(calls) == 1


def test_only_writes_are_ranked_for_the_cap_not_every_console_line(tmp_path):
    snap = Snapshot(now=NOW, boards={}, tasks={})
    with Ledger.open(tmp_path) as ledger:
        made = [(f, ledger.start_episode(f, NOW - timedelta(hours=f.task_id))) for f in findings(30)]
        decisions = [Decision(f, rec, True, ["console", "chat"] if f.task_id <= 2 else ["console"], "new")
                     for f, rec in made]
        box = Outbox(None, ledger, apply=False, cap=20, now=NOW, chat_sender=lambda text: None)
        Planner(box, Templates(), snap, [], "", "Core", "https://phab.example.org/", NOW).plan(decisions)
    console = [a for a in box.actions if a.handler == "console"]
    [chat] = [a for a in box.actions if a.handler == "chat"]
    assert len(console) == 30 and all(a.severity == "" and a.since is None for a in console)
    assert chat.severity == "warning" and chat.since == NOW - timedelta(hours=2)  # the older of its two


class CountingTimelines(dict):
    """A snapshot's timelines that remember whose history a check read."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.read: list[str] = []

    def __getitem__(self, phid: str) -> Any:
        self.read.append(phid)
        return super().__getitem__(phid)

    def get(self, phid: str, default: Any = None) -> Any:
        self.read.append(phid)
        return super().get(phid, default)


@pytest.mark.parametrize("business_hours", [None, True])
def test_stale_in_progress_reads_no_history_of_a_task_younger_than_its_threshold(business_hours):
    sb = SnapshotBuilder(NOW_C)
    doing, blocked = sb.column("Team", "doing"), sb.column("Team", "blocked")
    sb.task(1, created=NOW_C - days(30), owner=ALICE, columns=[doing])  # idle since creation: stale
    sb.task(2, created=NOW_C - days(30), owner=ALICE, columns=[blocked],
            events=[comment(NOW_C - days(20), ALICE, "waiting on the vendor")])  # stale
    sb.task(3, created=NOW_C - days(30), owner=ALICE, columns=[doing],
            events=[comment(NOW_C - days(1), ALICE, "on it")])  # read: fresh activity
    sb.task(4, created=NOW_C - days(10), owner=ALICE, columns=[doing],
            events=[comment(NOW_C - days(1), BOT, "Is this still being worked on?")])  # too young to be stale
    sb.task(5, created=NOW_C - days(3), owner=ALICE, columns=[blocked])
    snapshot = sb.build()
    snapshot.timelines = CountingTimelines(snapshot.timelines)
    found = run_check(StaleInProgressCheck(), snapshot, business_hours=business_hours)
    assert sorted(set(snapshot.timelines.read)) == ["PHID-TASK-1", "PHID-TASK-2", "PHID-TASK-3"]
    assert keys(found) == ["stale-in-progress:T1", "stale-in-progress:T2"]
