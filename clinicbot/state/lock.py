"""The state lock: one writer per state directory (``clinicbot.lock``, flock), re-entrant per thread.

Interactive commands are refused at once with the holder's PID; scheduled jobs wait up to
``schedule.lock_wait_seconds`` (``acquire(wait=...)``).
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from clinicbot.errors import LockHeldError
from clinicbot.state.fileio import PRIVATE_FILE_MODE, private_dir, state_error

log = logging.getLogger(__name__)

LOCK_FILE = "clinicbot.lock"

_held_lock = threading.Lock()
_held: dict[str, tuple[int, int, Any]] = {}  # lock path -> (thread id, depth, open file)


class StateLock:
    """One clinicbot per state directory: an exclusive ``flock`` on ``<state_dir>/clinicbot.lock``.

    The file holds the holder's PID and host so the refusal can name it. ``flock`` is released
    by the kernel when the process dies (even by SIGKILL), so a stale lock cannot block forever.
    Re-entrant within one thread (sync and ledger may both take it in one run); another thread
    of the same process is refused like another process would be.

    ``acquire(wait=seconds)`` waits up to that long for the holder to finish (scheduled jobs:
    several timers fire at 09:00, and none may be lost); ``wait=0`` (interactive commands) is
    refused at once. Taking the lock also creates the state directory 0700, or tightens it.
    """

    POLL = 0.25  # seconds between attempts while waiting

    def __init__(self, state_dir: str | Path):
        self.dir = Path(state_dir)
        self.path = self.dir / LOCK_FILE
        self._key = str(self.path.resolve())  # resolve() also works for a directory not yet made
        self.acquired = False

    def acquire(self, wait: float = 0.0) -> "StateLock":
        deadline = time.monotonic() + max(wait, 0.0)
        waiting = False
        while True:
            try:
                return self._try_acquire()
            except LockHeldError as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    if not wait:
                        raise
                    holder = getattr(exc, "holder", "")
                    raise _held_error(exc.path, exc.pid, (f"{holder}; " if holder else "")
                                      + f"still held after waiting {wait:g} s, see schedule.lock_wait_seconds") from None
                if not waiting:
                    log.warning("%s; waiting up to %g s for it", exc, wait)
                    waiting = True
                time.sleep(min(self.POLL, left))

    @staticmethod
    def held(state_dir: str | Path) -> bool:
        """Whether this process holds the lock on ``state_dir`` (in any thread)."""
        key = str((Path(state_dir) / LOCK_FILE).resolve())
        with _held_lock:
            return key in _held

    def _try_acquire(self) -> "StateLock":
        me = threading.get_ident()
        with _held_lock:
            held = _held.get(self._key)
            if held is not None:
                if held[0] != me:
                    raise _held_error(str(self.path), os.getpid(), "another job in this process")
                if not self.dir.is_dir():  # removed while we held it: never recreate it empty
                    private_dir(self.dir, create=False)
                _held[self._key] = (me, held[1] + 1, held[2])
                self.acquired = True
                return self
        private_dir(self.dir)
        self._key = str(self.path.resolve())
        with _held_lock:
            held = _held.get(self._key)
            if held is not None:  # the key was not resolved before (the directory did not exist)
                if held[0] != me:
                    raise _held_error(str(self.path), os.getpid(), "another job in this process")
                _held[self._key] = (me, held[1] + 1, held[2])
                self.acquired = True
                return self
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
            except OSError as exc:
                raise state_error(exc, self.path, "cannot take the state lock") from None
            fh = os.fdopen(fd, "r+")
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.seek(0)
                pid, holder = _parse_holder(fh.read())
                fh.close()
                raise _held_error(str(self.path), pid, holder) from None
            try:
                fh.seek(0)
                fh.truncate()
                fh.write(f"{os.getpid()} {socket.gethostname()}\n")
                fh.flush()
            except OSError as exc:
                fh.close()
                raise state_error(exc, self.path, "cannot take the state lock") from None
            _held[self._key] = (me, 1, fh)
        self.acquired = True
        return self

    def release(self) -> None:
        if not self.acquired:
            return
        self.acquired = False
        with _held_lock:
            held = _held.get(self._key)
            if held is None:
                return
            if held[1] > 1:
                _held[self._key] = (held[0], held[1] - 1, held[2])
                return
            del _held[self._key]
            fh = held[2]
            # The file stays (unlinking a flock'ed file races with the next locker); the PID
            # in it is only read while someone holds the lock.
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            fh.close()

    def __enter__(self) -> "StateLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _held_error(path: str, pid: int | None, holder: str) -> LockHeldError:
    err = LockHeldError(path, pid, holder)
    err.holder = holder  # type: ignore[attr-defined]  # for the "still held after waiting" message
    return err


def _parse_holder(text: str) -> tuple[int | None, str]:
    parts = text.split()
    pid = int(parts[0]) if parts and parts[0].isdigit() else None
    return pid, (f"host {parts[1]}" if len(parts) > 1 else "")


# --------------------------------------------------------------------------------------------
# The ledger
