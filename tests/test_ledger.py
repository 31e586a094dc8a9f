"""The ledger: atomic writes, backup, corruption detection, schema versions, the lock, episodes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from clinicbot.checks.base import Finding
from clinicbot.errors import LockHeldError, StateError
from clinicbot.state.ledger import LEDGER_FILE, SCHEMA_VERSION, Ledger, Outcome, StateLock, iso

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)
REPO = Path(__file__).resolve().parents[1]


def finding(slug: str = "untriaged", task_id: int | None = 12, subject: str = "") -> Finding:
    return Finding(slug=slug, task_phid=f"PHID-TASK-{task_id}" if task_id else None, task_id=task_id,
                   severity="warning", summary=f"T{task_id} waited", subject=subject)


def run_py(code: str, *args: str, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          env=env, timeout=30, **kw)


# -- files -------------------------------------------------------------------------------------


def test_new_ledger_has_schema_and_backup(tmp_path):
    with Ledger.open(tmp_path) as book:
        book.start_episode(finding(), NOW)
    data = json.loads((tmp_path / LEDGER_FILE).read_text())
    assert data["_meta"]["1"]["schema_version"] == SCHEMA_VERSION
    assert len(data["records"]) == 1
    assert (tmp_path / "ledger.json.bak").read_bytes() == (tmp_path / LEDGER_FILE).read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_readonly_open_is_a_private_copy(tmp_path):
    with Ledger.open(tmp_path) as book:
        book.start_episode(finding(), NOW)
    before = (tmp_path / LEDGER_FILE).read_bytes()
    with Ledger.open(tmp_path, readonly=True) as dry:
        assert dry.open_record("untriaged:T12") is not None
        dry.start_episode(finding(task_id=13), NOW)
        assert dry.open_record("untriaged:T13") is not None
    assert (tmp_path / LEDGER_FILE).read_bytes() == before
    # a dry run takes no lock: it works while a writer holds the state directory
    with Ledger.open(tmp_path):
        with Ledger.open(tmp_path, readonly=True) as dry:
            assert dry.records()


def test_failed_replace_leaves_old_file_valid(tmp_path, monkeypatch):
    with Ledger.open(tmp_path) as book:
        book.start_episode(finding(), NOW)
        good = (tmp_path / LEDGER_FILE).read_bytes()

        def boom(src, dst):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "replace", boom)
        with pytest.raises(StateError, match="No space left on device.*ledger.json still holds"):
            book.start_episode(finding(task_id=99), NOW)
        monkeypatch.undo()
        assert book.open_record("untriaged:T99") is None  # memory agrees with the disk
    assert (tmp_path / LEDGER_FILE).read_bytes() == good
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    with Ledger.open(tmp_path) as book:
        assert book.open_record("untriaged:T12") and book.open_record("untriaged:T99") is None


def test_process_killed_mid_write_leaves_old_file_valid(tmp_path):
    with Ledger.open(tmp_path) as book:
        book.start_episode(finding(), NOW)
    good = (tmp_path / LEDGER_FILE).read_bytes()
    # Die (like SIGKILL: no cleanup) after the temp file is written, before it replaces the ledger.
    proc = run_py("""
        import os, sys
        from datetime import datetime, timezone
        from clinicbot.state.ledger import Ledger
        from clinicbot.checks.base import Finding
        book = Ledger.open(sys.argv[1])
        os.fsync = lambda fd: os._exit(137)
        book.start_episode(Finding("untriaged", "PHID-TASK-5", 5, "warning", "x"), datetime.now(timezone.utc))
    """, str(tmp_path))
    assert proc.returncode == 137, proc.stderr
    assert (tmp_path / LEDGER_FILE).read_bytes() == good
    with Ledger.open(tmp_path) as book:  # the leftover temp file does not matter
        assert [r.key for r in book.records()] == ["untriaged:T12"]


def test_truncated_ledger_is_refused_with_one_clear_line_and_backup_kept(tmp_path):
    with Ledger.open(tmp_path) as book:
        book.start_episode(finding(), NOW)
        book.start_episode(finding(task_id=13), NOW)
    path = tmp_path / LEDGER_FILE
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])  # what a half-finished non-atomic copy leaves
    with pytest.raises(StateError) as err:
        Ledger.open(tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "corrupt or truncated" in msg
    assert "ledger.json.bak" in msg and "cp " in msg
    assert (tmp_path / "ledger.json.bak").read_bytes() == good
    # a dry run refuses too: it must not pretend the ledger is empty
    with pytest.raises(StateError):
        Ledger.open(tmp_path, readonly=True)
    # following the advice works
    path.write_bytes((tmp_path / "ledger.json.bak").read_bytes())
    with Ledger.open(tmp_path) as book:
        assert len(book.records()) == 2


def test_empty_file_is_corrupt_too(tmp_path):
    (tmp_path / LEDGER_FILE).write_text("")
    with pytest.raises(StateError, match="empty file"):
        Ledger.open(tmp_path)


def test_newer_schema_asks_for_an_upgrade(tmp_path):
    (tmp_path / LEDGER_FILE).write_text(json.dumps({"_meta": {"1": {"schema_version": SCHEMA_VERSION + 1}}}))
    with pytest.raises(StateError, match="upgrade clinicbot"):
        Ledger.open(tmp_path)


def test_older_schema_is_migrated(tmp_path):
    v0 = {"records": {"1": {"key": "untriaged:T1", "check_slug": "untriaged", "task_id": 1, "task_phid": "P",
                            "created_at": iso(NOW), "handled_at": iso(NOW), "times_handled": 1}}}
    (tmp_path / LEDGER_FILE).write_text(json.dumps(v0))
    with Ledger.open(tmp_path) as book:
        rec = book.open_record("untriaged:T1")
        assert rec is not None and rec.episode == 1 and rec.escalations == [] and rec.is_open
    assert json.loads((tmp_path / LEDGER_FILE).read_text())["_meta"]["1"]["schema_version"] == SCHEMA_VERSION


# -- the lock ------------------------------------------------------------------------------------


def test_second_process_is_refused_naming_the_holder_pid(tmp_path):
    with Ledger.open(tmp_path):
        proc = run_py("""
            import sys
            from clinicbot.state.ledger import Ledger
            from clinicbot.errors import LockHeldError
            try:
                Ledger.open(sys.argv[1])
            except LockHeldError as exc:
                print(exc.pid); print(exc); sys.exit(2)
        """, str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    pid, message = proc.stdout.splitlines()[:2]
    assert int(pid) == os.getpid()
    assert f"process {os.getpid()}" in message and "locked" in message
    # released: the next one gets it
    with Ledger.open(tmp_path):
        pass


def test_lock_held_by_another_process_names_it(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time
        from clinicbot.state.ledger import StateLock
        with StateLock(sys.argv[1]):
            print("locked", flush=True)
            time.sleep(30)
    """), str(tmp_path)], stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockHeldError) as err:
            StateLock(tmp_path).acquire()
        assert err.value.pid == holder.pid
        assert str(holder.pid) in str(err.value)
    finally:
        holder.kill()
        holder.wait()
    # the kernel dropped the lock with the process (even killed): no stale lock
    with StateLock(tmp_path):
        pass


def test_lock_is_reentrant_in_one_thread_but_not_across_threads(tmp_path):
    errors = []
    with StateLock(tmp_path):
        with StateLock(tmp_path):  # sync and ledger in one run
            pass

        def other():
            try:
                StateLock(tmp_path).acquire()
            except LockHeldError as exc:
                errors.append(exc)

        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert len(errors) == 1 and "another job in this process" in str(errors[0])


# -- episodes and the rest ------------------------------------------------------------------------


def test_episodes_open_handle_clear_and_restart(tmp_path):
    with Ledger.open(tmp_path) as book:
        rec = book.start_episode(finding(), NOW)
        assert rec.episode == 1 and rec.times_handled == 0 and rec.handled_at is None
        rec = book.note_handled(rec.doc_id, NOW, [Outcome("comment", "posted", iso(NOW), "h", "PHID-XACT-1")],
                                escalations=[0])
        assert rec.times_handled == 1 and rec.handled_at == NOW and rec.escalations == [0]
        assert rec.outcomes[0]["transaction_phid"] == "PHID-XACT-1"
        other = book.start_episode(finding("stale-in-progress", 5), NOW)
        # the scope of a run: a check that did not run proves nothing about its keys
        assert book.clear_missing(set(), NOW, slugs={"untriaged"}, task_id=99) == []
        assert book.clear_missing(set(), NOW, slugs={"review-needed"}) == []
        cleared = book.clear_missing({"untriaged:T12"}, NOW + timedelta(hours=1), slugs=None)
        assert [c.key for c in cleared] == [other.key] and cleared[0].is_deleted
        cleared = book.clear_missing(set(), NOW + timedelta(hours=2), slugs={"untriaged"})
        assert [c.key for c in cleared] == ["untriaged:T12"]
        assert book.open_record("untriaged:T12") is None
        again = book.start_episode(finding(), NOW + timedelta(days=1))
        assert again.episode == 2 and again.times_handled == 0
        assert [r.episode for r in book.records(key="untriaged:T12")] == [2, 1]


def test_snooze_by_slug_or_task(tmp_path):
    with Ledger.open(tmp_path) as book:
        book.snooze("t12", NOW + timedelta(days=1), NOW, "waiting for upstream")
        book.snooze("review-needed", NOW + timedelta(hours=1), NOW)
        assert book.snoozed("untriaged", 12, NOW).reason == "waiting for upstream"
        assert book.snoozed("review-needed", 7, NOW) is not None
        assert book.snoozed("untriaged", 13, NOW) is None
        assert book.snoozed("review-needed", 7, NOW + timedelta(hours=2)) is None  # expired


def test_mark_handled_creates_or_updates_the_record(tmp_path):
    with Ledger.open(tmp_path) as book:
        rec = book.mark_handled("unbreak-now:T4:no-owner", NOW)
        assert rec.task_id == 4 and rec.check_slug == "unbreak-now" and rec.times_handled == 1
        rec = book.mark_handled("unbreak-now:T4:no-owner", NOW + timedelta(hours=1))
        assert rec.times_handled == 2 and rec.outcomes[-1]["handler"] == "manual"


def test_intents_deliveries_notices(tmp_path):
    with Ledger.open(tmp_path) as book:
        i = book.record_intent(key="k1", handler="comment", task_phid="PHID-TASK-1", task="T1", text_hash="h",
                               at=NOW, refs=[{"record": 1}], text="hello")
        assert [p.key for p in book.pending_intents()] == ["k1"]
        book.finish_intent(i, "posted", NOW, transaction_phid="PHID-XACT-9")
        assert book.pending_intents() == []
        assert not book.already_delivered("digest:2026-11-22")
        book.mark_delivered("digest:2026-11-22", NOW, channel="wiki")
        book.mark_delivered("digest:2026-11-22", NOW + timedelta(hours=1))  # idempotent
        assert book.already_delivered("digest:2026-11-22")
        assert book.delivery("digest:2026-11-22")["channel"] == "wiki"
        book.mark_notice_told("alice:on:2026-11-23", NOW, "alice rotates on")
        assert book.notice_told("alice:on:2026-11-23") and not book.notice_told("bob:on:2026-11-23")
    with Ledger.open(tmp_path) as book:  # all of it survived the reopen
        assert book.already_delivered("digest:2026-11-22") and book.notice_told("alice:on:2026-11-23")


def test_batch_writes_once(tmp_path, monkeypatch):
    import clinicbot.state.ledger as ledger_mod

    writes = []
    real = ledger_mod.atomic_write
    monkeypatch.setattr(ledger_mod, "atomic_write", lambda p, d, **kw: (writes.append(p.name), real(p, d, **kw)))
    with Ledger.open(tmp_path) as book:
        writes.clear()
        with book.batch():
            for i in range(20):
                book.start_episode(finding(task_id=i + 1), NOW)
        assert writes == [LEDGER_FILE, "ledger.json.bak"]  # one write, not 20
        assert len(book.records()) == 20


def test_prune_forgets_old_cleared_records(tmp_path):
    with Ledger.open(tmp_path) as book:
        book.start_episode(finding(), NOW - timedelta(days=400))
        book.clear_missing(set(), NOW - timedelta(days=300))
        book.start_episode(finding(task_id=2), NOW)
        assert book.prune(NOW) == 1
        assert [r.key for r in book.records()] == ["untriaged:T2"]
