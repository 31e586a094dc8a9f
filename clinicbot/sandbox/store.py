"""The sandbox's in-memory Phabricator: users, projects, columns, tasks, transactions, wiki.

Everything is keyed the way the real server keys it (ids and PHIDs), and every stored
value is the *raw* value the real server would keep (priorities as ints, points as floats,
transactions with their internal type such as ``core:comment`` or ``reassign``). The
Conduit layer (``methods.py``) renders these into the exact shapes of the recordings, so
one stored transaction can come back both as ``transaction.search`` and as the legacy
``maniphest.gettasktransactions`` form.

Transactions are immutable ``Xaction`` named tuples: a scenario and any number of stores
built from it share them, which keeps a 100,000-task scenario affordable in memory.
"""

from __future__ import annotations

import binascii
import bisect
import hashlib
import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit

# ---------------------------------------------------------------------------------------
# Server configuration (the recorded server: Wikimedia-like statuses, stock priorities)

# value, name, short name, color, keywords (the first keyword is the one error messages list)
PRIORITIES: list[tuple[int, str, str, str, list[str]]] = [
    (100, "Unbreak Now!", "Unbreak!", "pink", ["unbreak"]),
    (90, "Needs Triage", "Triage", "violet", ["triage"]),
    (80, "High", "High", "red", ["high"]),
    (50, "Normal", "Normal", "orange", ["normal"]),
    (25, "Low", "Low", "yellow", ["low"]),
    (0, "Wishlist", "Wish", "sky", ["wish", "wishlist"]),
]
PRIORITY_BY_VALUE = {p[0]: p for p in PRIORITIES}
PRIORITY_BY_KEYWORD = {kw: p[0] for p in PRIORITIES for kw in p[4]}
DEFAULT_PRIORITY = 90

# value, name, closed, special
STATUSES: list[tuple[str, str, bool, str | None]] = [
    ("open", "Open", False, "default"),
    ("stalled", "Stalled", False, None),
    ("resolved", "Resolved", True, "closed"),
    ("declined", "Declined", True, None),
    ("invalid", "Invalid", True, None),
    ("duplicate", "Duplicate", True, "duplicate"),
]
STATUS_BY_VALUE = {s[0]: s for s in STATUSES}
OPEN_STATUSES = {s[0] for s in STATUSES if not s[2]}
# Closing an unowned task with these assigns the closer (T3 declined -> owner carol);
# invalid/duplicate have "claim: false" on the recorded server.
CLAIMING_STATUSES = {"resolved", "declined"}

# Edge types as the legacy API reports them in meta["edge:type"].
EDGE_DEPENDS_ON = 3  # on the parent: "depends on" the subtask -> task.subtask
EDGE_DEPENDED_ON_BY = 4  # on the subtask: "depended on by" the parent -> task.parent
EDGE_PROJECT = 41
EDGE_MENTIONED_IN = 51  # on the task that was referenced
EDGE_MENTIONS = 52  # on the task whose comment referenced another

# Real PHIDs use [a-z2-7]; fold base64's alphabet onto it (C-speed, unlike base64.b32encode).
_PHID_CHARS = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/",
                              b"abcdefghijklmnopqrstuvwxyz234567234567")


def phid_chars(raw: bytes, n: int) -> str:
    return binascii.b2a_base64(raw, newline=False).translate(_PHID_CHARS)[:n].decode("ascii")


def derived_phid(salt: str, kind: str, number: int, length: int) -> str:
    """A stable PHID for object ``number`` of ``kind`` (transactions don't store theirs)."""
    digest = hashlib.blake2b(f"{salt}:{kind}:{number}".encode(), digest_size=15).digest()
    return f"PHID-{kind}-{phid_chars(digest, length)}"


def is_open(status: str) -> bool:
    # An unconfigured status (e.g. "wontfix" accepted by maniphest.edit) counts as closed.
    return status in OPEN_STATUSES


def _xaction_id(x: "Xaction") -> int:
    return x.id


class ConduitFault(Exception):
    """A Conduit error answer: HTTP 200 with ``error_code``/``error_info``."""

    def __init__(self, code: str, info: str):
        super().__init__(f"{code}: {info}")
        self.code = code
        self.info = info


def validation_error(*messages: str) -> ConduitFault:
    return ConduitFault("ERR-CONDUIT-CORE", "Validation errors:\n" + "".join(f"  - {m}\n" for m in messages)[:-1])


# ---------------------------------------------------------------------------------------
# Model


class Comment(NamedTuple):
    id: int
    phid: str
    text: str


class Xaction(NamedTuple):
    """One stored transaction, in the server's internal vocabulary.

    ``type`` is the legacy/internal type: ``core:create``, ``title``, ``description``,
    ``core:comment``, ``status``, ``priority``, ``reassign``, ``points``, ``core:columns``,
    ``core:subscribers``, ``core:edge`` (``meta['edge:type']`` says which), ``parent``,
    ``unblock``, or ``opaque`` for project/column/wiki transactions that transaction.search
    reports with ``type: null``.
    """

    id: int
    phid: str  # "" = derived from the id (see Store.xaction_phid); saves memory on big scenarios
    object: str
    type: str
    author: str
    date: int
    group: str
    old: Any = None
    new: Any = None
    meta: dict[str, Any] | None = None
    comment: Comment | None = None


@dataclass(slots=True)
class User:
    id: int
    phid: str
    username: str
    real_name: str
    email: str = ""
    admin: bool = False
    bot: bool = False
    disabled: bool = False
    date_created: int = 0
    availability: str = "available"  # available | busy | away
    away_until: int | None = None

    def roles(self) -> list[str]:
        # Same order as the real server (admin before verified, see user.search--all).
        roles = []
        if self.disabled:
            roles.append("disabled")
        if self.bot:
            roles.append("bot")
        if self.admin:
            roles.append("admin")
        roles += ["verified", "approved"]
        if not self.disabled:
            roles.append("activated")
        return roles

    def whoami_roles(self) -> list[str]:
        """Roles as user.whoami names them: a bot is an "agent" there (user.whoami--as-clinicbot.json)."""
        return ["agent" if role == "bot" else role for role in self.roles()]


@dataclass(slots=True)
class Project:
    id: int
    phid: str
    name: str
    slug: str | None  # primary hashtag, None for milestones
    aliases: list[str] = field(default_factory=list)
    icon: str = "project"
    color: str = "blue"
    description: str | None = None
    parent: str | None = None
    milestone: int | None = None
    members: list[str] = field(default_factory=list)
    watchers: list[str] = field(default_factory=list)
    date_created: int = 0
    date_modified: int = 0


@dataclass(slots=True)
class Column:
    id: int
    phid: str
    project: str
    name: str
    sequence: int
    hidden: bool = False
    default: bool = False
    proxy: str | None = None
    date_created: int = 0
    date_modified: int = 0


@dataclass(slots=True)
class Task:
    id: int
    phid: str
    title: str
    author: str
    description: str = ""
    owner: str | None = None
    status: str = "open"
    priority: int = DEFAULT_PRIORITY
    points: float | None = None
    date_created: int = 0
    date_modified: int = 0
    date_closed: int | None = None
    closer: str | None = None
    # Stored in the order they were added; the API lists them newest first.
    projects: list[str] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)  # board (project) PHID -> column PHID
    subscribers: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    subtasks: list[str] = field(default_factory=list)
    mentions: list[str] = field(default_factory=list)  # task PHIDs this one mentions (edge "mention")
    mentioned_in: list[str] = field(default_factory=list)  # task PHIDs that mention this one ("mentioned-in")
    xactions: list[Xaction] = field(default_factory=list)


@dataclass(slots=True)
class Version:
    version: int
    title: str
    content: str
    description: str
    author: str
    date: int
    content_id: int
    content_phid: str


@dataclass(slots=True)
class Document:
    id: int
    phid: str
    slug: str
    date_created: int
    versions: list[Version] = field(default_factory=list)
    mentions: list[str] = field(default_factory=list)  # task PHIDs the content mentions (edge "mention")

    @property
    def latest(self) -> Version:
        return self.versions[-1]


def normalize_slug(slug: str) -> str:
    """Phriction slug normalisation ('Core Platform Team/Runbooks' -> 'core_platform_team/runbooks/')."""
    slug = re.sub(r"/+", "/", slug.strip()).strip("/").lower()
    slug = re.sub(r"[\x00-\x20#%&+=?<>\"'\\\s]+", "_", slug)
    slug = re.sub(r"_+", "_", slug)
    parts = []
    for part in slug.split("/"):
        if not part:
            continue
        if part != "_":
            part = part.strip("_") or "_"
        parts.append({".": "dot", "..": "dotdot"}.get(part, part))
    slug = "/".join(p for p in parts if p)
    return slug + "/" if slug else "/"


def normalize_project_slug(slug: str) -> str:
    """Project hashtags: '#Core-Platform Team' -> 'core_platform_team' (hyphens and spaces fold to '_')."""
    slug = slug.strip().lstrip("#").lower()
    slug = re.sub(r"[\s\-]+", "_", slug)
    return re.sub(r"_+", "_", slug).strip("_")


def slug_ancestors(slug: str) -> list[str]:
    """'a/b/c/' -> ['/', 'a/', 'a/b/'] (the root has none)."""
    if slug == "/":
        return []
    parts = slug.strip("/").split("/")
    return ["/"] + ["/".join(parts[:i]) + "/" for i in range(1, len(parts))]


# ---------------------------------------------------------------------------------------
# Store


class Store:
    """The in-memory server. All access from the HTTP layer happens under ``lock``."""

    def __init__(self, salt: str = "sandbox", now: int = 0, phid_salt: str | None = None):
        self.lock = threading.RLock()
        self.features: dict[str, bool] = {"gettasktransactions": True, "structured_column_transactions": True}
        self.base_uri = "http://127.0.0.1/"
        self.now = now  # the scenario's "now" (epoch); new edits use the sandbox clock instead
        self.salt = salt
        self.phid_salt = salt if phid_salt is None else phid_salt
        self.rng = random.Random(salt)
        self._boards: dict[str, Column | None] = {}  # project PHID -> default column (None: no board)
        self.users: dict[str, User] = {}
        self.users_by_name: dict[str, User] = {}
        self.projects: dict[str, Project] = {}
        self.columns: dict[str, Column] = {}
        self.tasks: dict[int, Task] = {}
        self.tasks_by_phid: dict[str, Task] = {}
        self.documents: dict[str, Document] = {}  # slug -> document
        self.documents_by_phid: dict[str, Document] = {}
        # Every transaction of every object, ascending id (new ones are appended).
        self.xactions: list[Xaction] = []
        # Transactions of non-task objects (projects, columns, wiki documents).
        self.object_xactions: dict[str, list[Xaction]] = {}
        self.next_id: dict[str, int] = {k: 1 for k in ("user", "project", "column", "task", "xaction", "comment",
                                                         "document", "content")}
        # When (date, sequence) each edge made by an edit was written: edge.search lists newest first.
        self.edge_log: dict[tuple[str, int, str], tuple[int, int]] = {}
        # Bumped on every change so cached search results can tell they are stale.
        self.version = 0
        self.search_cache: dict[Any, Any] = {}
        self.search_version = -1

    # -- identifiers -----------------------------------------------------------------

    def _random(self, n: int) -> str:
        return phid_chars(self.rng.randbytes((n * 3 + 3) // 4), n)

    def new_phid(self, kind: str) -> str:
        if kind.startswith("XACT-"):
            return f"PHID-{kind}-{self._random(15)}"
        return f"PHID-{kind}-{self._random(20)}"

    def new_group(self) -> str:
        return self._random(32)

    def xaction_phid(self, x: Xaction) -> str:
        return x.phid or derived_phid(self.phid_salt, "XACT-" + x.object[5:9], x.id, 15)

    def take_id(self, kind: str) -> int:
        value = self.next_id[kind]
        self.next_id[kind] = value + 1
        return value

    def _bump(self, kind: str, value: int) -> None:
        if value >= self.next_id[kind]:
            self.next_id[kind] = value + 1

    # -- adding objects ---------------------------------------------------------------

    def add_user(self, username: str, real_name: str | None = None, *, bot: bool = False, admin: bool = False,
                 disabled: bool = False, email: str | None = None, date_created: int | None = None,
                 phid: str | None = None, id: int | None = None) -> User:
        """Add a user (tests use this to create reviewers, bots, disabled accounts…)."""
        with self.lock:
            if username in self.users_by_name:
                raise ValueError(f"user {username!r} already exists")
            uid = id if id is not None else self.take_id("user")
            self._bump("user", uid)
            user = User(id=uid, phid=phid or self.new_phid("USER"), username=username,
                        real_name=real_name if real_name is not None else username.title(),
                        email=email if email is not None else f"{username}@example.com", admin=admin, bot=bot,
                        disabled=disabled, date_created=date_created if date_created is not None else self.now)
            self.users[user.phid] = user
            self.users_by_name[username] = user
            self.version += 1
            return user

    def set_availability(self, username: str, value: str, until: int | float | None = None) -> None:
        """Mark a user available / busy / away (until an epoch), as Calendar would."""
        if value not in ("available", "busy", "away"):
            raise ValueError(f"availability must be available, busy or away, not {value!r}")
        with self.lock:
            user = self.user(username)
            user.availability = value
            user.away_until = None if value == "available" or until is None else int(until)
            self.version += 1

    def add_project(self, project: Project) -> Project:
        with self.lock:
            self._bump("project", project.id)
            self.projects[project.phid] = project
            self._boards.clear()
            self.version += 1
            return project

    def add_column(self, column: Column) -> Column:
        with self.lock:
            self._bump("column", column.id)
            self.columns[column.phid] = column
            self._boards.clear()
            self.version += 1
            return column

    def add_task(self, task: Task) -> Task:
        """Insert a fully formed task (scenario loading); edits go through the engine instead."""
        self._bump("task", task.id)
        self.tasks[task.id] = task
        self.tasks_by_phid[task.phid] = task
        self.version += 1
        return task

    def add_xaction(self, x: Xaction, task: Task | None = None) -> None:
        """Record a transaction; ``task`` (optional) is the task it belongs to, if known."""
        if x.id >= self.next_id["xaction"]:
            self.next_id["xaction"] = x.id + 1
        if x.comment is not None:
            self._bump("comment", x.comment.id)
        if not self.xactions or x.id > self.xactions[-1].id:
            self.xactions.append(x)
        else:  # out of order (hand-written scenarios, per-application id sequences): keep it sorted
            bisect.insort(self.xactions, x, key=_xaction_id)
        if task is None:
            task = self.tasks_by_phid.get(x.object)
        target = task.xactions if task is not None else self.object_xactions.setdefault(x.object, [])
        if not target or x.id > target[-1].id:
            target.append(x)
        else:
            bisect.insort(target, x, key=_xaction_id)
        self.version += 1

    def add_document(self, doc: Document) -> Document:
        self._bump("document", doc.id)
        for v in doc.versions:
            self._bump("content", v.content_id)
        self.documents[doc.slug] = doc
        self.documents_by_phid[doc.phid] = doc
        self.version += 1
        return doc

    # -- lookups ----------------------------------------------------------------------

    def user(self, name_or_phid: str) -> User:
        user = self.users.get(name_or_phid) or self.users_by_name.get(name_or_phid.lstrip("@"))
        if user is None:
            raise KeyError(f"no user {name_or_phid!r}")
        return user

    def username(self, phid: str | None) -> str:
        user = self.users.get(phid or "")
        return user.username if user else (phid or "")

    def task(self, ref: int | str) -> Task:
        """A task by id, 'T123' or PHID."""
        if isinstance(ref, str):
            if ref.startswith("PHID-"):
                return self.tasks_by_phid[ref]
            ref = int(ref.lstrip("T"))
        return self.tasks[ref]

    def project(self, name_slug_or_phid: str) -> Project:
        if name_slug_or_phid in self.projects:
            return self.projects[name_slug_or_phid]
        found = self.project_by_slug(name_slug_or_phid)
        if found:
            return found
        for p in self.projects.values():
            if p.name == name_slug_or_phid:
                return p
        raise KeyError(f"no project {name_slug_or_phid!r}")

    def project_by_slug(self, slug: str) -> Project | None:
        wanted = normalize_project_slug(slug)
        for p in self.projects.values():
            if p.slug and (p.slug == wanted or wanted in (normalize_project_slug(a) for a in p.aliases)):
                return p
        return None

    def column(self, board: str, name: str) -> Column:
        """A column by board (project name/slug/PHID) and column name."""
        project = self.project(board)
        for c in self.columns.values():
            if c.project == project.phid and c.name == name:
                return c
        raise KeyError(f"no column {name!r} on {project.name}")

    def board_columns(self, project_phid: str) -> list[Column]:
        return sorted((c for c in self.columns.values() if c.project == project_phid), key=lambda c: c.sequence)

    def default_column(self, project_phid: str) -> Column | None:
        """The column new tasks land in; None when the project has no workboard (tags, milestones)."""
        if project_phid not in self._boards:
            project = self.projects.get(project_phid)
            cols = self.board_columns(project_phid) if project and project.milestone is None else []
            self._boards[project_phid] = next((c for c in cols if c.default), cols[0] if cols else None)
        return self._boards[project_phid]

    def has_board(self, project_phid: str) -> bool:
        return self.default_column(project_phid) is not None

    def descendants(self, project_phid: str) -> set[str]:
        """The project and every subproject/milestone below it."""
        found = {project_phid}
        changed = True
        while changed:
            changed = False
            for p in self.projects.values():
                if p.parent in found and p.phid not in found:
                    found.add(p.phid)
                    changed = True
        return found

    def object_name(self, phid: str) -> str:
        if phid in self.users:
            return self.users[phid].username
        if phid in self.projects:
            return self.projects[phid].name
        if phid in self.columns:
            return self.columns[phid].name
        task = self.tasks_by_phid.get(phid)
        if task is not None:
            return f"T{task.id}: {task.title}"
        return phid

    def self_host(self) -> str:
        """The host of this server's own URI: links to it can mention tasks (``http://host/T1``)."""
        return urlsplit(self.base_uri).hostname or ""

    def log_edge(self, source: str, edge_type: int, destination: str, at: int) -> None:
        self.edge_log[(source, edge_type, destination)] = (at, len(self.edge_log))

    def xactions_of(self, phid: str) -> list[Xaction]:
        task = self.tasks_by_phid.get(phid)
        if task is not None:
            return task.xactions
        return self.object_xactions.get(phid, [])

    # -- helpers for tests ------------------------------------------------------------

    def comments_on(self, task: int | str) -> list[tuple[str, str, int]]:
        """(author username, text, epoch) of every comment on a task, oldest first."""
        with self.lock:
            return [(self.username(x.author), x.comment.text, x.date)
                    for x in self.task(task).xactions if x.comment is not None]

    def column_of(self, task: int | str, board: str) -> str | None:
        """Name of the column a task is in on a board (project name/slug/PHID), or None."""
        with self.lock:
            col = self.task(task).columns.get(self.project(board).phid)
            return self.columns[col].name if col else None

    def edit(self, task: int | str | None, actor: str, transactions: list[dict[str, Any]] | list[tuple[str, Any]],
             at: int | float | None = None) -> tuple[Task, list[Xaction]]:
        """Apply a maniphest.edit as ``actor`` (username) at ``at`` (default: the scenario's now).

        ``transactions`` are ``{"type", "value"}`` dicts or ``(type, value)`` pairs; ``task``
        None creates a task. Raises ConduitFault exactly like the Conduit method.
        """
        from clinicbot.sandbox.engine import apply_edit

        txs = [t if isinstance(t, dict) else {"type": t[0], "value": t[1]} for t in transactions]
        with self.lock:
            target = None if task is None else self.task(task)
            return apply_edit(self, target, self.user(actor), txs, int(at if at is not None else self.now))

    # -- phriction -------------------------------------------------------------------

    def phriction_create(self, actor: User, slug: str, title: str, content: str, description: str,
                         at: int) -> Document:
        slug = normalize_slug(slug)
        if slug in self.documents:
            raise ConduitFault("ERR-CONDUIT-CORE", "Document already exists!")
        missing = [a for a in slug_ancestors(slug) if a not in self.documents]
        if missing:
            raise validation_error(*[
                f'Can not create document because the parent document with slug <a href="/phriction/edit/?slug={a}">'
                f"{a}</a> does not exist!" for a in missing],
                "You can not create a document which does not have a parent.")
        doc = Document(id=self.take_id("document"), phid=self.new_phid("WIKI"), slug=slug, date_created=at)
        self.add_document(doc)
        self._new_version(doc, actor, title, content, description, at, changes=2)
        return doc

    def phriction_edit(self, actor: User, slug: str, title: str | None, content: str | None,
                       description: str | None, at: int) -> tuple[Document, bool]:
        """Returns (document, changed). A no-change edit stores nothing."""
        doc = self.documents.get(normalize_slug(slug))
        if doc is None:
            raise ConduitFault("ERR-BAD-DOCUMENT", "No such document exists.")
        latest = doc.latest
        new_title = latest.title if title is None else title
        new_content = latest.content if content is None else content
        changes = (new_title != latest.title) + (new_content != latest.content)
        if not changes:
            return doc, False
        self._new_version(doc, actor, new_title, new_content, description or "", at, changes=changes)
        return doc, True

    def _new_version(self, doc: Document, actor: User, title: str, content: str, description: str, at: int,
                     changes: int) -> None:
        doc.versions.append(Version(version=len(doc.versions) + 1, title=title, content=content,
                                    description=description, author=actor.phid, date=at,
                                    content_id=self.take_id("content"), content_phid=self.new_phid("WRDS")))
        # Phriction transactions are all reported with type null by transaction.search: one per
        # changed field (title, content), and one for new task mentions in the content, which
        # also writes a "mentioned-in" edge on each task (the first recorded report page, which
        # listed T24/T25, got 3 transactions on create; a page without monograms gets 2).
        from clinicbot.sandbox.mentions import find_mentions

        targets = []
        for task_id in find_mentions(content, self.self_host()).tasks:
            task = self.tasks.get(task_id)
            if task is not None and task.phid not in doc.mentions and task not in targets:
                targets.append(task)
        group = self.new_group()
        for _ in range(changes + bool(targets)):
            self.add_xaction(Xaction(self.take_id("xaction"), "", doc.phid, "opaque", actor.phid, at, group))
        for task in targets:
            doc.mentions.append(task.phid)
            task.mentioned_in.append(doc.phid)
            task.date_modified = at
            self.log_edge(doc.phid, EDGE_MENTIONS, task.phid, at)
            self.log_edge(task.phid, EDGE_MENTIONED_IN, doc.phid, at)
            self.add_xaction(Xaction(self.take_id("xaction"), "", task.phid, "core:edge", actor.phid, at, group,
                                     [], [doc.phid], {"edge:type": EDGE_MENTIONED_IN}), task)
