"""`clinicbot demo` and `clinicbot sandbox`: try clinicbot without owning a Phabricator."""

from __future__ import annotations

import os
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from clinicbot.jobs.context import App
from clinicbot.config import load_config, write_config

# The generated sandbox team's boards and the role of each column.
SANDBOX_BOARDS: list[dict[str, Any]] = [
    {
        "project": "Core Platform Team",
        "columns": {
            "inbox": "Inbox",
            "triage_meeting_inbox": "Triage Meeting Inbox",
            "ready": "Ready",
            "doing": "Doing",
            "blocked": "Blocked Externally",
            "waiting_for_review": "Waiting for Review",
            "waiting_for_deployment": "Waiting for Deployment",
            "done": "Done",
        },
    },
    {
        "project": "Clinic Duty Team",
        "columns": {
            "inbox": "Inbox",
            "ready": "Ready",
            "doing": "Doing",
            "waiting_for_review": "Waiting for Review",
            "done": "Done",
        },
    },
    {
        "project": "CPT External Code Reviews",
        "columns": {
            "review_needed": "Review Needed",
            "review_in_progress": "In Progress",
            "done": "Review Completed",
            "discussing": "Discussing",
        },
    },
]


# What `clinicbot demo` adds to the sandbox config so the digest shows its finding lists
# (reports.digest.lists) on the generated world: the review tasks still on the team's own board are
# to move to the external review board, and tasks without real activity for 90 days (the
# generated history spans about four months; the default is 365 days) are untag candidates.
DEMO_CHECKS: dict[str, Any] = {
    "review-migration": {"from_board": "Core Platform Team", "to_board": "CPT External Code Reviews",
                         "roles": ["waiting_for_review"], "columns": {"Waiting for Review": "Review Needed"}},
    "untag-candidate": {"days": 90},
}


def sandbox_config(url: str, token_file: str, rotation: str | None = None,
                   checks: dict[str, Any] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "phabricator": {"url": url, "token_file": token_file},
        "team": {"name": "Core Platform Team", "ignored_users": ["phab-automation"]},
        "boards": SANDBOX_BOARDS,
        "state_dir": "state",
        "apply": False,
        "max_writes_per_run": 20,
    }
    if rotation:
        data["rotation"] = rotation
    if checks:
        data["checks"] = checks
    return data


def example_rotation_text() -> str | None:
    """The example rotation shipped with the package (matches the sandbox team)."""
    from importlib import resources

    try:
        return resources.files("clinicbot.templates").joinpath("examples/rotation.yaml").read_text()
    except (FileNotFoundError, ModuleNotFoundError):
        return None


def write_sandbox_config(path: Path, url: str, token: str, *, checks: dict[str, Any] | None = None) -> Path:
    """A ready-to-use config for a sandbox; the token goes in a 0600 file beside it, never in the YAML."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    token_path = path.with_name(path.stem + ".token")
    fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    rotation = None
    text = example_rotation_text()
    if text is not None:
        rot_path = path.with_name("rotation.yaml")
        if not rot_path.exists():
            rot_path.write_text(text)
        rotation = rot_path.name
    write_config(path, sandbox_config(url, token_path.name, rotation, checks))
    return path


class RunningSandbox:
    def __init__(self, sb: Any):
        self._sb = sb
        self.url: str = sb.url
        self.token: str = sb.token

    def wait(self) -> None:
        while True:
            time.sleep(3600)

    def stop(self) -> None:
        self._sb.stop()

    @property
    def sandbox(self) -> Any:
        return self._sb


def start_sandbox(now: datetime, *, port: int = 0, token: str | None = None, scenario: Path | None = None,
                  size: int = 300, latency: float = 0.0) -> RunningSandbox:
    from clinicbot.sandbox import Sandbox, generate_scenario, load_scenario

    sc = load_scenario(scenario) if scenario else generate_scenario(now, size=size)
    kwargs: dict[str, Any] = {"scenario": sc, "port": port, "latency": latency}
    if token:
        kwargs["token"] = token
    sb = Sandbox(**kwargs)
    sb.start()
    return RunningSandbox(sb)


def run_demo(app: App, *, size: int = 300, keep: Path | None = None) -> int:
    """Serve a sandbox, configure clinicbot against it, run the main job. Returns an exit code."""
    from clinicbot.jobs.reports import show_digest

    now = app.now()
    running = start_sandbox(now, size=size)
    tmp = None
    try:
        if keep is None:
            tmp = tempfile.TemporaryDirectory(prefix="clinicbot-demo-")
            workdir = Path(tmp.name)
        else:
            workdir = keep
        config_path = write_sandbox_config(workdir / "clinicbot.yaml", running.url, running.token, checks=DEMO_CHECKS)
        app.config_path = config_path
        app.set_config(load_config(config_path))
        app.console.print(f"clinicbot demo: sandbox Phabricator at {running.url} "
                          f"(config {config_path}); dry run, nothing is posted", markup=False)
        return show_digest(app)
    finally:
        app.close()
        running.stop()
        if tmp is not None:
            tmp.cleanup()
