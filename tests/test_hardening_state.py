"""State faults end to end, through the CLI in a subprocess (issue 11, points 3 and 7; campaign part d).

Real faults where the kernel can make them: a read-only bind mount, a small tmpfs filled up (both
need root: skipped with the reason otherwise), the state directory removed while a run uses it
(the sandbox removes it when the run's Conduit call arrives), a hand-edited ledger, a damaged
cache. Every fault must end with exit 2, exactly one line on stderr naming the file and saying
what to do, no traceback, and the previous state intact.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pytest

from clinicbot.state.lookups import LOOKUPS_KEY, PEOPLE_MINUTES
from clinicbot.jobs.demo import write_sandbox_config
from clinicbot.sandbox import Sandbox, generate_scenario

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)
LATER = "2026-11-24T10:00:00+00:00"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sandbox():
    sb = Sandbox(scenario=generate_scenario(NOW, size=60))
    sb.start()
    yield sb
    sb.stop()


def cli(config: Path, *args: str, now: str = LATER) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "300"}  # no wrapped lines
    env.pop("CLINICBOT_NOW", None)
    return subprocess.run([sys.executable, "-m", "clinicbot.cli", "--config", str(config), "--now", now, *args],
                          capture_output=True, text=True, env=env, timeout=120)


def seeded(sandbox: Sandbox, workdir: Path) -> Path:
    """A config whose state directory holds a ledger, its backup and a synced cache."""
    config = write_sandbox_config(workdir / "clinicbot.yaml", sandbox.url, sandbox.token)
    first = cli(config, "check", "--apply", now=NOW.isoformat())
    assert first.returncode in (0, 1), first.stderr
    assert (workdir / "state" / "ledger.json").exists()
    return config


def state_files(state: Path) -> dict[str, bytes]:
    return {name: (state / name).read_bytes() for name in ("ledger.json", "ledger.json.bak") if (state / name).exists()}


def cache_rows(state: Path) -> tuple[str, int]:
    with sqlite3.connect(f"file:{state / 'cache.sqlite'}?mode=ro", uri=True) as conn:
        return (conn.execute("PRAGMA integrity_check").fetchone()[0],
                conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0])


def assert_one_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, exactly one line on stderr containing every needle, no traceback anywhere."""
    out = result.stdout + result.stderr
    assert "Traceback" not in out, out
    assert result.returncode == 2, out
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


def _umount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True).returncode:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def need_mounts() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for a real read-only bind mount / small tmpfs (chmod does not stop root, and a "
                    "non-root user cannot mount)")
    probe = Path(f"/tmp/clinicbot-mount-probe-{os.getpid()}")
    probe.mkdir(exist_ok=True)
    try:
        _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe))
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"cannot mount here (a container without CAP_SYS_ADMIN?): {exc}")
    else:
        _umount(probe)
    finally:
        probe.rmdir()


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    _mount("--bind", str(path), str(path))
    try:
        _mount("-o", "remount,bind,ro", str(path))
        yield
    finally:
        _umount(path)


@contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path))
    try:
        yield
    finally:
        _umount(path)


def fill(directory: Path) -> None:
    """Fill the filesystem holding ``directory`` to the last block (a real ENOSPC)."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    for n in range(100):  # the last partial blocks
        fd = os.open(directory / f"filler{n}", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.write(fd, b"\0" * 512)
        except OSError:
            break
        finally:
            os.close(fd)


# -- a read-only state directory ------------------------------------------------------------------

WRITING = [("check", "--apply"), ("serve", "--once", "checks"), ("sync",), ("ledger", "--snooze", "T5", "--until",
                                                                              "2026-12-01")]


@pytest.mark.slow
def test_read_only_state_dir(sandbox, tmp_path):
    need_mounts()
    config = seeded(sandbox, tmp_path)
    state = tmp_path / "state"
    before, rows = state_files(state), cache_rows(state)
    with read_only(state):
        for args in WRITING:
            result = cli(config, *args)
            # The first write refused names its file (the lock, or the run history a recorded run opens first).
            assert_one_line(result, str(state), "read-only", "remount it read-write")
    assert state_files(state) == before and cache_rows(state) == rows


# -- a full disk ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_full_disk(sandbox, tmp_path):
    need_mounts()
    state = tmp_path / "state"
    with small_tmpfs(state, "4m"):
        config = seeded(sandbox, tmp_path)
        assert cli(config, "sync").returncode == 0
        before, rows = state_files(state), cache_rows(state)
        fill(state)
        for args in WRITING + [("sync", "--full"), ("digest", "--apply")]:
            result = cli(config, *args)
            line = assert_one_line(result, str(state), "full", "free some space")
            assert "ledger.json" in line or "cache.sqlite" in line
        assert state_files(state) == before and cache_rows(state) == rows
        # A full disk is not a damaged cache: nothing was moved aside to be rebuilt.
        assert not [p for p in state.iterdir() if ".corrupt-" in p.name]
        # Space again: the same state carries on.
        for p in state.glob("filler*"):
            p.unlink()
        again = cli(config, "check", "--apply")
        assert again.returncode in (0, 1) and "Traceback" not in again.stderr, again.stderr


# -- the state directory removed mid-run --------------------------------------------------------


@contextmanager
def remove_on(sandbox: Sandbox, method: str, state: Path) -> Iterator[list[str]]:
    """Remove ``state`` when the next ``method`` call reaches the sandbox (the run is then inside it)."""
    removed: list[str] = []
    original = sandbox.faults.take

    def take(called: str):
        if called == method and not removed and state.exists():
            for _ in range(50):  # the run may be writing in another thread (a file made while rmtree ran)
                shutil.rmtree(state, ignore_errors=True)
                if not state.exists():
                    break
            removed.append(called)
        return original(called)

    sandbox.faults.take = take  # type: ignore[method-assign]
    try:
        yield removed
    finally:
        del sandbox.faults.take


def expire_people(state: Path) -> None:
    """Make the kept people (who can be pinged, with their availability) older than PEOPLE_MINUTES."""
    with sqlite3.connect(state / "cache.sqlite") as conn:
        (text,) = conn.execute("SELECT value FROM meta WHERE key = ?", (LOOKUPS_KEY,)).fetchone()
        data = json.loads(text)
        data["entries"]["people"][0] -= PEOPLE_MINUTES * 60 + 1
        conn.execute("UPDATE meta SET value = ? WHERE key = ?", (json.dumps(data), LOOKUPS_KEY))
    conn.close()


@pytest.mark.slow
# during the sync / while the job asks who can be pinged (kept PEOPLE_MINUTES: expired here, as after a
# quiet quarter of an hour; the other fixed lookups are kept a day)
@pytest.mark.parametrize("method", ["maniphest.search", "user.search"])
@pytest.mark.parametrize("args", [("check", "--apply"), ("serve", "--once", "checks")])
def test_state_dir_removed_mid_run(sandbox, tmp_path, method, args):
    config = seeded(sandbox, tmp_path)
    state = tmp_path / "state"
    expire_people(state)
    with remove_on(sandbox, method, state) as removed:
        result = cli(config, *args)
    assert removed == [method]
    assert_one_line(result, str(state), "restore", "backup")
    assert not state.exists(), sorted(p.name for p in state.iterdir())  # never silently recreated empty (that would re-fire everything)


# -- a ledger with wrong types ---------------------------------------------------------------------


def _edit_ledger(path: Path, **fields) -> str:
    data = json.loads(path.read_text())
    doc_id = sorted(data["records"], key=int)[0]
    data["records"][doc_id].update(fields)
    path.write_text(json.dumps(data))
    return doc_id


@pytest.mark.parametrize("fields", [{"created_at": 5}, {"episode": "two"}, {"task_id": "T12"},
                                    {"outcomes": {"a": 1}}, {"last_seen_at": "yesterday"}])
def test_ledger_record_with_wrong_types(sandbox, tmp_path, fields):
    config = seeded(sandbox, tmp_path)
    state = tmp_path / "state"
    doc_id = _edit_ledger(state / "ledger.json", **fields)
    before = state_files(state)
    for args in (("check", "--apply"), ("check",), ("ledger",)):
        result = cli(config, *args)
        line = assert_one_line(result, "ledger.json", f"record {doc_id}", f"'{next(iter(fields))}'")
        assert f"cp {state / 'ledger.json.bak'}" in line  # the backup is good: restoring it is the advice
    assert state_files(state) == before


def test_ledger_and_backup_both_bad_do_not_advise_the_backup(sandbox, tmp_path):
    config = seeded(sandbox, tmp_path)
    state = tmp_path / "state"
    _edit_ledger(state / "ledger.json", created_at=5)
    (state / "ledger.json.bak").write_text('{"records": {"1": ')  # truncated
    line = assert_one_line(cli(config, "check", "--apply"), "ledger.json")
    assert "cp " not in line and "do not restore it" in line and "start an empty ledger" in line
    shutil.copy(state / "ledger.json", state / "ledger.json.bak")  # the same bad record in both
    line = assert_one_line(cli(config, "check", "--apply"), "ledger.json", "created_at")
    assert "cp " not in line and "is bad too" in line


# -- a damaged cache --------------------------------------------------------------------------------


def findings(config: Path) -> int:
    result = cli(config, "check", "--format", "json")
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr
    return len(json.loads(result.stdout)["findings"])


def test_a_cache_that_lost_rows_is_rebuilt_with_a_warning(sandbox, tmp_path):
    config = seeded(sandbox, tmp_path)
    expected = findings(config)
    assert expected > 5
    with sqlite3.connect(tmp_path / "state" / "cache.sqlite") as conn:  # rows lost, pages fine
        conn.execute("DELETE FROM tasks WHERE id % 3 = 0")
    result = cli(config, "check", "--format", "json")
    assert "cache" in result.stderr and "damaged" in result.stderr and "rebuilding" in result.stderr
    assert len(json.loads(result.stdout)["findings"]) == expected  # not silently fewer
    assert findings(config) == expected


def test_a_cache_with_damaged_pages_is_moved_aside_and_rebuilt(sandbox, tmp_path):
    config = seeded(sandbox, tmp_path)
    expected = findings(config)
    path = tmp_path / "state" / "cache.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size
    with open(path, "r+b") as fh:  # garbage over pages in the middle (not the header)
        for offset in range(2 * 4096, size - 4096, 3 * 4096):
            fh.seek(offset)
            fh.write(os.urandom(4096))
    result = cli(config, "check", "--format", "json")
    assert "Traceback" not in result.stderr, result.stderr
    assert "damaged" in result.stderr and "rebuilding" in result.stderr
    assert len(json.loads(result.stdout)["findings"]) == expected
    assert [p.name for p in path.parent.iterdir() if ".corrupt-" in p.name]  # kept for a post-mortem


# -- permissions -------------------------------------------------------------------------------------


def modes(state: Path) -> dict[str, str]:
    return {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in [state, *state.iterdir()]}


def test_state_dir_is_0700_and_its_files_0600(sandbox, tmp_path):
    os.umask(0o022)  # the usual umask: without care, 0755 and 0644
    config = seeded(sandbox, tmp_path)
    state = tmp_path / "state"
    cli(config, "metrics")
    got = modes(state)
    assert got.pop("state") == "0o700"
    assert {"ledger.json", "ledger.json.bak", "cache.sqlite", "clinicbot.lock"} <= set(got)
    assert set(got.values()) == {"0o600"}, got


def test_an_existing_wide_state_dir_is_tightened_with_a_warning(sandbox, tmp_path):
    config = seeded(sandbox, tmp_path)
    state = tmp_path / "state"
    os.chmod(state, 0o755)
    for p in state.iterdir():
        os.chmod(p, 0o644)
    result = cli(config, "check")
    assert result.returncode in (0, 1)
    assert "tightened" in result.stderr and "cache.sqlite 644->600" in result.stderr
    got = modes(state)
    assert got.pop("state") == "0o700" and set(got.values()) == {"0o600"}, got


def test_doctor_warns_about_a_token_file_others_can_read(sandbox, tmp_path):
    config = write_sandbox_config(tmp_path / "clinicbot.yaml", sandbox.url, sandbox.token)
    token = tmp_path / "clinicbot.token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    quiet = cli(config, "doctor")
    assert "token file" in quiet.stdout and "private" in quiet.stdout and "readable by" not in quiet.stdout
    os.chmod(token, 0o644)
    loud = cli(config, "doctor")
    assert f"warn  token file {token} is readable by group and others" in loud.stdout
    assert f"chmod 600 {token}" in loud.stdout
    assert sandbox.token not in loud.stdout + loud.stderr


def test_sandbox_command_prints_the_config_path_not_the_token(tmp_path):
    token = "api-" + "q" * 28
    proc = subprocess.Popen([sys.executable, "-m", "clinicbot.cli", "--now", NOW.isoformat(), "sandbox",
                             "--size", "5", "--token", token, "--config-out", str(tmp_path / "sb.yaml")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"})
    try:
        lines = []
        while proc.stdout is not None:
            line = proc.stdout.readline()
            if not line or "Ctrl-C" in line:
                break
            lines.append(line)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    text = "".join(lines) + out + err
    assert token not in text
    assert str(tmp_path / "sb.yaml") in text and str(tmp_path / "sb.token") in text
    assert (tmp_path / "sb.token").read_text().strip() == token
    assert stat.S_IMODE((tmp_path / "sb.token").stat().st_mode) == 0o600


@pytest.mark.parametrize("code", [10, 14, 1034])  # SQLITE_IOERR, SQLITE_CANTOPEN, SQLITE_IOERR_FSYNC
def test_an_sqlite_error_after_the_state_dir_was_removed_advises_the_backup(tmp_path, code):
    """A run whose state directory is removed while another thread writes the cache gets a plain I/O
    error from SQLite: the advice is to restore the directory, never to just run again."""
    from clinicbot.state.cache import cache_error

    exc = sqlite3.OperationalError("disk I/O error")
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    gone = cache_error(exc, tmp_path / "gone" / "cache.sqlite")
    assert "restore it from your backup" in str(gone) and "run again" not in str(gone)
    (tmp_path / "here").mkdir()
    present = cache_error(exc, tmp_path / "here" / "cache.sqlite")
    assert "restore" not in str(present)
