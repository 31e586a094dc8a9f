"""What the real-server tests use: the running Phorge, its seed manifest, and clinicbot configs for it.

``PhorgeServer`` wraps the harness's manifest (``tests/phorge/harness.sh start`` writes it): the URL, the
users and their Conduit tokens, the boards, and every seeded task with its column, priority, status,
owner, author and backdated times. Expected numbers are computed here from that manifest, never from
clinicbot's output.

Mutating tests (comments, wiki pages) must not touch the seeded boards, so that running the suite twice
against a reused server still passes: ``PhorgeServer.scratch_board()`` makes a new project with its own
workboard for each test session (columns through ``seed.php``, as Conduit cannot create columns), and
``scratch_task()`` adds tasks to it, backdated like the seed when an age matters.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests
import yaml

from . import seed

REPO = Path(__file__).resolve().parent.parent.parent

# The seeded boards and the role of each column (what a clinicbot config for them says).
BOARD_ROLES: dict[str, dict[str, str]] = {
    seed.CPT: {"inbox": "Inbox", "triage_meeting_inbox": "Triage Meeting Inbox", "ready": "Ready",
               "doing": "Doing", "waiting_for_review": "Waiting for Review", "done": "Done"},
    seed.ER: {"review_needed": "Review Needed", "review_in_progress": "In Progress",
              "done": "Review Completed", "discussing": "Discussing"},
}
SKIP_REASON = ("no real Phorge: run `bash tests/phorge/harness.sh start && eval \"$(bash tests/phorge/harness.sh env)\"` "
               "as root on Debian 12, or `bash tests/phorge/run-tests.sh` (see tests/phorge/README.md)")


class ConduitCallError(Exception):
    def __init__(self, method: str, code: str, info: str) -> None:
        super().__init__(f"{method}: {code}: {info}")
        self.method, self.code, self.info = method, code, info


@dataclass
class ScratchBoard:
    """A workboard of its own for one test session: same column names as the seeded CPT board."""
    name: str
    phid: str
    columns: dict[str, str]  # column name -> PHID
    tasks: list[dict[str, Any]] = field(default_factory=list)


class PhorgeServer:
    def __init__(self, url: str, manifest: dict[str, Any], manifest_path: Path) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.manifest = manifest
        self.manifest_path = manifest_path
        self.home = Path(os.environ.get("CLINICBOT_PHORGE_HOME") or manifest_path.parent)
        self.session = requests.Session()
        self._scratch: ScratchBoard | None = None

    def __repr__(self) -> str:  # never the manifest (it holds the tokens)
        return f"PhorgeServer({self.url!r})"

    # ------------------------------------------------------------------ facts from the manifest
    @property
    def now(self) -> datetime:
        """The reference time of every real-server test: one minute after seeding (ages are relative
        to it, so a reused server gives the same answers days later)."""
        return datetime.fromtimestamp(self.manifest["seeded_at"] + 60, timezone.utc)

    def token(self, user: str) -> str:
        return self.manifest["users"][user]["token"]

    def user_phid(self, user: str) -> str:
        return self.manifest["users"][user]["phid"]

    @property
    def tasks(self) -> list[dict[str, Any]]:
        return self.manifest["tasks"]

    def task(self, key: str) -> dict[str, Any]:
        return next(t for t in self.tasks if t["key"] == key)

    def expected_columns(self, board: str) -> dict[str, dict[str, Any]]:
        """Per column of a seeded board (board order): open tasks and the oldest open one (by creation)."""
        project = self.manifest["projects"][board]
        out: dict[str, dict[str, Any]] = {}
        for column in project["column_order"]:
            open_tasks = [t for t in self.tasks
                          if not t["closed"] and t["boards"].get(board, {}).get("column") == column]
            oldest = min(open_tasks, key=lambda t: (t["created"], t["id"]), default=None)
            out[column] = {
                "phid": project["columns"][column],
                "open_tasks": len(open_tasks),
                "oldest": None if oldest is None else oldest["monogram"],
                "oldest_age_seconds": None if oldest is None else int(self.now.timestamp()) - oldest["created"],
            }
        return out

    # ------------------------------------------------------------------ Conduit, directly
    def call(self, method: str, as_user: str = "admin", **params: Any) -> Any:
        """A plain Conduit call (JSON encoding, like the recordings); raises ConduitCallError."""
        body = dict(params, __conduit__={"token": self.token(as_user)})
        resp = self.session.post(self.url + "api/" + method, timeout=120,
                                 data={"params": json.dumps(body), "output": "json", "__conduit__": "1"})
        resp.raise_for_status()
        answer = resp.json()
        if answer.get("error_code"):
            raise ConduitCallError(method, answer["error_code"], answer.get("error_info") or "")
        return answer["result"]

    def render(self, text: str, context: str = "maniphest") -> str:
        """HTML of Remarkup text, rendered by the real renderer."""
        return self.call("remarkup.process", context=context, contents=[text])[0]["content"]

    def edges(self, source_phids: list[str], types: list[str]) -> list[dict[str, Any]]:
        return self.call("edge.search", sourcePHIDs=source_phids, types=types, limit=100)["data"]

    def transactions(self, task: str) -> list[dict[str, Any]]:
        return self.call("transaction.search", objectIdentifier=task, limit=100)["data"]

    def comments(self, task: str, author: str | None = None, since: int = 0) -> list[str]:
        """Comment texts on a task (oldest first), optionally only by one user and from an epoch on."""
        out = []
        for x in reversed(self.transactions(task)):
            if x["type"] != "comment" or x["dateCreated"] < since:
                continue
            if author is not None and x["authorPHID"] != self.user_phid(author):
                continue
            out.extend(c["content"]["raw"] for c in x["comments"] if not c.get("removed"))
        return out

    # ------------------------------------------------------------------ scratch data for mutating tests
    def scratch_board(self) -> ScratchBoard:
        """This session's own project and workboard (created on first use)."""
        if self._scratch is None:
            name = f"Scratch {time.strftime('%Y%m%d-%H%M%S')} {uuid.uuid4().hex[:6]}"
            res = self.call("project.edit", transactions=[
                {"type": "name", "value": name},
                {"type": "members.add", "value": [self.user_phid(u) for u in self.manifest["team"]]},
            ])
            phid = res["object"]["phid"]
            columns = self._php("columns", {"actor": "admin", "projects": [
                {"phid": phid, "columns": self.manifest["projects"][seed.CPT]["column_order"]}]})[phid]
            self._scratch = ScratchBoard(name=name, phid=phid, columns=columns)
        return self._scratch

    def scratch_task(self, title: str, *, column: str = "Inbox", priority: str = "triage",
                     author: str = "mallory", owner: str | None = None, status: str = "open",
                     age_days: float | None = None, events: list[tuple] | None = None) -> dict[str, Any]:
        """A task on the scratch board; with ``age_days`` it (and its ``events``, as in seed.TASKS:
        (days ago, actor, comment|move|status, value)) is backdated relative to ``self.now``."""
        board = self.scratch_board()
        spec = {"key": f"scratch-{len(board.tasks) + 1}", "title": title, "author": author,
                "cols": {board.name: column}, "priority": priority, "status": status,
                "created": age_days or 0.0, "events": [(d, a, k, (board.name, v) if k == "move" else v)
                                                       for d, a, k, v in (events or [])]}
        if owner:
            spec["owner"] = owner
        projects = {board.name: {"phid": board.phid, "columns": board.columns}}
        tokens = {u: self.token(u) for u in self.manifest["users"]}
        phids = {u: self.user_phid(u) for u in self.manifest["users"]}
        anchor = int(self.now.timestamp()) - 60 if age_days is not None else int(time.time())
        task = seed.seed_task(seed.Conduit(self.url), spec, tokens, phids, projects, anchor)
        if age_days is not None:
            seed.backdate_tasks(self._sql, [task])
        task = {k: v for k, v in task.items() if not k.startswith("_")}
        board.tasks.append(task)
        return task

    def _php(self, mode: str, spec: dict[str, Any]) -> Any:
        root = self.home / "src" / "phorge"
        if not root.is_dir():
            raise RuntimeError(f"no Phorge checkout at {root}: scratch boards need the local harness "
                               "(set CLINICBOT_PHORGE_HOME)")
        return seed.php(root, mode, spec)

    def _sql(self, statement: str) -> str:
        sock = self.home / "run" / "mysqld.sock"
        proc = subprocess.run(["mariadb", "--no-defaults", "-S", str(sock), "-uroot", "-N", "-B", "-e", statement],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"backdating in MariaDB ({sock}) failed: {proc.stderr.strip()[-300:]}")
        return proc.stdout

    # ------------------------------------------------------------------ clinicbot against it
    def write_config(self, directory: Path, *, boards: list[dict[str, Any]] | None = None,
                     on_duty: tuple[str, ...] = ("alice", "bob"), apply: bool = False,
                     extra: dict[str, Any] | None = None) -> Path:
        """clinicbot.yaml + rotation.yaml + the bot's token in a 0600 file, in ``directory``.

        ``boards`` defaults to the two seeded boards; ``on_duty`` are on duty from 30 days before
        ``now`` for a year (a hand-written shift, so tests know who is on duty without clinicbot).
        Each config gets its own ``state_dir`` inside ``directory``.
        """
        directory.mkdir(parents=True, exist_ok=True)
        token_path = directory / "clinicbot.token"
        fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.token("clinicbot") + "\n")
        start = (self.now - timedelta(days=30)).date()
        rotation = {
            "name": "Core Platform Team clinic duty",
            "timezone": "UTC",
            "handoff": "09:00",
            "on_duty": {"min": 2, "max": 3},
            "members": [{"username": u, "name": self.manifest["users"][u]["realname"],
                         "email": f"{u}@example.com"} for u in self.manifest["team"]],
            "shifts": [{"from": start.isoformat(), "to": (start + timedelta(days=365)).isoformat(),
                        "members": list(on_duty)}],
        }
        (directory / "rotation.yaml").write_text(yaml.safe_dump(rotation, sort_keys=False))
        config: dict[str, Any] = {
            "phabricator": {"url": self.url, "token_env": "CLINICBOT_REAL_PHORGE_TOKEN_UNUSED",
                            "token_file": token_path.name, "bot_username": "clinicbot", "timeout": 60},
            "team": {"name": "Core Platform Team", "timezone": "UTC", "members": list(self.manifest["team"])},
            "boards": boards if boards is not None else
            [{"project": name, "columns": dict(roles)} for name, roles in BOARD_ROLES.items()],
            "state_dir": "state",
            "rotation": "rotation.yaml",
            "apply": apply,
            "max_writes_per_run": 20,
        }
        if extra:
            config.update(extra)
        path = directory / "clinicbot.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
        return path

    def scratch_board_config(self) -> list[dict[str, Any]]:
        """The ``boards`` section for the scratch board (roles as on the seeded CPT board)."""
        return [{"project": self.scratch_board().name, "columns": dict(BOARD_ROLES[seed.CPT])}]


def run_clinicbot(config: Path, *args: str, now: datetime | None = None,
                  timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess (``python -m clinicbot.cli``), with a clean environment."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CLINICBOT_") or k.startswith("CLINICBOT_PHORGE_")}
    env["COLUMNS"] = "200"
    cmd = [sys.executable, "-m", "clinicbot.cli", "--config", str(config)]
    if now is not None:
        cmd += ["--now", now.isoformat()]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=config.parent)


def connect() -> tuple[PhorgeServer | None, str]:
    """The configured server, or None and why not."""
    url = os.environ.get("CLINICBOT_PHORGE_URL")
    if not url:
        return None, SKIP_REASON + " [CLINICBOT_PHORGE_URL is not set]"
    home = os.environ.get("CLINICBOT_PHORGE_HOME") or "/tmp/clinicbot-phorge"
    manifest_path = Path(os.environ.get("CLINICBOT_PHORGE_MANIFEST") or Path(home) / "manifest.json")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        return None, f"CLINICBOT_PHORGE_MANIFEST {manifest_path}: cannot read it ({exc}); run tests/phorge/harness.sh start"
    server = PhorgeServer(url, manifest, manifest_path)
    try:
        server.call("conduit.ping")
    except (requests.RequestException, ValueError, ConduitCallError) as exc:
        return None, f"real Phorge at {url} does not answer conduit.ping ({type(exc).__name__}); run tests/phorge/harness.sh start"
    return server, ""
