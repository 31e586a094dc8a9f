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
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
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


@dataclass
class Rendered:
    """What the real renderer (``remarkup.process``) made live in a piece of Remarkup."""
    people: list[str] = field(default_factory=list)          # person tags: usernames from /p/<name>/
    object_tags: list[str] = field(default_factory=list)     # phui object tags (T1, {T1}): their hrefs
    external_links: list[str] = field(default_factory=list)  # remarkup-link-ext hrefs
    plain_links: list[str] = field(default_factory=list)     # other <a href> (e.g. [[ /T5 | T5 ]])
    embeds: int = 0                                          # {F1} file embeds
    bold: list[str] = field(default_factory=list)            # text of every <strong>/<b>
    italic: list[str] = field(default_factory=list)          # text of every <em>/<i>
    monospace: list[str] = field(default_factory=list)       # text of every inline monospace span
    live_text: str = ""                                      # text outside monospace and literals

    def problems(self, *, people: set[str] = frozenset(), links: set[str] = frozenset(),
                 inert: tuple[str, ...] = ()) -> list[str]:
        """Everything live that should not be: mentions of anyone but ``people``, object tags, external
        links, embeds, links other than ``links`` (hrefs), bold/italic containing one of the ``inert``
        snippets (words only task text contains), a stray ``%%%`` and control characters."""
        found = [f"mention of @{p}" for p in self.people if p not in people]
        found += [f"object tag {h}" for h in self.object_tags]
        found += [f"external link {h}" for h in self.external_links]
        found += [f"link {h}" for h in self.plain_links if h not in links]
        found += ["file embed"] * self.embeds
        found += [f"bold {b!r}" for b in self.bold if any(x in b for x in inert)]
        found += [f"italic {i!r}" for i in self.italic if any(x in i for x in inert)]
        if "%%%" in self.live_text:
            found.append("stray %%%")
        found += [f"control character U+{ord(c):04X}" for c in self.live_text + "".join(self.monospace)
                  if re.match("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", c)]
        return found


class _RenderedParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out = Rendered()
        self._stack: list[tuple[str, str]] = []  # (tag, kind)
        self._texts: dict[int, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        cls, href = a.get("class", ""), a.get("href", "")
        kind = ""
        if tag == "a":
            if "phui-tag-type-person" in cls:
                self.out.people.append(href.strip("/").removeprefix("p/"))
            elif "phui-tag-type-object" in cls:
                self.out.object_tags.append(href)
            elif "remarkup-link-ext" in cls:
                self.out.external_links.append(href)
            elif "phabricator-remarkup-embed" in cls:
                pass
            elif href:
                self.out.plain_links.append(href)
        if "phabricator-remarkup-embed" in cls and tag == "div":
            self.out.embeds += 1
        if tag in ("strong", "b"):
            kind = "bold"
        elif tag in ("em", "i"):
            kind = "italic"
        elif "remarkup-monospaced" in cls:
            kind = "mono"
        elif "remarkup-literal" in cls or (tag == "pre" and "remarkup-code" in cls):
            kind = "literal"
        if tag in ("br", "img", "hr", "input", "meta", "link"):
            return
        self._stack.append((tag, kind))
        self._texts[len(self._stack)] = []

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            open_tag, kind = self._stack.pop()
            text = "".join(self._texts.pop(len(self._stack) + 1, []))
            if kind == "bold":
                self.out.bold.append(text)
            elif kind == "italic":
                self.out.italic.append(text)
            elif kind == "mono":
                self.out.monospace.append(text)
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for depth in range(1, len(self._stack) + 1):
            self._texts.setdefault(depth, []).append(data)
        if not any(kind in ("mono", "literal") for _, kind in self._stack):
            self.out.live_text += data


def inspect_rendered(html_text: str) -> Rendered:
    """Parse remarkup.process HTML into what is live in it (see ``Rendered.problems``)."""
    parser = _RenderedParser()
    parser.feed(html_text)
    parser.close()
    return parser.out


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
            self._scratch = self.new_board("Scratch")
        return self._scratch

    def new_board(self, label: str = "Scratch", columns: list[str] | None = None) -> ScratchBoard:
        """A new project with a workboard of its own (the CPT column names, or ``columns``), for a test
        that needs a board no other test writes to: ``label`` plus a unique suffix names it."""
        name = f"{label} {time.strftime('%Y%m%d-%H%M%S')} {uuid.uuid4().hex[:6]}"
        res = self.call("project.edit", transactions=[
            {"type": "name", "value": name},
            {"type": "members.add", "value": [self.user_phid(u) for u in self.manifest["team"]]},
        ])
        phid = res["object"]["phid"]
        columns = self._php("columns", {"actor": "admin", "projects": [
            {"phid": phid, "columns": columns or self.manifest["projects"][seed.CPT]["column_order"]}]})[phid]
        return ScratchBoard(name=name, phid=phid, columns=columns)

    def scratch_task(self, title: str, *, column: str = "Inbox", priority: str = "triage",
                     author: str = "mallory", owner: str | None = None, status: str = "open",
                     age_days: float | None = None, events: list[tuple] | None = None,
                     board: ScratchBoard | None = None) -> dict[str, Any]:
        """A task on the scratch board (or on ``board``, from ``new_board``); with ``age_days`` it (and
        its ``events``, as in seed.TASKS: (days ago, actor, comment|move|status, value)) is backdated
        relative to ``self.now``."""
        board = board or self.scratch_board()
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

    def scratch_board_config(self, board: ScratchBoard | None = None) -> list[dict[str, Any]]:
        """The ``boards`` section for the scratch board (or ``board``; roles as on the seeded CPT board)."""
        board = board or self.scratch_board()
        return [{"project": board.name, "columns": dict(BOARD_ROLES[seed.CPT])}]

    # ------------------------------------------------------------------ what a test reads back
    def tracking_task(self, title: str, author: str = "admin") -> dict[str, Any]:
        """A task on no board (where a test posts reports): ``{id, monogram, phid}``."""
        res = self.call("maniphest.edit", as_user=author, transactions=[{"type": "title", "value": title}])
        task_id = res["object"]["id"]
        return {"id": task_id, "monogram": f"T{task_id}", "phid": res["object"]["phid"]}

    def search_tasks(self, phids: list[str]) -> dict[str, dict[str, Any]]:
        """maniphest.search by PHID, with subscribers: PHID -> the result row."""
        rows = self.call("maniphest.search", constraints={"phids": list(phids)},
                         attachments={"subscribers": True}, limit=100)["data"]
        return {r["phid"]: r for r in rows}

    def subscribers(self, phids: list[str]) -> dict[str, set[str]]:
        """Usernames subscribed to each task (PHID -> names; other PHIDs as they are)."""
        names = {u["phid"]: name for name, u in self.manifest["users"].items()}
        return {phid: {names.get(p, p) for p in row["attachments"]["subscribers"]["subscriberPHIDs"]}
                for phid, row in self.search_tasks(phids).items()}

    def bot_comment_transactions(self, task: str, since: int = 0) -> list[dict[str, Any]]:
        """The bot's transactions on a task from ``since`` on (any type: comments, edges, files)."""
        bot = self.user_phid("clinicbot")
        return [x for x in self.transactions(task) if x["authorPHID"] == bot and x["dateCreated"] >= since]


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
