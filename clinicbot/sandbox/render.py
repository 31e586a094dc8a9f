"""Stored objects -> the JSON shapes of the recordings (keys, order, types, quirks).

Quirks reproduced on purpose, because clients must cope with them:
``points`` is a string in maniphest.search but a number in transactions; an empty
``boards`` is ``[]`` not ``{}``; ``fromColumnPHIDs`` is a map or ``[]``; legacy methods use
strings for ids and dates; tags and subscribers are listed newest first.
"""

from __future__ import annotations

import hashlib
from typing import Any

from clinicbot.sandbox.store import (
    EDGE_DEPENDED_ON_BY,
    EDGE_DEPENDS_ON,
    EDGE_MENTIONED_IN,
    EDGE_MENTIONS,
    EDGE_PROJECT,
    PRIORITY_BY_VALUE,
    STATUS_BY_VALUE,
    Document,
    Project,
    Store,
    Task,
    User,
    Version,
    Xaction,
    is_open,
)

ICONS = {
    "project": ("Project", "fa-briefcase"), "tag": ("Tag", "fa-tags"), "policy": ("Policy", "fa-lock"),
    "group": ("Group", "fa-users"), "folder": ("Folder", "fa-folder"), "timeline": ("Timeline", "fa-calendar"),
    "goal": ("Goal", "fa-flag-checkered"), "release": ("Release", "fa-truck"), "bugs": ("Bugs", "fa-bug"),
    "cleanup": ("Cleanup", "fa-trash-o"), "umbrella": ("Umbrella", "fa-umbrella"),
    "communication": ("Communication", "fa-envelope"), "organization": ("Organization", "fa-building"),
    "infrastructure": ("Infrastructure", "fa-cloud"), "account": ("Account", "fa-credit-card"),
    "experimental": ("Experimental", "fa-flask"), "milestone": ("Milestone", "fa-map-marker"),
}
AVAILABILITY = {"available": ("Available", "green"), "busy": ("Busy", "orange"), "away": ("Away", "red")}


def avatar(ctx: Any, user: User) -> str:
    digest = hashlib.sha1(user.phid.encode()).hexdigest()
    return f"{ctx.store.base_uri}file/data/{digest[:20]}/PHID-FILE-{digest[20:40]}/profile.png"


def points_string(points: float | None) -> str | None:
    if points is None:
        return None
    return str(int(points)) if float(points).is_integer() else repr(float(points))


def priority_ref(value: int, with_color: bool = True) -> dict[str, Any]:
    spec = PRIORITY_BY_VALUE.get(value)
    name = spec[1] if spec else f"Unknown Priority ({value})"
    out: dict[str, Any] = {"value": value, "name": name}
    if with_color:
        out["color"] = spec[3] if spec else "grey"
    return out


def status_name(value: str) -> str:
    spec = STATUS_BY_VALUE.get(value)
    return spec[1] if spec else "Unknown Status"


# -- users, projects, columns ------------------------------------------------------------

def user(ctx: Any, u: User, attach: set[str]) -> dict[str, Any]:
    attachments: dict[str, Any] = {}
    if "availability" in attach:
        name, color = AVAILABILITY[u.availability]
        attachments["availability"] = {"value": u.availability, "until": u.away_until, "name": name, "color": color,
                                       "eventPHID": None}
    return {"id": u.id, "type": "USER", "phid": u.phid,
            "fields": {"username": u.username, "realName": u.real_name, "roles": u.roles(),
                       "dateCreated": u.date_created, "dateModified": u.date_created,
                       "policy": {"view": "public", "edit": "no-one"}},
            "attachments": attachments}


def project_ancestors(store: Store, p: Project) -> list[str]:
    out = []
    parent = p.parent
    while parent and parent in store.projects:
        out.append(parent)
        parent = store.projects[parent].parent
    return out


def project_depth(store: Store, p: Project) -> int:
    return len(project_ancestors(store, p))


def _ref(p: Project) -> dict[str, Any]:
    return {"id": p.id, "phid": p.phid, "name": p.name}


def project(ctx: Any, p: Project, attach: set[str]) -> dict[str, Any]:
    store = ctx.store
    parent = store.projects.get(p.parent) if p.parent else None
    icon_name, icon = ICONS.get(p.icon, (p.icon.title(), "fa-briefcase"))
    attachments: dict[str, Any] = {}
    if "members" in attach:
        attachments["members"] = {"members": [{"phid": m} for m in reversed(p.members)]}
    if "watchers" in attach:
        attachments["watchers"] = {"watchers": [{"phid": w} for w in reversed(p.watchers)]}
    if "ancestors" in attach:
        attachments["ancestors"] = {"ancestors": [_ref(store.projects[a]) for a in project_ancestors(store, p)]}
    return {"id": p.id, "type": "PROJ", "phid": p.phid,
            "fields": {"name": p.name, "slug": p.slug, "subtype": "default", "milestone": p.milestone,
                       "depth": project_depth(store, p), "parent": _ref(parent) if parent else None,
                       "icon": {"key": p.icon, "name": icon_name, "icon": icon},
                       "color": {"key": p.color, "name": p.color.title()}, "status": "active", "spacePHID": None,
                       "dateCreated": p.date_created, "dateModified": p.date_modified,
                       "policy": {"view": "users", "edit": "users", "join": "users"},
                       "description": p.description},
            "attachments": attachments}


def column(ctx: Any, c: Any, attach: set[str]) -> dict[str, Any]:
    store = ctx.store
    board = store.projects[c.project]
    name = store.projects[c.proxy].name if c.proxy and c.proxy in store.projects else c.name
    return {"id": c.id, "type": "PCOL", "phid": c.phid,
            "fields": {"name": name or "Backlog", "proxyPHID": c.proxy, "project": _ref(board), "isHidden": c.hidden,
                       "isDefaultColumn": c.default, "sequence": c.sequence, "dateCreated": c.date_created,
                       "dateModified": c.date_modified, "policy": {"view": "users", "edit": "users"}},
            "attachments": {}}


# -- tasks -------------------------------------------------------------------------------

def task(ctx: Any, t: Task, attach: set[str]) -> dict[str, Any]:
    store = ctx.store
    attachments: dict[str, Any] = {}
    if "columns" in attach:
        boards = {}
        for board in reversed(t.projects):
            col = store.columns.get(t.columns.get(board, ""))
            if col is not None:
                boards[board] = {"columns": [{"id": col.id, "phid": col.phid, "name": col.name}]}
        attachments["columns"] = {"boards": boards or []}  # PHP empty array -> []
    if "projects" in attach:
        attachments["projects"] = {"projectPHIDs": list(reversed(t.projects))}
    if "subscribers" in attach:
        attachments["subscribers"] = {"subscriberPHIDs": list(reversed(t.subscribers)),
                                      "subscriberCount": len(t.subscribers),
                                      "viewerIsSubscribed": ctx.user.phid in t.subscribers}
    return {"id": t.id, "type": "TASK", "phid": t.phid,
            "fields": {"name": t.title, "description": {"raw": t.description}, "authorPHID": t.author,
                       "ownerPHID": t.owner,
                       "status": {"value": t.status, "name": status_name(t.status), "color": None},
                       "priority": priority_ref(t.priority), "points": points_string(t.points), "subtype": "default",
                       "closerPHID": t.closer, "dateClosed": t.date_closed, "groupByProjectPHID": None,
                       "spacePHID": None, "dateCreated": t.date_created, "dateModified": t.date_modified,
                       "policy": {"view": "users", "interact": "users", "edit": "users"}},
            "attachments": attachments}


def legacy_task(ctx: Any, t: Task) -> dict[str, Any]:
    spec = PRIORITY_BY_VALUE.get(t.priority)
    return {"id": str(t.id), "phid": t.phid, "authorPHID": t.author, "ownerPHID": t.owner,
            "ccPHIDs": list(t.subscribers), "status": t.status, "statusName": status_name(t.status),
            "isClosed": not is_open(t.status), "priority": spec[1] if spec else str(t.priority),
            "priorityColor": spec[3] if spec else "grey", "title": t.title, "description": t.description,
            "projectPHIDs": list(reversed(t.projects)), "uri": f"{ctx.store.base_uri}T{t.id}", "auxiliary": [],
            "objectName": f"T{t.id}", "dateCreated": str(t.date_created), "dateModified": str(t.date_modified),
            "dependsOnTaskPHIDs": list(t.subtasks)}


def handle(ctx: Any, obj: Any) -> dict[str, Any]:
    base = ctx.store.base_uri
    if isinstance(obj, Task):
        return {"phid": obj.phid, "uri": f"{base}T{obj.id}", "typeName": "Maniphest Task", "type": "TASK",
                "name": f"T{obj.id}", "fullName": f"T{obj.id}: {obj.title}",
                "status": "open" if is_open(obj.status) else "closed"}
    if isinstance(obj, User):
        return {"phid": obj.phid, "uri": f"{base}p/{obj.username}/", "typeName": "User", "type": "USER",
                "name": obj.username, "fullName": f"{obj.username} ({obj.real_name})",
                "status": "closed" if obj.disabled else "open"}
    return {"phid": obj.phid, "uri": f"{base}tag/{obj.slug or obj.id}/", "typeName": "Project", "type": "PROJ",
            "name": obj.name, "fullName": obj.name, "status": "open"}


# -- transactions ------------------------------------------------------------------------

def _operations(old: list[str], new: list[str]) -> list[dict[str, str]]:
    ops = [{"operation": "add", "phid": p} for p in new if p not in old]
    return ops + [{"operation": "remove", "phid": p} for p in old if p not in new]


def _modern_type(ctx: Any, x: Xaction) -> tuple[str | None, dict[str, Any]]:
    kind = x.type
    if kind == "core:create":
        return "create", {}
    if kind == "core:comment":
        return "comment", {}
    if kind in ("title", "description", "status"):
        return kind, {"old": x.old, "new": x.new}
    if kind == "reassign":
        return "owner", {"old": x.old, "new": x.new}
    if kind == "points":
        return "points", {"old": x.old, "new": x.new}
    if kind == "priority":
        return "priority", {"old": priority_ref(x.old, False) if x.old is not None else None,
                            "new": priority_ref(x.new, False)}
    if kind == "core:columns":
        if not ctx.store.features.get("structured_column_transactions", True):
            return None, {}  # older servers: the move is opaque to transaction.search
        return "core:columns", {"old": None, "new": x.new}
    if kind == "core:subscribers":
        return "subscribers", {"operations": _operations(x.old or [], x.new or [])}
    if kind == "core:edge":
        edge = (x.meta or {}).get("edge:type")
        name = {EDGE_PROJECT: "projects", EDGE_DEPENDS_ON: "dependsOn", EDGE_DEPENDED_ON_BY: "dependedOnBy"}.get(edge)
        if name is None:  # mentions and other edges are not exposed
            return None, {}
        return name, {"operations": _operations(x.old or [], x.new or [])}
    if kind == "unblock":
        return "unblock", {"old": x.old, "new": x.new}
    if kind == "core:customfield":
        return kind, dict(x.new or {})
    return None, {}  # "parent" on creation, project/column/wiki transactions


def xaction(ctx: Any, x: Xaction) -> dict[str, Any]:
    kind, fields = _modern_type(ctx, x)
    comments = []
    if x.comment is not None:
        comments.append({"id": x.comment.id, "phid": x.comment.phid, "version": 1, "authorPHID": x.author,
                         "dateCreated": x.date, "dateModified": x.date, "removed": False,
                         "content": {"raw": x.comment.text}})
    return {"id": x.id, "phid": ctx.store.xaction_phid(x), "type": kind, "authorPHID": x.author, "objectPHID": x.object,
            "dateCreated": x.date, "dateModified": x.date, "groupID": x.group, "comments": comments, "fields": fields}


def legacy_xaction(ctx: Any, t: Task, x: Xaction) -> dict[str, Any]:
    old, new = x.old, x.new
    if x.type == "priority":
        old, new = (None if old is None else str(old)), str(new)
    meta = dict(x.meta or {})
    meta["core.groupID"] = x.group
    return {"taskID": str(t.id), "title": legacy_title(ctx.store, x), "transactionID": str(x.id),
            "transactionPHID": ctx.store.xaction_phid(x), "transactionType": x.type, "oldValue": old,
            "newValue": new, "meta": meta,
            "comments": x.comment.text if x.comment is not None else None, "authorPHID": x.author,
            "dateCreated": str(x.date)}


def _names(store: Store, phids: list[str]) -> str:
    return ", ".join(store.object_name(p) for p in phids)


def _plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def legacy_title(store: Store, x: Xaction) -> str:
    """The one-line story the legacy API puts in ``title`` (close to the web UI's text)."""
    who = store.username(x.author)
    created = bool(x.meta and x.meta.get("core.create"))
    kind, old, new = x.type, x.old, x.new
    if kind == "core:create" or (kind == "title" and created):
        return f"{who} created this task."
    if kind == "title":
        return f'{who} renamed this task from "{old}" to "{new}".'
    if kind == "description":
        return f"{who} updated the task description."
    if kind == "core:comment":
        return f"{who} added a comment."
    if kind == "status":
        if is_open(old) and not is_open(new):
            return f'{who} closed this task as "{status_name(new)}".'
        if not is_open(old) and is_open(new):
            return f'{who} reopened this task as "{status_name(new)}".'
        return f'{who} changed the task status from "{status_name(old)}" to "{status_name(new)}".'
    if kind == "priority":
        if old == 90:
            return f'{who} triaged this task as "{priority_ref(new)["name"]}" priority.'
        verb = "raised" if new > old else "lowered"
        return f'{who} {verb} the priority of this task from "{priority_ref(old)["name"]}" to ' \
               f'"{priority_ref(new)["name"]}".'
    if kind == "reassign":
        if new == x.author:
            return f"{who} claimed this task."
        if new is None:
            return f"{who} removed {store.username(old)} as the assignee of this task."
        if old is None:
            return f"{who} assigned this task to {store.username(new)}."
        return f"{who} reassigned this task from {store.username(old)} to {store.username(new)}."
    if kind == "points":
        if old is None:
            return f'{who} set the point value for this task to "{new}".'
        if new is None:
            return f"{who} removed the point value for this task."
        return f'{who} changed the point value for this task from "{old}" to "{new}".'
    if kind == "core:columns":
        parts = []
        for move in new or []:
            board = store.object_name(move["boardPHID"])
            to = store.object_name(move["columnPHID"])
            src = list(move["fromColumnPHIDs"]) if move["fromColumnPHIDs"] else []
            if src:
                parts.append(f"{who} moved this task from {store.object_name(src[0])} to {to} on the {board} board.")
            else:
                parts.append(f"{who} moved this task to {to} on the {board} board.")
        return " ".join(parts)
    if kind == "core:subscribers":
        added = [p for p in new or [] if p not in (old or [])]
        removed = [p for p in old or [] if p not in (new or [])]
        if added == [x.author] and not removed:
            return f"{who} subscribed."
        if removed == [x.author] and not added:
            return f"{who} unsubscribed."
        if added and not removed:
            return f"{who} added {_plural(len(added), 'a subscriber', 'subscribers')}: {_names(store, added)}."
        if removed and not added:
            return f"{who} removed {_plural(len(removed), 'a subscriber', 'subscribers')}: {_names(store, removed)}."
        return f"{who} changed subscribers, added: {_names(store, added)}; removed: {_names(store, removed)}."
    if kind == "core:edge":
        edge = (x.meta or {}).get("edge:type")
        added = [p for p in new or [] if p not in (old or [])]
        removed = [p for p in old or [] if p not in (new or [])]
        noun = {EDGE_PROJECT: ("a project", "projects"), EDGE_DEPENDS_ON: ("a subtask", "subtasks"),
                EDGE_DEPENDED_ON_BY: ("a parent task", "parent tasks")}.get(edge)
        if edge == EDGE_MENTIONS:
            return f"{who} mentioned {_names(store, added)}."
        if edge == EDGE_MENTIONED_IN:
            return f"{who} mentioned this in {_names(store, added)}."
        noun = noun or ("an edge", "edges")
        if added and not removed:
            return f"{who} added {_plural(len(added), noun[0], noun[1])}: {_names(store, added)}."
        if removed and not added:
            return f"{who} removed {_plural(len(removed), noun[0], noun[1])}: {_names(store, removed)}."
        return f"{who} changed {noun[1]}, added: {_names(store, added)}; removed: {_names(store, removed)}."
    if kind == "parent":
        return f"{who} created this task as a subtask of {store.object_name(new)}."
    if kind == "unblock":
        return f"{who} updated a subtask of this task."
    return f"{who} updated this task."


# -- phriction ---------------------------------------------------------------------------

def document(ctx: Any, doc: Document, *, strings: bool, version: Version | None = None) -> dict[str, Any]:
    v = version or doc.latest
    uri = f"{ctx.store.base_uri}w/" + ("" if doc.slug == "/" else doc.slug)
    return {"phid": doc.phid, "uri": uri, "slug": doc.slug, "version": str(v.version) if strings else v.version,
            "authorPHID": v.author, "title": v.title, "content": v.content, "status": "exists",
            "description": v.description, "dateCreated": str(v.date) if strings else v.date}


def document_item(ctx: Any, doc: Document, attach: set[str]) -> dict[str, Any]:
    attachments: dict[str, Any] = {}
    if "content" in attach:
        v = doc.latest
        attachments["content"] = {"title": v.title, "path": doc.slug, "authorPHID": v.author,
                                  "content": {"raw": v.content}}
    return {"id": doc.id, "type": "WIKI", "phid": doc.phid,
            "fields": {"path": doc.slug, "status": {"value": "active", "name": "Active"}, "spacePHID": None,
                       "policy": {"view": "users", "edit": "users"}},
            "attachments": attachments}


def content_item(ctx: Any, row: Any, attach: set[str]) -> dict[str, Any]:
    doc, v = row
    attachments: dict[str, Any] = {}
    if "content" in attach:
        attachments["content"] = {"title": v.title, "path": doc.slug, "authorPHID": v.author,
                                  "content": {"raw": v.content}}
    return {"id": v.content_id, "type": "WRDS", "phid": v.content_phid,
            "fields": {"documentPHID": doc.phid, "version": v.version, "description": v.description,
                       "dateCreated": v.date, "dateModified": v.date, "policy": {"view": "users"}},
            "attachments": attachments}
