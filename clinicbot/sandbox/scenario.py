"""Scenarios: the plain data a sandbox starts from (YAML or JSON on disk).

A scenario is a complete server state: users, projects and their columns, tasks with
their *final* state, every transaction that led there, Phriction documents, the moment the
scenario calls "now", and ``facts`` naming notable tasks (so tests can target "the Unbreak
Now! task nobody answered" without hard-coding an id).

Transactions are stored raw (internal types, old/new values) exactly as ``store.Xaction``
holds them; the Conduit layer renders them per method. Same input -> byte-identical file.
"""

from __future__ import annotations

import gc
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from clinicbot.sandbox.store import Column, Comment, Document, Project, Store, Task, User, Version, Xaction

FORMAT_VERSION = 1


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    # Shared objects (e.g. a meta dict) must not turn into YAML anchors/aliases.
    def ignore_aliases(self, data: Any) -> bool:
        return True


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def to_epoch(value: datetime | int | float) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return int(value.timestamp())
    return int(value)


@dataclass
class Scenario:
    now: datetime
    users: list[dict[str, Any]] = field(default_factory=list)
    projects: list[dict[str, Any]] = field(default_factory=list)
    columns: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    transactions: list[Xaction] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    salt: str = "sandbox"
    description: str = ""

    @property
    def now_epoch(self) -> int:
        return to_epoch(self.now)

    def task(self, task_id: int) -> dict[str, Any]:
        for t in self.tasks:
            if t["id"] == task_id:
                return t
        raise KeyError(task_id)

    def user(self, username: str) -> dict[str, Any]:
        for u in self.users:
            if u["username"] == username:
                return u
        raise KeyError(username)

    # -- files ------------------------------------------------------------------------

    def to_data(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "description": self.description,
            "now": self.now.astimezone(timezone.utc).isoformat(),
            "nowEpoch": self.now_epoch,
            "salt": self.salt,
            "facts": json.loads(json.dumps(self.facts)),
            "users": [dict(u) for u in self.users],
            "projects": [dict(p) for p in self.projects],
            "columns": [dict(c) for c in self.columns],
            "tasks": [dict(t) for t in self.tasks],
            "transactions": [xaction_to_data(x) for x in self.transactions],
            "documents": [dict(d) for d in self.documents],
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> "Scenario":
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported scenario format {data.get('format')!r} (expected {FORMAT_VERSION})")
        now = datetime.fromtimestamp(int(data["nowEpoch"]), tz=timezone.utc)
        return cls(now=now, users=data.get("users") or [], projects=data.get("projects") or [],
                   columns=data.get("columns") or [], tasks=data.get("tasks") or [],
                   transactions=[xaction_from_data(x) for x in data.get("transactions") or []],
                   documents=data.get("documents") or [], facts=data.get("facts") or {},
                   salt=data.get("salt") or "sandbox", description=data.get("description") or "")

    def save(self, path: str | Path) -> Path:
        """Write as JSON (``.json``) or YAML (anything else)."""
        path = Path(path)
        data = self.to_data()
        if path.suffix.lower() == ".json":
            text = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
        else:
            text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100,
                             default_flow_style=False)
        path.write_text(text, encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Scenario":
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = yaml.load(text, Loader=_Loader)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a scenario is a mapping, got {type(data).__name__}")
        return cls.from_data(data)

    # -- stores -----------------------------------------------------------------------

    def build_store(self) -> Store:
        """A fresh store in this scenario's state (transactions are shared, tasks are copied)."""
        was_enabled = gc.isenabled()
        gc.disable()  # hundreds of thousands of small objects; nothing cyclic to collect
        try:
            return self._build_store()
        finally:
            if was_enabled:
                gc.enable()

    def _build_store(self) -> Store:
        store = Store(salt=self.salt + ":live", now=self.now_epoch, phid_salt=self.salt)
        for u in self.users:
            user = User(id=u["id"], phid=u["phid"], username=u["username"], real_name=u.get("realName", ""),
                        email=u.get("email", ""), admin=bool(u.get("admin")), bot=bool(u.get("bot")),
                        disabled=bool(u.get("disabled")), date_created=u.get("dateCreated", 0),
                        availability=u.get("availability", "available"), away_until=u.get("awayUntil"))
            store.users[user.phid] = user
            store.users_by_name[user.username] = user
            store._bump("user", user.id)
        for p in self.projects:
            store.add_project(Project(
                id=p["id"], phid=p["phid"], name=p["name"], slug=p.get("slug"), aliases=list(p.get("aliases") or []),
                icon=p.get("icon", "project"), color=p.get("color", "blue"), description=p.get("description"),
                parent=p.get("parent"), milestone=p.get("milestone"), members=list(p.get("members") or []),
                watchers=list(p.get("watchers") or []), date_created=p.get("dateCreated", 0),
                date_modified=p.get("dateModified", p.get("dateCreated", 0))))
        for c in self.columns:
            store.add_column(Column(id=c["id"], phid=c["phid"], project=c["project"], name=c["name"],
                                    sequence=c["sequence"], hidden=bool(c.get("hidden")),
                                    default=bool(c.get("default")),
                                    proxy=c.get("proxy"), date_created=c.get("dateCreated", 0),
                                    date_modified=c.get("dateModified", c.get("dateCreated", 0))))
        for t in self.tasks:
            store.add_task(task_from_data(t))
        for x in self.transactions:
            store.add_xaction(x)
        for d in self.documents:
            store.add_document(Document(id=d["id"], phid=d["phid"], slug=d["slug"], date_created=d["dateCreated"],
                                        versions=[Version(**{_VERSION_KEYS.get(k, k): v for k, v in ver.items()})
                                                  for ver in d["versions"]],
                                        mentions=list(d.get("mentions") or [])))
        return store

    @classmethod
    def from_store(cls, store: Store, now: datetime, facts: dict[str, Any] | None = None, salt: str = "sandbox",
                   description: str = "") -> "Scenario":
        return cls(
            now=now,
            users=[user_to_data(u) for u in sorted(store.users.values(), key=lambda u: u.id)],
            projects=[project_to_data(p) for p in sorted(store.projects.values(), key=lambda p: p.id)],
            columns=[column_to_data(c) for c in sorted(store.columns.values(), key=lambda c: c.id)],
            tasks=[task_to_data(t) for t in sorted(store.tasks.values(), key=lambda t: t.id)],
            transactions=list(store.xactions),
            documents=[document_to_data(d) for d in sorted(store.documents.values(), key=lambda d: d.id)],
            facts=facts or {}, salt=salt, description=description)


def load_scenario(path: str | Path) -> Scenario:
    return Scenario.load(path)


# -- record <-> plain data ------------------------------------------------------------

_VERSION_KEYS = {"contentID": "content_id", "contentPHID": "content_phid"}


def xaction_to_data(x: Xaction) -> dict[str, Any]:
    data: dict[str, Any] = {"id": x.id}
    if x.phid:  # otherwise derived from the id and the scenario's salt
        data["phid"] = x.phid
    data.update(object=x.object, type=x.type, author=x.author, date=x.date, group=x.group)
    if x.old is not None:
        data["old"] = x.old
    if x.new is not None:
        data["new"] = x.new
    if x.meta:
        data["meta"] = dict(x.meta)
    if x.comment is not None:
        data["comment"] = {"id": x.comment.id, "phid": x.comment.phid, "text": x.comment.text}
    return data


def xaction_from_data(d: dict[str, Any]) -> Xaction:
    c = d.get("comment")
    return Xaction(d["id"], d.get("phid", ""), d["object"], d["type"], d["author"], int(d["date"]), d["group"],
                   d.get("old"), d.get("new"), d.get("meta") or None,
                   Comment(c["id"], c["phid"], c["text"]) if c else None)


def user_to_data(u: User) -> dict[str, Any]:
    data: dict[str, Any] = {"id": u.id, "phid": u.phid, "username": u.username, "realName": u.real_name,
                            "email": u.email, "admin": u.admin, "bot": u.bot, "disabled": u.disabled,
                            "dateCreated": u.date_created}
    if u.availability != "available":
        data["availability"] = u.availability
        data["awayUntil"] = u.away_until
    return data


def project_to_data(p: Project) -> dict[str, Any]:
    return {"id": p.id, "phid": p.phid, "name": p.name, "slug": p.slug, "aliases": list(p.aliases), "icon": p.icon,
            "color": p.color, "description": p.description, "parent": p.parent, "milestone": p.milestone,
            "members": list(p.members), "watchers": list(p.watchers), "dateCreated": p.date_created,
            "dateModified": p.date_modified}


def column_to_data(c: Column) -> dict[str, Any]:
    return {"id": c.id, "phid": c.phid, "project": c.project, "name": c.name, "sequence": c.sequence,
            "hidden": c.hidden, "default": c.default, "proxy": c.proxy, "dateCreated": c.date_created,
            "dateModified": c.date_modified}


def task_to_data(t: Task) -> dict[str, Any]:
    return {"id": t.id, "phid": t.phid, "title": t.title, "description": t.description, "author": t.author,
            "owner": t.owner, "status": t.status, "priority": t.priority, "points": t.points,
            "dateCreated": t.date_created, "dateModified": t.date_modified, "dateClosed": t.date_closed,
            "closer": t.closer, "projects": list(t.projects), "columns": dict(t.columns),
            "subscribers": list(t.subscribers),
            # Relations are rare: only written when present (keeps big scenarios small).
            **{k: list(v) for k, v in (("parents", t.parents), ("subtasks", t.subtasks), ("mentions", t.mentions),
                                           ("mentionedIn", t.mentioned_in))
               if v}}


def task_from_data(d: dict[str, Any]) -> Task:
    points = d.get("points")
    return Task(id=d["id"], phid=d["phid"], title=d["title"], author=d["author"], description=d.get("description", ""),
                owner=d.get("owner"), status=d.get("status", "open"), priority=d.get("priority", 90),
                points=None if points is None else float(points), date_created=d["dateCreated"],
                date_modified=d.get("dateModified", d["dateCreated"]), date_closed=d.get("dateClosed"),
                closer=d.get("closer"), projects=list(d.get("projects") or []), columns=dict(d.get("columns") or {}),
                subscribers=list(d.get("subscribers") or []), parents=list(d.get("parents") or []),
                subtasks=list(d.get("subtasks") or []), mentions=list(d.get("mentions") or []),
                mentioned_in=list(d.get("mentionedIn") or []))


def document_to_data(d: Document) -> dict[str, Any]:
    return {"id": d.id, "phid": d.phid, "slug": d.slug, "dateCreated": d.date_created,
            "versions": [{"version": v.version, "title": v.title, "content": v.content, "description": v.description,
                          "author": v.author, "date": v.date, "contentID": v.content_id, "contentPHID": v.content_phid}
                         for v in d.versions],
            **({"mentions": list(d.mentions)} if d.mentions else {})}
