"""The ledger's per-run index (issue 12, item 1): ``check`` is linear in findings and ledger size.

Counted, never timed: the rows of the records table visited (TinyDB scans and rebuilds, plus the
index's one pass) while a run decides N findings against a ledger holding M older records.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from tinydb.table import Table

from clinicbot.checks.base import Finding
from clinicbot.jobs.check import _decisions
from clinicbot.state import ledger as ledger_mod
from clinicbot.state.ledger import Ledger, Outcome, iso

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)


def finding(task_id: int, slug: str = "untriaged") -> Finding:
    return Finding(slug=slug, task_phid=f"PHID-TASK-{task_id}", task_id=task_id, severity="warning",
                   summary=f"T{task_id} waited")


@pytest.fixture
def rows(monkeypatch):
    """Counts the records rows visited by any pass over the records table."""
    seen = {"rows": 0, "passes": 0}
    read, update = Table._read_table, Table._update_table

    def counting_read(self):
        table = read(self)
        if self.name == "records":
            seen["rows"] += len(table)
            seen["passes"] += 1
        return table

    def counting_update(self, updater):
        if self.name == "records":
            seen["rows"] += len(self._storage.read().get("records") or {})
            seen["passes"] += 1
        return update(self, updater)

    build = ledger_mod._RecordIndex.build.__func__

    def counting_build(cls, tables, raw):
        seen["rows"] += len(raw)
        seen["passes"] += 1
        return build(cls, tables, raw)

    monkeypatch.setattr(Table, "_read_table", counting_read)
    monkeypatch.setattr(Table, "_update_table", counting_update)
    monkeypatch.setattr(ledger_mod._RecordIndex, "build", classmethod(counting_build))
    return seen


def _aged_ledger(path, old: int) -> None:
    """A ledger that has lived a while: ``old`` episodes opened and cleared."""
    with Ledger.open(path) as book, book.batch():
        for i in range(old):
            book.start_episode(finding(100_000 + i), NOW - timedelta(days=3))
        book.clear_missing(set(), NOW - timedelta(days=2))


def _run(path, n: int, rows: dict) -> int:
    snapshot = SimpleNamespace(tasks={})
    findings = [finding(i) for i in range(n)]
    rows["rows"] = rows["passes"] = 0
    with Ledger.open(path, readonly=True) as book:
        decisions = _decisions(book, findings, {"untriaged": {"handlers": ["console"]}}, snapshot, NOW)
        book.clear_missing({f.key for f in findings}, NOW)
    assert len(decisions) == n and all(d.act for d in decisions)
    return rows["rows"]


def test_deciding_findings_visits_each_record_a_bounded_number_of_times(tmp_path, rows):
    _aged_ledger(tmp_path, 300)
    small, large = _run(tmp_path, 200, rows), _run(tmp_path, 800, rows)
    # Before the index: one scan of the whole table per finding (open_record, last_episode,
    # insert, update): 800 findings visited ~1.5 million rows. Now a few passes per run.
    assert large <= 4 * (800 + 300), (small, large)
    assert large <= 2.5 * small, (small, large)  # grows with N (x4 findings), not with N^2


def test_an_aged_ledger_does_not_slow_the_run(tmp_path, rows):
    _aged_ledger(tmp_path, 50)
    young = _run(tmp_path, 100, rows)
    _aged_ledger(tmp_path, 1000)
    old = _run(tmp_path, 100, rows)
    assert old <= young + 4 * 1000, (young, old)  # a pass or a few over the old rows, not one per finding


def test_episodes_and_never_twice_through_the_index(tmp_path):
    with Ledger.open(tmp_path) as book:
        first = book.start_episode(finding(1), NOW)
        book.note_handled(first.doc_id, NOW, [Outcome("comment", "posted", iso(NOW))])
        assert book.open_record(first.key).times_handled == 1
        book.clear_missing(set(), NOW + timedelta(hours=1))
        assert book.open_record(first.key) is None and book.last_episode(first.key) == 1
        again = book.start_episode(finding(1), NOW + timedelta(hours=2))
        assert again.episode == 2 and again.doc_id != first.doc_id
        assert book.open_record(first.key).doc_id == again.doc_id
        book.mark_delivered("comment:T1:abc", NOW)
        assert book.already_delivered("comment:T1:abc") and not book.already_delivered("comment:T1:other")
    with Ledger.open(tmp_path) as book:  # what reached the disk, read back by a fresh index
        assert book.open_record(first.key).episode == 2 and book.last_episode(first.key) == 2
        assert book.already_delivered("comment:T1:abc")
        assert [r.episode for r in book.records(key=first.key)] == [2, 1]


def test_a_failed_write_leaves_no_ghost_in_the_index(tmp_path, monkeypatch):
    with Ledger.open(tmp_path) as book:
        book.start_episode(finding(1), NOW)

        def boom(*a, **kw):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(ledger_mod, "atomic_write", boom)
        with pytest.raises(OSError):
            book.start_episode(finding(2), NOW)
        monkeypatch.undo()
        # The disk does not hold T2's record: neither may the index (it would never fire).
        assert book.open_record("untriaged:T2") is None and book.last_episode("untriaged:T2") == 0
        rec = book.start_episode(finding(2), NOW)
        assert rec.episode == 1 and book.open_record("untriaged:T2").doc_id == rec.doc_id
