"""`clinicbot doctor`: is everything in place to run for real?

Fatal problems (no config, bad token, server unreachable, unknown board or column) raise
the usual ClinicbotError and end the command with its exit code; softer problems (a rotation
member unknown on the server, an unwritable state directory) are collected, printed, and
make the exit code 1.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from clinicbot.config import Config
from clinicbot.jobs.context import App
from clinicbot.phab.snapshot import whoami
from clinicbot.phab.boards import load_structure
from clinicbot.phab.conduit import OPTIONAL_METHODS
from clinicbot.errors import EXIT_FAILURE, EXIT_OK, ClinicbotError


@dataclass
class DoctorReport:
    lines: list[str] = field(default_factory=list)
    problems: int = 0

    def ok_line(self, text: str) -> None:
        self.lines.append(f"ok    {text}")

    def info(self, text: str) -> None:
        self.lines.append(f"      {text}")

    def warn(self, text: str) -> None:
        self.lines.append(f"warn  {text}")

    def problem(self, text: str) -> None:
        self.problems += 1
        self.lines.append(f"FAIL  {text}")

    @property
    def ok(self) -> bool:
        return self.problems == 0

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.ok else EXIT_FAILURE


def validate_sections(config: Config) -> None:
    """Every structured config section, through the validator its owner registered (load_config
    already ran them; this is for a Config built another way, e.g. ``parse_config``)."""
    from clinicbot.config import validate_sections as validate

    validate(config)


def run_doctor(app: App) -> DoctorReport:
    report = DoctorReport()
    config = app.config()
    validate_sections(config)
    report.ok_line(f"config {config.path} (every section valid)")
    _check_token_file(app, report)
    client = app.client()
    me = whoami(client)  # shape-checked: nulls are one clear error, not "None"
    report.ok_line(f"connected to {config.url} as {me.get('userName')} ({me.get('phid')})")
    boards, statuses, priorities = load_structure(client, config)
    report.ok_line("the server has every Conduit method clinicbot needs")
    for method in OPTIONAL_METHODS:
        if client.has_method(method):
            report.info(f"optional method {method}: available")
        else:
            report.warn(f"optional method {method}: missing (clinicbot falls back or disables that feature)")
    report.ok_line("statuses: " + ", ".join(f"{s.value}{' (closed)' if s.closed else ''}" for s in statuses))
    report.ok_line("priorities: " + ", ".join(f"{p.name}={p.value}" for p in priorities))
    if not any(p.keyword == "unbreak" for p in priorities):
        report.warn("no priority with the keyword 'unbreak': the unbreak-now check will find nothing")
    for board in boards:
        report.ok_line(f"board {board.name} ({board.phid})")
        for col in board.columns:
            role = f" -> {col.role}" if col.role else ""
            hidden = " (hidden)" if col.hidden else ""
            report.info(f"  {col.sequence}: {col.name}{hidden}{role}")
    _check_state_dir(config.state_dir, report)
    _check_rotation(app, client, report)
    return report


def _check_state_dir(path: Path, report: DoctorReport) -> None:
    existed = path.is_dir()
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not existed:
            os.chmod(path, 0o700)
    except OSError as exc:
        report.problem(f"state_dir {path}: cannot create ({exc.strerror})")
        return
    if os.access(path, os.W_OK):
        report.ok_line(f"state_dir {path} is writable")
    else:
        report.problem(f"state_dir {path} is not writable by this user")
    wide = [p for p in [path, *_files(path)] if _mode(p) & 0o077]
    if wide:
        report.warn(f"state_dir {path}: readable by others ({', '.join(f'{p.name} {_mode(p):o}' for p in wide[:4])}"
                    f"{', ...' if len(wide) > 4 else ''}); it holds task data from private projects: the next run "
                    "that takes the state lock tightens it to 0700/0600 (or chmod it yourself)")


def _files(directory: Path) -> list[Path]:
    try:
        return [p for p in directory.iterdir() if p.is_file() and not p.is_symlink()]
    except OSError:
        return []


def _mode(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0


def token_source(app: App) -> Path | None:
    """The file the token is read from (token_file or ~/.arcrc), None when it comes from the environment."""
    config = app.config()
    if app.env.get(config.get("phabricator.token_env")):
        return None
    token_file = config.resolve_path(config.get("phabricator.token_file"))
    if token_file is not None:
        return token_file
    return Path(os.path.expanduser(config.get("phabricator.arcrc")))


def _check_token_file(app: App, report: DoctorReport) -> None:
    path = token_source(app)
    if path is None or not path.exists():
        return
    mode = _mode(path)
    if mode & 0o077:
        report.warn(f"token file {path} is readable by {'group and others' if mode & 0o007 else 'its group'} "
                    f"(mode {mode:o}); anyone who can read it can act as the bot: chmod 600 {path}")
    else:
        report.ok_line(f"token file {path} is private (mode {mode:o})")


def _check_rotation(app: App, client, report: DoctorReport) -> None:
    config = app.config()
    path = config.rotation_path
    if not path.exists():
        report.warn(f"rotation {path}: not found; nobody is on duty, pings go to nobody")
        return
    try:
        from clinicbot import rotation as rotation_mod
    except ImportError:  # pragma: no cover - rotation support always ships
        return
    try:
        rot = rotation_mod.load_rotation(path)
        warnings = rotation_mod.validate(rot, app.now())
    except ClinicbotError as exc:
        report.problem(str(exc))
        return
    report.ok_line(f"rotation {path}")
    for w in warnings:
        report.warn(str(w))
    for line in rotation_mod.check_members_on_server(rot, client):
        # Soft findings (members marked away) come prefixed "warning: "; a member missing
        # or disabled on the server is a real problem: nobody could ping them.
        if line.startswith("warning: "):
            report.warn(line[len("warning: "):])
        else:
            report.problem(line)
