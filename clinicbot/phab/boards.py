"""The board model: projects, columns, tasks, users, priorities and statuses from Conduit.

Pure parsers (``parse_*``) turn one Conduit record into plain data and are tested against the
recordings; the ``fetch_*``/``load_*`` functions make the calls, as few as possible: one paged
``maniphest.search`` over the ``columnPHIDs`` of every watched board (a task on two boards
comes once), users fetched by PHID in batches of 100.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Iterable, Mapping

from clinicbot.phab.conduit import PAGE_LIMIT, ConduitClient
from clinicbot.config import BoardConfig, Config
from clinicbot.errors import ConfigError
from clinicbot.model import Board, Column, Priority, Shape, Status, Task, User

log = logging.getLogger(__name__)

TASK_ATTACHMENTS = {"columns": True, "projects": True, "subscribers": True}


# --------------------------------------------------------------------------------------------
# Parsers: one Conduit record -> plain data


def _record(method: str, item: Any, kind: str) -> tuple[Shape, Mapping[str, Any]]:
    """The Shape reader for one ``data`` item, named by its PHID (or its place) in errors."""
    if not isinstance(item, dict):
        Shape(method, f"a {kind}").fail("data[]", item, "an object")
    phid = item.get("phid")
    name = phid if isinstance(phid, str) and phid else f"a {kind}"
    return Shape(method, name), item


def parse_status(item: Mapping[str, Any]) -> Status:
    shape, item = _record("maniphest.status.search", item, "status")
    value = shape.text(item.get("value"), "value")
    if not value:
        shape.fail("value", value, "a status key")
    return Status(value=value, name=shape.text(item.get("name"), "name", optional=True) or value,
                  closed=shape.flag(item.get("closed"), "closed"))


def parse_priority(item: Mapping[str, Any]) -> Priority:
    # Priority values and names differ per install; only the shape is fixed.
    shape, item = _record("maniphest.priority.search", item, "priority")
    value = shape.integer(item.get("value"), "value")
    keywords = shape.items(item.get("keywords"), "keywords", optional=True)
    for i, keyword in enumerate(keywords):
        shape.text(keyword, f"keywords[{i}]")
    assert value is not None
    return Priority(
        value=value,
        name=shape.text(item.get("name"), "name", optional=True) or str(value),
        keyword=str(keywords[0]) if keywords else str(value),
        color=shape.text(item.get("color"), "color", optional=True) or "",
    )


def parse_user(item: Mapping[str, Any], *, availability: bool = False) -> User:
    """One ``user.search`` item. ``availability``: the attachment was asked for, so it must be there."""
    shape, item = _record("user.search", item, "user")
    phid = shape.phid(item.get("phid"), "phid")
    fields = shape.mapping(item.get("fields"), "fields")
    username = shape.text(fields.get("username"), "fields.username")
    if not username:
        shape.fail("fields.username", username, "a user name")
    roles = shape.items(fields.get("roles"), "fields.roles", optional=True)
    avail: Mapping[str, Any] = {}
    if availability:
        attachments = shape.mapping(item.get("attachments"), "attachments")
        avail = shape.mapping(attachments.get("availability"), "attachments.availability")
    value = shape.text(avail.get("value"), "attachments.availability.value", optional=True)
    assert phid is not None
    return User(
        phid=phid,
        username=username,
        real_name=shape.text(fields.get("realName"), "fields.realName", optional=True) or "",
        is_bot="bot" in roles or "system" in roles,
        is_disabled="disabled" in roles,
        availability=value or "available",
    )


def parse_column(item: Mapping[str, Any]) -> Column:
    shape, item = _record("project.column.search", item, "column")
    phid = shape.phid(item.get("phid"), "phid")
    fields = shape.mapping(item.get("fields"), "fields")
    project = shape.mapping(fields.get("project"), "fields.project")
    board_phid = shape.phid(project.get("phid"), "fields.project.phid")
    assert phid is not None and board_phid is not None
    return Column(
        phid=phid,
        name=shape.text(fields.get("name"), "fields.name", optional=True) or "",
        board_phid=board_phid,
        sequence=shape.integer(fields.get("sequence"), "fields.sequence", optional=True) or 0,
        hidden=shape.flag(fields.get("isHidden"), "fields.isHidden"),
        is_default=shape.flag(fields.get("isDefaultColumn"), "fields.isDefaultColumn"),
        proxy_phid=shape.phid(fields.get("proxyPHID") or None, "fields.proxyPHID", optional=True),
    )


def _points(shape: Shape, value: Any) -> float | None:
    # maniphest.search gives points as a string ("5", "0.5") or null.
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        shape.fail("fields.points", value, "a number, a numeric string or null")
    try:
        points = float(value)
    except (TypeError, ValueError):
        shape.fail("fields.points", value, "a number, a numeric string or null")
    if math.isnan(points) or math.isinf(points):
        shape.fail("fields.points", value, "a finite number")
    return points


def _task_columns(shape: Shape, columns_attachment: Mapping[str, Any]) -> dict[str, str]:
    # "boards" is [] (a PHP empty array) when the task is on no board.
    boards = shape.mapping(columns_attachment.get("boards"), "attachments.columns.boards", empty_list=True)
    columns: dict[str, str] = {}
    for board_phid, entry in boards.items():
        where = f"attachments.columns.boards.{board_phid}"
        shape.phid(board_phid, where)
        cols = shape.items(shape.mapping(entry, where).get("columns"), f"{where}.columns")
        if cols:
            col = shape.mapping(cols[0], f"{where}.columns[0]")
            columns[board_phid] = str(shape.phid(col.get("phid"), f"{where}.columns[0].phid"))
    return columns


def status_is_closed(statuses: Mapping[str, Status] | None, value: str, closed_at: datetime | None) -> bool:
    """The server's open/closed list decides; an unconfigured status (maniphest.edit accepts
    anything) shows as "Unknown Status": trust dateClosed then, since the list cannot say."""
    known = (statuses or {}).get(value)
    return known.closed if known is not None else closed_at is not None


def parse_task(item: Mapping[str, Any], statuses: Mapping[str, Status] | None = None, *,
               attachments: Iterable[str] = tuple(TASK_ATTACHMENTS), method: str = "maniphest.search") -> Task:
    """One ``maniphest.search`` item. ``attachments``: the ones asked for, which must be present
    (an answer without them would silently lose every task's board placement)."""
    if not isinstance(item, dict):
        Shape(method, "a task").fail("data[]", item, "an object")
    task_id = item.get("id")
    shape = Shape(method, f"T{task_id}" if isinstance(task_id, int) and not isinstance(task_id, bool)
                  else str(item.get("phid") or "a task"))
    task_id = shape.integer(task_id, "id")
    phid = shape.phid(item.get("phid"), "phid")
    fields = shape.mapping(item.get("fields"), "fields")
    wanted = set(attachments)
    attached = shape.mapping(item.get("attachments"), "attachments", empty_list=not wanted)
    for name in sorted(wanted):
        shape.mapping(attached.get(name), f"attachments.{name}")
    status = shape.mapping(fields.get("status"), "fields.status")
    status_value = shape.text(status.get("value"), "fields.status.value") or ""
    closed_at = shape.epoch(fields.get("dateClosed"), "fields.dateClosed", optional=True)
    is_closed = status_is_closed(statuses, status_value, closed_at)
    priority = shape.mapping(fields.get("priority"), "fields.priority")
    priority_value = shape.integer(priority.get("value"), "fields.priority.value")
    columns = _task_columns(shape, attached["columns"]) if "columns" in attached else {}
    projects = (shape.phids(attached["projects"].get("projectPHIDs"), "attachments.projects.projectPHIDs")
                if "projects" in attached else [])
    subscribers = (shape.phids(attached["subscribers"].get("subscriberPHIDs"),
                               "attachments.subscribers.subscriberPHIDs") if "subscribers" in attached else [])
    created = shape.epoch(fields.get("dateCreated"), "fields.dateCreated")
    description = shape.mapping(fields.get("description") or {}, "fields.description")
    assert task_id is not None and phid is not None and created is not None and priority_value is not None
    return Task(
        id=task_id,
        phid=phid,
        title=shape.text(fields.get("name"), "fields.name") or "",
        status=status_value,
        status_name=shape.text(status.get("name"), "fields.status.name", optional=True) or status_value,
        is_closed=bool(is_closed),
        priority=priority_value,
        priority_name=shape.text(priority.get("name"), "fields.priority.name", optional=True) or "",
        author_phid=shape.phid(fields.get("authorPHID"), "fields.authorPHID", optional=True),
        owner_phid=shape.phid(fields.get("ownerPHID"), "fields.ownerPHID", optional=True),
        points=_points(shape, fields.get("points")),
        created=created,
        modified=shape.epoch(fields.get("dateModified"), "fields.dateModified", optional=True) or created,
        closed_at=closed_at,
        description=shape.text(description.get("raw"), "fields.description.raw", optional=True) or "",
        project_phids=tuple(projects),
        subscriber_phids=tuple(subscribers),
        columns=columns,
        subtype=shape.text(fields.get("subtype"), "fields.subtype", optional=True) or "default",
    )


# --------------------------------------------------------------------------------------------
# Fetching


def fetch_statuses(client: ConduitClient) -> tuple[Status, ...]:
    return tuple(parse_status(i) for i in client.search("maniphest.status.search"))


def fetch_priorities(client: ConduitClient) -> tuple[Priority, ...]:
    return tuple(parse_priority(i) for i in client.search("maniphest.priority.search"))


def _batches(items: list[str], size: int = PAGE_LIMIT) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def fetch_users(client: ConduitClient, *, phids: Iterable[str] = (), usernames: Iterable[str] = ()) -> dict[str, User]:
    """Users by PHID and/or username (unknown ones are silently absent, as on the server)."""
    users: dict[str, User] = {}
    for key, values in (("phids", sorted(set(phids))), ("usernames", sorted(set(usernames)))):
        for batch in _batches([v for v in values if v]):
            for item in client.search("user.search", constraints={key: batch}, attachments={"availability": True}):
                user = parse_user(item, availability=True)
                users[user.phid] = user
    return users


def parse_project(item: Any) -> dict[str, Any]:
    """One ``project.search`` item: a PHID and ``fields`` with a string name are relied on."""
    shape, record = _record("project.search", item, "project")
    shape.phid(record.get("phid"), "phid")
    fields = shape.mapping(record.get("fields"), "fields")
    shape.text(fields.get("name"), "fields.name")
    shape.text(fields.get("slug"), "fields.slug", optional=True)
    return dict(record)



def project_members(item: Any) -> set[str]:
    """The member PHIDs of one ``project.search`` item asked for with ``attachments: {members: true}``."""
    shape = Shape("project.search", str(item.get("phid")) if isinstance(item, dict) else "a project")
    record = shape.mapping(item, "data[]")
    attachment = shape.mapping(shape.mapping(record.get("attachments"), "attachments").get("members"),
                               "attachments.members")
    return {str(shape.phid(shape.mapping(member, f"attachments.members.members[{i}]").get("phid"),
                           f"attachments.members.members[{i}].phid"))
            for i, member in enumerate(shape.items(attachment.get("members"), "attachments.members.members"))}


def resolve_projects(client: ConduitClient, wanted: list[tuple[str, str]], file: str, *,
                     members: bool = False) -> dict[str, dict[str, Any]]:
    """(key, identifier) pairs -> identifier -> project record. Identifiers: PHID, #hashtag or name.
    ``members``: the records carry the members attachment too (:func:`project_members`)."""
    found: dict[str, dict[str, Any]] = {}
    phids = [ident for _, ident in wanted if ident.startswith("PHID-PROJ-")]
    slugs = [ident.lstrip("#") for _, ident in wanted if ident.startswith("#")]
    extra: dict[str, Any] = {"attachments": {"members": True}} if members else {}
    if phids:
        for item in client.search("project.search", constraints={"phids": phids}, **extra):
            project = parse_project(item)
            found[project["phid"]] = project
    if slugs:
        result = client.call("project.search", constraints={"slugs": slugs}, limit=PAGE_LIMIT, **extra)
        shape = Shape("project.search", "result")
        answer = shape.mapping(result, "result")
        by_phid = {p["phid"]: p for p in map(parse_project, shape.items(answer.get("data"), "data"))}
        maps = shape.mapping(answer.get("maps") or {}, "maps", empty_list=True)
        slug_map = shape.mapping(maps.get("slugMap") or {}, "maps.slugMap", empty_list=True)
        for slug in slugs:
            entry = slug_map.get(slug)
            if isinstance(entry, dict) and entry.get("projectPHID") in by_phid:
                found["#" + slug] = by_phid[entry["projectPHID"]]
    names = list(dict.fromkeys(ident for _, ident in wanted if not ident.startswith(("PHID-PROJ-", "#"))))
    if names:
        # One call for every board named by its name (a cold sync used to spend one per board):
        # a project's hashtag is its name normalised, and the server normalises the slugs it is
        # given. Only an exact name match counts; a renamed project falls back to the name search.
        for batch in _batches(names):
            for item in client.search("project.search", constraints={"slugs": batch}, **extra):
                project = parse_project(item)
                name = str(project["fields"].get("name", "")).casefold()
                for ident in batch:
                    if ident.casefold() == name and ident not in found:
                        found[ident] = project
    for key, ident in wanted:
        if ident.startswith(("PHID-PROJ-", "#")) or ident in found:
            continue
        candidates = [parse_project(c) for c in client.search("project.search", constraints={"name": ident}, **extra)]
        exact = [c for c in candidates if str(c["fields"].get("name", "")).casefold() == ident.casefold()]
        if exact:
            found[ident] = exact[0]
        elif candidates:
            names = ", ".join(sorted(str(c["fields"].get("name")) for c in candidates)[:10])
            raise ConfigError(file, key, f"no project named {ident!r}; similar projects: {names}")
    for key, ident in wanted:
        if ident not in found:
            raise ConfigError(file, key, f"no project {ident!r} on the server; give its exact name, #hashtag or PHID")
    return found


def resolve_boards(client: ConduitClient, config: Config, members: dict[str, set[str]] | None = None) -> list[Board]:
    """Resolve the configured boards and column roles to PHIDs; unknown names are config errors.
    ``members``: filled with each board project's member PHIDs (asked for in the same call)."""
    file = str(config.path) if config.path else "<config>"
    projects = resolve_projects(client, [(f"{b.key}.project", b.project) for b in config.boards], file,
                                members=members is not None)
    if members is not None:
        members.update({p["phid"]: project_members(p) for p in projects.values()})
    board_phids = [projects[b.project]["phid"] for b in config.boards]
    columns_by_board: dict[str, list[Column]] = {phid: [] for phid in board_phids}
    for item in client.search("project.column.search", constraints={"projects": board_phids}):
        col = parse_column(item)
        if col.board_phid in columns_by_board:
            columns_by_board[col.board_phid].append(col)
    boards = []
    for bc in config.boards:
        project = projects[bc.project]
        cols = sorted(columns_by_board[project["phid"]], key=lambda c: (c.sequence, c.phid))
        if not cols:
            raise ConfigError(file, f"{bc.key}.project", f"project {project['fields']['name']!r} has no workboard; "
                              "open its workboard once in the web UI to create one, or remove it from boards")
        boards.append(_assign_roles(bc, project, cols, file))
    return boards


def _assign_roles(bc: BoardConfig, project: Mapping[str, Any], cols: list[Column], file: str) -> Board:
    name = str(project["fields"].get("name") or project["phid"])
    by_name = {c.name.casefold(): c for c in cols}
    roles: dict[str, str] = {}
    for role, names in bc.columns.items():
        for col_name in names:
            col = by_name.get(col_name.casefold())
            if col is None:
                real = ", ".join(c.name + (" (hidden)" if c.hidden else "") for c in cols)
                raise ConfigError(file, f"{bc.key}.columns.{role}",
                                  f"board {name!r} has no column named {col_name!r}; its columns are: {real}")
            if col.phid in roles and roles[col.phid] != role:
                raise ConfigError(file, f"{bc.key}.columns.{role}",
                                  f"column {col.name!r} already has the role {roles[col.phid]!r}; give each column one role")
            roles[col.phid] = role
    cols = [replace(c, role=roles.get(c.phid)) for c in cols]
    return Board(phid=project["phid"], name=name, slug=project["fields"].get("slug"), columns=tuple(cols))


def fetch_tasks(
    client: ConduitClient,
    column_phids: Iterable[str],
    *,
    statuses: Mapping[str, Status] | None = None,
    open_only: bool = False,
    modified_since: datetime | None = None,
    proxy_columns: Mapping[str, Column] | None = None,
) -> dict[str, Task]:
    """Every task in the given columns: one paged ``maniphest.search`` (ceil(N/100) calls)."""
    constraints: dict[str, Any] = {"columnPHIDs": sorted(set(column_phids))}
    if open_only and statuses:
        constraints["statuses"] = sorted(s.value for s in statuses.values() if not s.closed)
    if modified_since is not None:
        constraints["modifiedStart"] = int(modified_since.timestamp())
    tasks: dict[str, Task] = {}
    for item in client.search("maniphest.search", constraints=constraints, attachments=TASK_ATTACHMENTS):
        task = parse_task(item, statuses)
        if proxy_columns:
            task = place_in_proxy_columns(task, proxy_columns)
        tasks[task.phid] = task
    return tasks


def place_in_proxy_columns(task: Task, proxy_columns: Mapping[str, Column]) -> Task:
    """A task tagged only with a milestone is not reported on the parent board: put it in the proxy column."""
    extra = {}
    for project_phid in task.project_phids:
        col = proxy_columns.get(project_phid)
        if col is not None and col.board_phid not in task.columns:
            extra[col.board_phid] = col.phid
    if not extra:
        return task
    return replace(task, columns={**task.columns, **extra})


@dataclass
class BoardData:
    """What ``load_boards`` returns: boards and tasks plus the lookups the server defines."""

    boards: list[Board]
    tasks: dict[str, Task]
    statuses: tuple[Status, ...]
    priorities: tuple[Priority, ...]


def load_structure(client: ConduitClient, config: Config, members: dict[str, set[str]] | None = None,
                   ) -> tuple[list[Board], tuple[Status, ...], tuple[Priority, ...]]:
    """What every reader needs before tasks: the capability check, the boards with roles
    resolved to PHIDs, and the server's statuses and priorities.

    The method list, the statuses and the priorities do not depend on the boards: they are asked
    for while the boards are resolved (three round trips fewer before a cold sync's first page).
    Errors keep the order of the calls: a missing method first, then the boards', the statuses',
    the priorities'."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="structure") as pool:
        methods = pool.submit(client.require)
        statuses = pool.submit(fetch_statuses, client)
        priorities = pool.submit(fetch_priorities, client)
        try:
            boards = resolve_boards(client, config, members)
        except BaseException:
            methods.result()  # a server without our methods says so before anything else
            raise
        methods.result()
        return boards, statuses.result(), priorities.result()


def load_boards(client: ConduitClient, config: Config, *, roles: Iterable[str] | None = None,
                open_only: bool = False) -> BoardData:
    """Boards and their tasks. With ``roles``, fetch only the tasks in columns with those roles."""
    boards, statuses, priorities = load_structure(client, config)
    wanted_roles = set(roles) if roles is not None else None
    cols = [c for b in boards for c in b.columns if wanted_roles is None or c.role in wanted_roles]
    proxies = {c.proxy_phid: c for c in cols if c.proxy_phid}
    tasks = fetch_tasks(client, [c.phid for c in cols], statuses={s.value: s for s in statuses},
                        open_only=open_only, proxy_columns=proxies) if cols else {}
    return BoardData(boards=boards, tasks=tasks, statuses=statuses, priorities=priorities)
