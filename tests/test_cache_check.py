"""The cache's page and row checks (PRAGMA quick_check; counts and sums of the rows) run on opening
for writing only when the file may have changed since a writer left it (clinicbot/state/cache_check.py;
issue 12: a warm sync is O(changed)). Damage is still found and rebuilt."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from clinicbot.state import cache_check
from clinicbot.state.cache import CacheStore


@pytest.fixture
def checks(monkeypatch):
    """The ``pages`` argument of every damage check, in order."""
    seen: list[bool] = []
    real = CacheStore._damage

    def spy(self, pages=True):
        seen.append(pages)
        return real(self, pages)

    monkeypatch.setattr(CacheStore, "_damage", spy)
    return seen


def write_some_rows(path):
    with CacheStore(path) as store, store.transaction() as conn:
        conn.executemany("INSERT INTO tasks (phid, id, modified, task, status) VALUES (?, ?, ?, ?, ?)",
                         [(f"PHID-TASK-{i}", i, 100 + i, "[]", "open") for i in range(50)])
        store.put("rows", json.dumps(store.row_check()))


def test_a_file_left_as_a_writer_left_it_is_not_page_checked_again(tmp_path, checks):
    path = tmp_path / "cache.sqlite"
    write_some_rows(path)
    with CacheStore(path):
        pass
    with CacheStore(path):
        pass
    # the file this writer created is new (nothing to check); every later open finds it as left
    assert checks == [False, False]
    record = tmp_path / "cache.sqlite.verified"
    assert oct(os.stat(record).st_mode & 0o777) == "0o600"
    record.unlink()  # without a record (an older clinicbot, a crash): checked
    with CacheStore(path):
        pass
    with CacheStore(path):
        pass
    assert checks == [False, False, True, False]


def test_a_file_written_by_anyone_else_is_page_checked(tmp_path, checks):
    path = tmp_path / "cache.sqlite"
    write_some_rows(path)
    with CacheStore(path):
        pass
    conn = sqlite3.connect(path)  # another tool writes the file
    conn.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')")
    conn.commit()
    conn.close()
    with CacheStore(path):
        pass
    assert checks[-1] is True


def test_a_check_older_than_a_day_is_repeated(tmp_path, checks, monkeypatch):
    path = tmp_path / "cache.sqlite"
    write_some_rows(path)
    with CacheStore(path):
        pass
    record = tmp_path / "cache.sqlite.verified"
    saved = json.loads(record.read_text())
    saved["checked_at"] -= cache_check.RECHECK_SECONDS + 1
    record.write_text(json.dumps(saved))
    with CacheStore(path):
        pass
    assert checks[-1] is True
    with CacheStore(path):
        pass
    assert checks[-1] is False  # checked again just now


def test_an_open_reader_leaves_no_record_so_the_next_writer_checks(tmp_path, checks):
    path = tmp_path / "cache.sqlite"
    write_some_rows(path)
    reader = CacheStore(path, readonly=True)
    reader.conn.execute("SELECT COUNT(*) FROM tasks").fetchone()
    with CacheStore(path) as store, store.transaction():
        store.put("y", "z")  # the WAL stays: the reader still has the file open
    with CacheStore(path):
        pass
    reader.close()
    assert checks[-1] is True


def test_rows_lost_by_anyone_elses_write_are_found(tmp_path, checks):
    path = tmp_path / "cache.sqlite"
    write_some_rows(path)
    with CacheStore(path):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM tasks WHERE id % 3 = 0")
    conn.close()
    with CacheStore(path) as store:
        assert store.rebuilt_reason == "the cache was damaged"
    assert checks[-1] is True
