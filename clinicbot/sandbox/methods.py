"""Conduit methods of the sandbox, answering with the shapes of the recordings.

Each method takes a ``Ctx`` (store, acting user, clock) and the decoded ``params`` and
returns the ``result`` value or raises ``ConduitFault``. Nothing here knows HTTP.
"""

from __future__ import annotations

import bisect
import itertools
from typing import Any, Callable

from clinicbot.sandbox import edges
from clinicbot.sandbox import params as sandbox_params
from clinicbot.sandbox import render
from clinicbot.sandbox.engine import apply_edit
from clinicbot.sandbox.search import Ctx, Engine, as_int_list, as_list, fault, read_cursor, read_limit, run_search
from clinicbot.sandbox.store import (
    PRIORITIES,
    STATUSES,
    ConduitFault,
    Store,
    is_open,
)

Method = Callable[[Ctx, dict[str, Any]], Any]
METHODS: dict[str, Method] = {}
NO_AUTH = {"conduit.ping", "conduit.getcapabilities"}


def method(name: str) -> Callable[[Method], Method]:
    def register(fn: Method) -> Method:
        METHODS[name] = fn
        return fn

    return register


def available(store: Store) -> list[str]:
    names = sorted(METHODS)
    if not store.features.get("gettasktransactions", True):
        names.remove("maniphest.gettasktransactions")
    return names


def call(ctx: Ctx, name: str, params: dict[str, Any]) -> Any:
    if name not in available(ctx.store):
        raise ConduitFault("ERR-CONDUIT-CALL", f'Conduit API method "{name}" does not exist.')
    return METHODS[name](ctx, params)


# -- conduit.* / user.whoami ---------------------------------------------------------------

def _method_docs() -> dict[str, Any]:
    return sandbox_params.method_docs()  # the recorded conduit.query answer


@method("conduit.ping")
def conduit_ping(ctx: Ctx, params: dict[str, Any]) -> str:
    return "sandbox"


@method("conduit.getcapabilities")
def conduit_getcapabilities(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    return {"authentication": ["token", "asymmetric", "session", "sessionless"], "signatures": ["consign"],
            "input": ["json", "urlencoded"], "output": ["json", "human"]}


@method("conduit.query")
def conduit_query(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    docs = _method_docs()
    return {name: docs[name] for name in available(ctx.store) if name in docs}


@method("user.whoami")
def user_whoami(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    u = ctx.user
    return {"phid": u.phid, "userName": u.username, "realName": u.real_name, "image": render.avatar(ctx, u),
            "uri": f"{ctx.store.base_uri}p/{u.username}/", "roles": u.whoami_roles(), "primaryEmail": u.email}


# -- searches --------------------------------------------------------------------------

def _by_id(table: Callable[[Ctx], dict[Any, Any]]) -> Callable[[Ctx, int], Any]:
    def lookup(ctx: Ctx, object_id: int) -> Any:
        return next((o for o in table(ctx).values() if o.id == object_id), None)

    return lookup


def _phid_or_name(values: list[Any], by_name: Callable[[str], Any]) -> set[str]:
    out = set()
    for v in values:
        v = str(v)
        if v.startswith("PHID-"):
            out.add(v)
        else:
            obj = by_name(v)
            if obj is not None:
                out.add(obj.phid)
    return out


def _match_users(ctx: Ctx, c: dict[str, Any], query_key: str | None) -> Callable[[Any], bool] | None:
    tests: list[Callable[[Any], bool]] = []
    if "ids" in c:
        ids = set(c["ids"])
        tests.append(lambda u: u.id in ids)
    if "phids" in c:
        phids = set(c["phids"])
        tests.append(lambda u: u.phid in phids)
    if "usernames" in c:
        names = {str(n).lower() for n in c["usernames"]}
        tests.append(lambda u: u.username.lower() in names)
    for key, attr in (("isAdmin", "admin"), ("isDisabled", "disabled"), ("isBot", "bot")):
        if key in c:
            tests.append(lambda u, a=attr, v=c[key]: getattr(u, a) == v)
    if "isMailingList" in c:
        tests.append(lambda u, v=c["isMailingList"]: v is False)
    if "needsApproval" in c:
        tests.append(lambda u, v=c["needsApproval"]: v is False)
    for key in ("nameLike", "query"):
        if key in c:
            needle = c[key].lower()
            tests.append(lambda u, n=needle: n in u.username.lower() or n in u.real_name.lower())
    if "createdStart" in c:
        tests.append(lambda u, v=c["createdStart"]: u.date_created >= v)
    if "createdEnd" in c:
        tests.append(lambda u, v=c["createdEnd"]: u.date_created <= v)
    return lambda u: all(t(u) for t in tests)


USERS = Engine(
    method="user.search", query_class="PhabricatorPeopleQuery", noun="User",
    constraints={"ids": "ids", "phids": "list", "usernames": "list", "nameLike": "str", "isAdmin": "bool",
                 "isDisabled": "bool", "isBot": "bool", "isMailingList": "bool", "needsApproval": "bool",
                 "query": "str", "createdStart": "int", "createdEnd": "int"},
    attachments={"availability"},
    columns={"id": (lambda u: u.id, True), "username": (lambda u: u.username, False)},
    builtin_orders={"newest": ["id"], "oldest": ["-id"], "relevance": ["id"]}, default_order="newest",
    items=lambda ctx: list(ctx.store.users.values()), match=_match_users, render=render.user,
    lookup=_by_id(lambda ctx: ctx.store.users),
    query_keys={"all": {}, "active": {"isDisabled": False}, "approval": {}},
)


@method("user.search")
def user_search(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    return run_search(ctx, USERS, params)


def _match_projects(ctx: Ctx, c: dict[str, Any], query_key: str | None) -> Callable[[Any], bool] | None:
    store = ctx.store
    tests: list[Callable[[Any], bool]] = []
    if "ids" in c:
        ids = set(c["ids"])
        tests.append(lambda p: p.id in ids)
    if "phids" in c:
        phids = set(c["phids"])
        tests.append(lambda p: p.phid in phids)
    if "slugs" in c:
        found = {p.phid for p in (store.project_by_slug(str(s)) for s in c["slugs"]) if p}
        tests.append(lambda p: p.phid in found)
    if "name" in c:
        words = c["name"].lower().split()
        tests.append(lambda p: all(w in p.name.lower() for w in words))
    if "query" in c:
        words = c["query"].lower().split()
        tests.append(lambda p: all(w in f"{p.name} {p.description or ''}".lower() for w in words))
    if "members" in c:
        members = _phid_or_name(c["members"], store.users_by_name.get)
        tests.append(lambda p: bool(members & set(p.members)))
    if "watchers" in c:
        watchers = _phid_or_name(c["watchers"], store.users_by_name.get)
        tests.append(lambda p: bool(watchers & set(p.watchers)))
    if "status" in c and c["status"] not in ("all", "active"):
        return None  # no archived projects in the sandbox
    if "isMilestone" in c:
        tests.append(lambda p, v=c["isMilestone"]: (p.milestone is not None) == v)
    if "isRoot" in c:
        tests.append(lambda p, v=c["isRoot"]: (p.parent is None) == v)
    if "minDepth" in c:
        tests.append(lambda p, v=c["minDepth"]: render.project_depth(store, p) >= v)
    if "maxDepth" in c:
        tests.append(lambda p, v=c["maxDepth"]: render.project_depth(store, p) <= v)
    if "subtypes" in c:
        tests.append(lambda p, v=set(c["subtypes"]): "default" in v)
    if "icons" in c:
        tests.append(lambda p, v=set(c["icons"]): p.icon in v)
    if "colors" in c:
        tests.append(lambda p, v=set(c["colors"]): p.color in v)
    if "parents" in c:
        tests.append(lambda p, v=set(c["parents"]): p.parent in v)
    if "ancestors" in c:
        tests.append(lambda p, v=set(c["ancestors"]): bool(v & set(render.project_ancestors(store, p))))
    return lambda p: all(t(p) for t in tests)


def _project_slug_map(ctx: Ctx, c: dict[str, Any]) -> dict[str, Any]:
    slug_map = {}
    for slug in c.get("slugs", []):
        p = ctx.store.project_by_slug(str(slug))
        if p is not None:
            slug_map[str(slug)] = {"slug": str(slug), "projectPHID": p.phid}
    return {"slugMap": slug_map}


PROJECTS = Engine(
    method="project.search", query_class="PhabricatorProjectQuery", noun="Project",
    constraints={"ids": "ids", "phids": "list", "slugs": "list", "name": "str", "members": "list",
                 "watchers": "list", "status": "str", "isMilestone": "bool", "isRoot": "bool", "minDepth": "int",
                 "maxDepth": "int", "subtypes": "list", "icons": "list", "colors": "list", "parents": "list",
                 "ancestors": "list", "query": "str"},
    attachments={"members", "watchers", "ancestors"},
    columns={"id": (lambda p: p.id, True), "name": (lambda p: p.name.lower(), False)},
    builtin_orders={"name": ["name"], "newest": ["id"], "oldest": ["-id"], "relevance": ["id"]},
    default_order="name", items=lambda ctx: list(ctx.store.projects.values()), match=_match_projects,
    render=render.project, lookup=_by_id(lambda ctx: ctx.store.projects), maps=_project_slug_map,
    query_keys={"all": {}, "active": {"status": "active"}, "joined": {}, "watching": {}},
)


@method("project.search")
def project_search(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    return run_search(ctx, PROJECTS, params)


def _match_columns(ctx: Ctx, c: dict[str, Any], query_key: str | None) -> Callable[[Any], bool] | None:
    tests: list[Callable[[Any], bool]] = []
    if "ids" in c:
        tests.append(lambda col, v=set(c["ids"]): col.id in v)
    if "phids" in c:
        tests.append(lambda col, v=set(c["phids"]): col.phid in v)
    if "projects" in c:
        tests.append(lambda col, v=set(c["projects"]): col.project in v)
    return lambda col: all(t(col) for t in tests)


COLUMNS = Engine(
    method="project.column.search", query_class="PhabricatorProjectColumnQuery", noun="Column",
    constraints={"ids": "ids", "phids": "list", "projects": "list"}, attachments=set(),
    columns={"id": (lambda c: c.id, True)}, builtin_orders={"newest": ["id"], "oldest": ["-id"]},
    default_order="newest", items=lambda ctx: list(ctx.store.columns.values()), match=_match_columns,
    render=render.column, lookup=_by_id(lambda ctx: ctx.store.columns),
)


@method("project.column.search")
def project_column_search(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    return run_search(ctx, COLUMNS, params)


# -- maniphest ---------------------------------------------------------------------------

def _match_tasks(ctx: Ctx, c: dict[str, Any], query_key: str | None) -> Callable[[Any], bool] | None:
    store = ctx.store
    viewer = ctx.user.phid
    tests: list[Callable[[Any], bool]] = []
    if "ids" in c:
        ids = set(c["ids"])
        tests.append(lambda t: t.id in ids)
    if "phids" in c:
        tests.append(lambda t, v=set(c["phids"]): t.phid in v)
    if "assigned" in c:
        wanted = {str(v) for v in c["assigned"]}
        owners = _phid_or_name([v for v in wanted if v not in ("none", "null")], store.users_by_name.get)
        unowned = bool(wanted & {"none", "null"})
        tests.append(lambda t: t.owner in owners or (unowned and t.owner is None))
    if "authorPHIDs" in c:
        authors = _phid_or_name(c["authorPHIDs"], store.users_by_name.get)
        tests.append(lambda t: t.author in authors)
    if "subscribers" in c:
        subs = _phid_or_name(c["subscribers"], store.users_by_name.get)
        tests.append(lambda t: bool(subs & set(t.subscribers)))
    if "statuses" in c:
        statuses = {str(s) for s in c["statuses"]}
        tests.append(lambda t: t.status in statuses)
    if "priorities" in c:
        prios = {int(p) for p in c["priorities"] if str(p).lstrip("-").isdigit()}
        tests.append(lambda t: t.priority in prios)
    if "subtypes" in c:
        tests.append(lambda t, v=set(c["subtypes"]): "default" in v)
    if "projects" in c:
        # Every listed project must match (a project also matches its milestones/subprojects).
        groups = []
        for ref in c["projects"]:
            ref = str(ref)
            p = store.projects.get(ref) if ref.startswith("PHID-") else store.project_by_slug(ref)
            if p is None:
                return None
            groups.append(store.descendants(p.phid))
        tests.append(lambda t: all(any(p in g for p in t.projects) for g in groups))
    if "columnPHIDs" in c:
        cols = {str(v) for v in c["columnPHIDs"]}
        proxies = {store.columns[v].proxy for v in cols if v in store.columns and store.columns[v].proxy}
        tests.append(lambda t: bool(cols & set(t.columns.values())) or bool(proxies & set(t.projects)))
    for key, getter in (("createdStart", "date_created"), ("modifiedStart", "date_modified"),
                        ("closedStart", "date_closed")):
        if key in c:
            tests.append(lambda t, g=getter, v=c[key]: (getattr(t, g) or 0) >= v and getattr(t, g) is not None)
    for key, getter in (("createdEnd", "date_created"), ("modifiedEnd", "date_modified"),
                        ("closedEnd", "date_closed")):
        if key in c:
            tests.append(lambda t, g=getter, v=c[key]: getattr(t, g) is not None and getattr(t, g) <= v)
    if "closerPHIDs" in c:
        tests.append(lambda t, v=set(c["closerPHIDs"]): t.closer in v)
    if "hasParents" in c:
        tests.append(lambda t, v=c["hasParents"]: bool(t.parents) == v)
    if "hasSubtasks" in c:
        tests.append(lambda t, v=c["hasSubtasks"]: bool(t.subtasks) == v)
    if "parentIDs" in c:
        parents = {store.tasks[i].phid for i in c["parentIDs"] if i in store.tasks}
        tests.append(lambda t: bool(parents & set(t.parents)))
    if "subtaskIDs" in c:
        subs_ = {store.tasks[i].phid for i in c["subtaskIDs"] if i in store.tasks}
        tests.append(lambda t: bool(subs_ & set(t.subtasks)))
    if "query" in c:
        words = c["query"].lower().split()
        tests.append(lambda t: all(w in f"{t.title}\n{t.description}".lower() for w in words))
    if query_key == "open":
        tests.append(lambda t: is_open(t.status))
    elif query_key == "assigned":
        tests.append(lambda t: t.owner == viewer and is_open(t.status))
    elif query_key == "authored":
        tests.append(lambda t: t.author == viewer)
    elif query_key == "subscribed":
        tests.append(lambda t: viewer in t.subscribers)
    return lambda t: all(test(t) for test in tests)


TASKS = Engine(
    method="maniphest.search", query_class="ManiphestTaskQuery", noun="Task",
    constraints={"ids": "ids", "phids": "list", "assigned": "list", "authorPHIDs": "list", "statuses": "list",
                 "priorities": "list", "subtypes": "list", "columnPHIDs": "list", "hasParents": "bool",
                 "hasSubtasks": "bool", "parentIDs": "ids", "subtaskIDs": "ids", "createdStart": "int",
                 "createdEnd": "int", "modifiedStart": "int", "modifiedEnd": "int", "closedStart": "int",
                 "closedEnd": "int", "closerPHIDs": "list", "query": "str", "subscribers": "list",
                 "projects": "list", "spaces": "list"},
    attachments={"columns", "projects", "subscribers"},
    columns={"id": (lambda t: t.id, True), "priority": (lambda t: t.priority, True),
             "updated": (lambda t: t.date_modified, True), "created": (lambda t: t.date_created, True),
             "closed": (lambda t: t.date_closed, True), "title": (lambda t: t.title.lower(), False),
             "status": (lambda t: t.status, False)},
    builtin_orders={"priority": ["priority", "id"], "order-priority": ["priority", "id"],
                    "updated": ["updated", "id"], "order-modified": ["updated", "id"],
                    "outdated": ["-updated", "-id"], "newest": ["id"], "created": ["id"], "order-created": ["id"],
                    "oldest": ["-id"], "closed": ["closed", "id"], "title": ["title", "id"],
                    "order-title": ["title", "id"], "relevance": ["id"]},
    default_order="priority", items=lambda ctx: list(ctx.store.tasks.values()), match=_match_tasks,
    render=render.task, lookup=lambda ctx, i: ctx.store.tasks.get(i),
    query_keys={"all": {}, "open": {}, "assigned": {}, "authored": {}, "subscribed": {}},
)


@method("maniphest.search")
def maniphest_search(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    return run_search(ctx, TASKS, params)


@method("maniphest.status.search")
def maniphest_status_search(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    data = []
    for value, name, closed, special in STATUSES:
        item: dict[str, Any] = {"name": name, "value": value, "closed": closed}
        if special:
            item["special"] = special
        data.append(item)
    return {"data": data}


@method("maniphest.priority.search")
def maniphest_priority_search(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    return {"data": [{"name": name, "keywords": list(kw), "short": short, "color": color, "value": value}
                     for value, name, short, color, kw in PRIORITIES]}


@method("maniphest.querystatuses")
def maniphest_querystatuses(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    closed = [s for s in STATUSES if s[2]]
    return {"defaultStatus": "open", "defaultClosedStatus": "resolved", "duplicateStatus": "duplicate",
            "openStatuses": [s[0] for s in STATUSES if not s[2]],
            # An object with numeric string keys, as PHP serialises a sparse array.
            "closedStatuses": {str(i): s[0] for i, s in enumerate(STATUSES) if s in closed},
            "allStatuses": [s[0] for s in STATUSES], "statusMap": {s[0]: s[1] for s in STATUSES}}


def _resolve_task(ctx: Ctx, ident: Any) -> Any:
    store = ctx.store
    text = str(ident).strip()
    if text.startswith("PHID-"):
        task = store.tasks_by_phid.get(text)
        if task is None:
            raise fault(f'No object exists with PHID "{text}".')
        return task
    if text[:1] in ("T", "t") and text[1:].isdigit():
        task = store.tasks.get(int(text[1:]))
        if task is None:
            raise fault(f'Monogram "{text}" does not identify a valid object.')
        return task
    if text.isdigit():
        task = store.tasks.get(int(text))
        if task is None:
            raise fault(f'No object exists with ID "{text}".')
        return task
    raise fault(f'Object identifier "{text}" is not a valid ID, PHID or monogram.')


@method("maniphest.edit")
def maniphest_edit(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    ident = params.get("objectIdentifier")
    task = None if ident in (None, "") else _resolve_task(ctx, ident)
    transactions = params.get("transactions")
    if isinstance(transactions, dict):  # form encoding: transactions[0][type]=...
        transactions = list(transactions.values())
    task, written = apply_edit(ctx.store, task, ctx.user, transactions if transactions is not None else [], ctx.now)
    return {"object": {"id": task.id, "phid": task.phid},
            "transactions": [{"phid": ctx.store.xaction_phid(x)} for x in written]}


@method("maniphest.info")
def maniphest_info(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    task_id = params.get("task_id")
    task = ctx.store.tasks.get(int(task_id)) if str(task_id).isdigit() else None
    if task is None:
        raise ConduitFault("ERR_BAD_TASK", "No such Maniphest task exists.")
    return render.legacy_task(ctx, task)


@method("maniphest.gettasktransactions")
def maniphest_gettasktransactions(ctx: Ctx, params: dict[str, Any]) -> Any:
    if "ids" not in params:
        raise fault('Parameter "ids" is required.')
    ids = as_int_list("ids", params["ids"])
    tasks = [ctx.store.tasks[i] for i in dict.fromkeys(ids) if i in ctx.store.tasks]
    # The real server groups a newest-first stream by task, so the task with the most
    # recent transaction comes first (not the request order).
    tasks.sort(key=lambda t: -(t.xactions[-1].id if t.xactions else 0))
    result = {str(t.id): [render.legacy_xaction(ctx, t, x) for x in reversed(t.xactions)] for t in tasks}
    return result or []  # PHP's empty array is a JSON list


@method("transaction.search")
def transaction_search(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    store = ctx.store
    ident, object_type = params.get("objectIdentifier"), params.get("objectType")
    if ident in (None, "") and object_type in (None, ""):
        raise ConduitFault("ERR-INVALID-PARAMETER",
                           'Must specify either parameter "objectType" or parameter "objectIdentifier".')
    limit = read_limit(params.get("limit"))
    after = read_cursor("Transaction", params.get("after"))
    before = read_cursor("Transaction", params.get("before"))
    constraints = params.get("constraints") or {}
    if not isinstance(constraints, dict):
        raise fault('Parameter "constraints" must be a map.')
    tests: list[Callable[[Any], bool]] = []
    if ident not in (None, ""):
        phid = _object_phid(ctx, str(ident))
        if phid is None:
            raise ConduitFault("ERR-INVALID-OBJECT-PHID", 'Specified "objectIdentifier" does not exist.')
        source = store.xactions_of(phid)
    else:
        if object_type not in ("TASK", "PROJ", "PCOL", "WIKI"):
            raise ConduitFault("ERR-INVALID-PARAMETER", f'Object type "{object_type}" is not valid.')
        source = store.xactions  # every object's, filtered below
        prefix = f"PHID-{object_type}-"
        tests.append(lambda x: x.object.startswith(prefix))
    if "phids" in constraints:
        phids = set(as_list("phids", constraints["phids"]))
        if not phids:
            raise fault('Constraint "phids" to "transaction.search" requires nonempty list, empty list provided.')
        tests.append(lambda x: store.xaction_phid(x) in phids)
    if "authorPHIDs" in constraints:
        authors = set(as_list("authorPHIDs", constraints["authorPHIDs"]))
        if not authors:
            raise fault('Constraint "authorPHIDs" to "transaction.search" requires nonempty list, empty list '
                        "provided.")
        tests.append(lambda x: x.author in authors)

    def matching(indexes: Any) -> Any:
        return (source[i] for i in indexes if all(t(source[i]) for t in tests))

    # Newest first, cursors are transaction ids; walk from the cursor instead of filtering
    # everything (objectType=TASK on a 100,000-task scenario is ~a million transactions).
    if before is not None:
        start = bisect.bisect_right(source, before, key=lambda x: x.id)
        newer = list(itertools.islice(matching(range(start, len(source))), limit + 1))
        chunk = list(reversed(newer[:limit]))
        next_after = str(chunk[-1].id) if chunk else None
        prev = str(chunk[0].id) if len(newer) > limit and chunk else None
    else:
        end = len(source) if after is None else bisect.bisect_left(source, after, key=lambda x: x.id)
        older = list(itertools.islice(matching(range(end - 1, -1, -1)), limit + 1))
        chunk = older[:limit]
        next_after = str(chunk[-1].id) if len(older) > limit and chunk else None
        prev = str(chunk[0].id) if after is not None and chunk else None
    return {"data": [render.xaction(ctx, x) for x in chunk],
            "cursor": {"limit": params.get("limit") if params.get("limit") not in (None, "") else 100,
                       "after": next_after, "before": prev}}


def _object_phid(ctx: Ctx, ident: str) -> str | None:
    store = ctx.store
    if ident.startswith("PHID-"):
        known = (store.tasks_by_phid, store.projects, store.columns, store.documents_by_phid, store.users)
        return ident if any(ident in table for table in known) else None
    if ident[:1] == "T" and ident[1:].isdigit():
        task = store.tasks.get(int(ident[1:]))
        return task.phid if task else None
    return None


# -- edges and PHIDs ------------------------------------------------------------------------

@method("edge.search")
def edge_search(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    return edges.search_edges(ctx, params)  # task relations and mentions: edges.py


@method("phid.lookup")
def phid_lookup(ctx: Ctx, params: dict[str, Any]) -> Any:
    store = ctx.store
    out: dict[str, Any] = {}
    for name in as_list("names", params.get("names")):
        name = str(name)
        obj = None
        if name[:1] == "T" and name[1:].isdigit():
            obj = store.tasks.get(int(name[1:]))
        elif name.startswith("@"):
            obj = store.users_by_name.get(name[1:])
        elif name.startswith("#"):
            obj = store.project_by_slug(name)
        elif name.startswith("PHID-"):
            obj = (store.tasks_by_phid.get(name) or store.users.get(name) or store.projects.get(name))
        if obj is not None:
            out[name] = render.handle(ctx, obj)
    return out or []


# The phriction.* methods live in wiki.py; importing it registers them.
from clinicbot.sandbox import wiki  # noqa: E402,F401  (circular on purpose: wiki uses method())

__all__ = ["METHODS", "NO_AUTH", "call", "available"]
