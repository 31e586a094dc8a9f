"""When the cache needs its page check (``PRAGMA quick_check``) on being opened for writing.

:class:`~clinicbot.state.cache.CacheStore` checks the cache it opens for writing, so that a
damaged file is moved aside and rebuilt instead of failing later (or silently giving fewer
tasks). ``quick_check`` reads every page: at 100,000 tasks (a ~300 MB file) it took 0.3 s, and
a sync opens the cache three times (the run's start, the sync, the run's end), so a warm sync
that changed nothing spent about 1 s checking pages no one had touched (issue 12: a warm sync is
O(changed)).

Pages change only when something writes the file. So each writer that closes the cache cleanly
(the last connection: SQLite has checkpointed and removed the ``-wal``) records the file as it
left it (inode, size, modification time) in ``cache.sqlite.verified``; the next opener runs the
page check only when the file is not as recorded (written by anyone else: another tool, a disk
that wrote garbage over it, a restore from backup), when no clean close was recorded (a crash, a
reader still open), or when the last check is older than :data:`RECHECK_SECONDS` (damage that
changes nothing the file system shows). The row check (counts and sums of the tasks and
timelines, against what the last completed sync recorded) goes with it: rows are lost only by a write.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from clinicbot.errors import StateError
from clinicbot.state.fileio import create_private_file

SUFFIX = ".verified"
RECHECK_SECONDS = 24 * 3600.0


def file_state(path: Path) -> list[int] | None:
    """The file as the file system shows it, or None when it is not at rest (a ``-wal`` with
    frames in it: a writer or reader has it open, or one crashed)."""
    try:
        wal = Path(str(path) + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            return None
        st = path.stat()
    except OSError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns]


class Verification:
    """Read before the cache is opened for writing; :meth:`closed` after it was closed."""

    def __init__(self, path: Path):
        self.path = path
        self.record = Path(str(path) + SUFFIX)
        self.checked_at: float | None = None  # when the pages were last checked
        state = file_state(path)
        try:
            saved = json.loads(self.record.read_text())
            if state is not None and saved.get("file") == state:
                self.checked_at = float(saved["checked_at"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # no record (or an unreadable one): check
        now = time.time()
        self.needed = self.checked_at is None or not 0 <= now - self.checked_at < RECHECK_SECONDS
        if self.needed:
            self.checked_at = now  # the opener checks now

    def closed(self) -> None:
        """Record the file as this writer left it (nothing when it is not at rest)."""
        state = file_state(self.path)
        try:
            if state is None:
                self.record.unlink(missing_ok=True)
                return
            create_private_file(self.record)
            self.record.write_text(json.dumps({"file": state, "checked_at": self.checked_at}))
        except (OSError, StateError):
            pass  # only an optimisation: without a record the next open checks the pages
