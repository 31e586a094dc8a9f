"""Files: output files readers never see half of, and the private state directory.

Two kinds of files, two permission rules:

* **Output** (calendars, report pages, metrics pages) are meant to be read by others: they get
  the usual permissions (0666 less the umask), see :func:`write_atomic`;
  both go through :func:`atomic_write`, the one atomic writer.
* **State** (everything under ``state_dir``: the ledger and its backup, the cache and its
  ``-wal``/``-shm``, the lock, the metrics history) holds task data from possibly private
  projects: the directory is ``0700`` and every file in it ``0600``. :func:`private_dir`
  creates the directory so and *tightens* an existing one (and the files in it) that is wider,
  with one warning naming what it changed; when it cannot (the files belong to someone else)
  it warns and carries on (doctor reports it).

An ``OSError`` on a state file becomes one :class:`StateError` line naming the file and what to
do (:func:`state_error`): a read-only filesystem, a full disk, a directory removed mid-run.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import tempfile
from pathlib import Path

from clinicbot.errors import StateError

log = logging.getLogger(__name__)

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, data: bytes | str, *, private: bool = True, durable: bool = True,
                 action: str = "cannot write", intact: str = "") -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one, whole
    (a temp file beside it, fsync, ``os.replace``, fsync of the directory).

    ``private`` (a state file): mode 0600, and an OSError (read-only filesystem, full disk,
    directory removed) becomes one StateError naming the file, ``action`` and ``intact`` (what is
    unharmed). Not private (an output file): the directory is created, the file gets the usual
    permissions (0666 less the umask, not mkstemp's 0600: a metrics page is meant to be served)
    and an OSError is the caller's to report. ``durable=False`` skips both fsyncs (a backup copy)."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp: str | None = None
    try:
        if not private:
            directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)  # 0600
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        if not private:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if private and isinstance(exc, OSError):
            raise state_error(exc, path, action, intact=intact) from None
        raise
    if durable:
        _fsync_dir(directory)


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write an output file (calendar, report page) atomically: see :func:`atomic_write`."""
    atomic_write(path, data, private=False)


def _fsync_dir(directory: Path) -> None:
    # The rename is only durable once the directory entry is on disk.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------
# The private state directory


def private_dir(path: str | Path, *, create: bool = True) -> Path:
    """Make sure ``path`` is a directory only its owner can read: create it ``0700``, or tighten
    an existing one (and the regular files in it) to ``0700``/``0600``, warning once per change.

    ``create=False``: a missing directory is an error (the state directory was removed while a
    run was using it: recreating it empty would silently start a new ledger).
    """
    path = Path(path)
    try:
        if not path.is_dir():
            if not create:
                raise StateError(str(path), "the state directory disappeared while clinicbot was using it; restore "
                                 "it from your backup before the next run (a new, empty one would make every open "
                                 "finding fire again)")
            path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
            os.chmod(path, PRIVATE_DIR_MODE)  # mkdir's mode is filtered by the umask
    except OSError as exc:
        raise state_error(exc, path, "cannot create the state directory") from None
    tighten(path)
    return path


def tighten(directory: Path) -> list[str]:
    """Remove group/other bits from ``directory`` and the regular files directly in it.

    Returns what was changed (for the warning); never raises: a file owned by someone else is
    left alone with a warning (``clinicbot doctor`` says so too)."""
    changed: list[str] = []
    try:
        entries = [directory] + [p for p in directory.iterdir() if not p.is_symlink()]
    except OSError:
        return changed
    for entry in entries:
        try:
            st = entry.lstat()
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and entry != directory:
            continue
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            continue
        mode = stat.S_IMODE(st.st_mode)
        if not mode & 0o077:
            continue
        wanted = PRIVATE_DIR_MODE if entry == directory else (mode & 0o700) | PRIVATE_FILE_MODE
        try:
            os.chmod(entry, wanted)
        except OSError as exc:
            if exc.errno == errno.EROFS:  # nothing can be written there: the caller's write says so
                continue
            log.warning("%s is readable by others (mode %o) and cannot be tightened: %s; make the bot's user "
                        "own the state directory (chmod 700 it, 600 its files)", entry, mode, exc.strerror)
            continue
        changed.append(f"{entry.name} {mode:o}->{wanted:o}")
    if changed:
        log.warning("state directory %s was readable by others; tightened %s (state holds task data from "
                    "private projects: the directory is 0700, its files 0600)", directory, ", ".join(changed))
    return changed


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist (so that SQLite, which gives its
    ``-wal``/``-shm`` files the database's mode, never makes a world-readable one)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return
    except OSError as exc:
        raise state_error(exc, path, "cannot create") from None
    os.close(fd)


# --------------------------------------------------------------------------------------------
# OSError -> one line


def state_error(exc: OSError, path: str | Path, action: str, *, intact: str = "") -> StateError:
    """One line for a failed state-file operation: what failed, why, and what to do.

    ``intact``: what is known to be unharmed (e.g. "the previous ledger is intact")."""
    path = Path(path)  # the state file itself, not the temporary file beside it
    reason = exc.strerror or str(exc)
    code = exc.errno
    directory = path.parent
    if code == errno.EROFS:
        hint = (f"the state directory {directory} is on a read-only filesystem; remount it read-write or "
                "point state_dir at a writable directory")
    elif code in (errno.ENOSPC, errno.EDQUOT):
        hint = f"the disk (or quota) holding {directory} is full; free some space, then run again"
    elif code in (errno.EACCES, errno.EPERM):
        hint = (f"this user may not write there; make the bot's user own {directory} "
                "(chmod 700 the directory, 600 its files)")
    elif code == errno.ENOENT:
        hint = (f"the state directory {directory} disappeared while clinicbot was using it; restore it from "
                "your backup before the next run (a new, empty one would make every open finding fire again)")
    elif code == errno.ENOTDIR:
        hint = f"{directory} is not a directory; fix state_dir in the config"
    else:
        hint = "check the state directory and its disk"
    tail = f" ({intact})" if intact and code != errno.ENOENT else ""  # a removed directory kept nothing
    return StateError(str(path), f"{action}: {reason}; {hint}{tail}")
