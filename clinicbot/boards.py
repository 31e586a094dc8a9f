"""The board model: projects, columns, tasks, users, priorities and statuses from Conduit.

Pure parsers (``parse_*``) turn one Conduit record into plain data and are tested against the
recordings; the ``fetch_*``/``load_*`` functions make the calls, as few as possible: one paged
``maniphest.search`` over the ``columnPHIDs`` of every watched board (a task on two boards
comes once), users fetched by PHID in batches of 100.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Iterable, Mapping

from clinicbot.conduit import PAGE_LIMIT, ConduitClient
from clinicbot.config import BoardConfig, Config
from clinicbot.errors import ConduitProtocolError, ConfigError
from clinicbot.model import Board, Column, Priority, Status, Task, User, from_epoch

log = logging.getLogger(__name__)

TASK_ATTACHMENTS = {"columns": True, "projects": True, "subscribers": True}


# --------------------------------------------------------------------------------------------
# Parsers: one Conduit record -> plain data


def parse_status(item: Mapping[str, Any]) -> Status:
    return Status(value=str(item["value"]), name=str(item.get("name") or item["value"]), closed=bool(item.get("closed")))


def parse_priority(item: Mapping[str, Any]) -> Priority:
    keywords = item.get("keywords") or []
    return Priority(
        value=int(item["value"]),
        name=str(item.get("name") or item["value"]),
        keyword=str(keywords[0]) if keywords else str(item["value"]),
        color=str(item.get("color") or ""),
    )


def parse_user(item: Mapping[str, Any]) -> User:
    fields = item.get("fields") or {}
    roles = fields.get("roles") or []
    avail = (item.get("attachments") or {}).get("availability") or {}
    return User(
        phid=item["phid"],
        username=str(fields.get("username") or ""),
        real_name=str(fields.get("realName") or ""),
        is_bot="bot" in roles or "system" in roles,
        is_disabled="disabled" in roles,
        availability=str(avail.get("value") or "available"),
        available_again=from_epoch(avail.get("until")),
    )


def parse_column(item: Mapping[str, Any]) -> Column:
    fields = item["fields"]
    return Column(
        phid=item["phid"],
        name=str(fields.get("name") or ""),
        board_phid=fields["project"]["phid"],
        sequence=int(fields.get("sequence") or 0),
        hidden=bool(fields.get("isHidden")),
        is_default=bool(fields.get("isDefaultColumn")),
        proxy_phid=fields.get("proxyPHID") or None,
    )


def _points(value: Any) -> float | None:
    # maniphest.search gives points as a string ("5", "0.5") or null.
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def parse_task(item: Mapping[str, Any], statuses: Mapping[str, Status] | None = None) -> Task:
    fields = item["fields"]
    attachments = item.get("attachments") or {}
    status = fields.get("status") or {}
    status_value = str(status.get("value") or "")
    known = (statuses or {}).get(status_value)
    # An unconfigured status (maniphest.edit accepts anything) shows as "Unknown Status":
    # trust dateClosed then, since the server's own open/closed list cannot say.
    is_closed = known.closed if known is not None else fields.get("dateClosed") is not None
    priority = fields.get("priority") or {}
    boards = (attachments.get("columns") or {}).get("boards") or {}
    columns: dict[str, str] = {}
    if isinstance(boards, dict):  # [] (a PHP empty array) when the task is on no board
        for board_phid, entry in boards.items():
            cols = (entry or {}).get("columns") or []
            if cols:
                columns[board_phid] = cols[0]["phid"]
    projects = (attachments.get("projects") or {}).get("projectPHIDs") or []
    subscribers = (attachments.get("subscribers") or {}).get("subscriberPHIDs") or []
    created = from_epoch(fields.get("dateCreated"))
    if created is None:
        raise ConduitProtocolError("maniphest.search", f"task {item.get('id')} has no dateCreated")
    return Task(
        id=int(item["id"]),
        phid=item["phid"],
        title=str(fields.get("name") or ""),
        status=status_value,
        status_name=str(status.get("name") or status_value),
        is_closed=bool(is_closed),
        priority=int(priority.get("value") or 0),
        priority_name=str(priority.get("name") or ""),
        author_phid=fields.get("authorPHID"),
        owner_phid=fields.get("ownerPHID"),
        points=_points(fields.get("points")),
        created=created,
        modified=from_epoch(fields.get("dateModified")) or created,
        closed_at=from_epoch(fields.get("dateClosed")),
        description=str((fields.get("description") or {}).get("raw") or ""),
        project_phids=tuple(projects),
        subscriber_phids=tuple(subscribers),
        columns=columns,
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
                user = parse_user(item)
                users[user.phid] = user
    return users


def resolve_projects(client: ConduitClient, wanted: list[tuple[str, str]], file: str) -> dict[str, dict[str, Any]]:
    """(key, identifier) pairs -> identifier -> project record. Identifiers: PHID, #hashtag or name."""
    found: dict[str, dict[str, Any]] = {}
    phids = [ident for _, ident in wanted if ident.startswith("PHID-PROJ-")]
    slugs = [ident.lstrip("#") for _, ident in wanted if ident.startswith("#")]
    if phids:
        for item in client.search("project.search", constraints={"phids": phids}):
            found[item["phid"]] = item
    if slugs:
        result = client.call("project.search", constraints={"slugs": slugs}, limit=PAGE_LIMIT)
        by_phid = {item["phid"]: item for item in result.get("data", [])}
        slug_map = (result.get("maps") or {}).get("slugMap") or {}
        for slug in slugs:
            entry = slug_map.get(slug)
            if isinstance(entry, dict) and entry.get("projectPHID") in by_phid:
                found["#" + slug] = by_phid[entry["projectPHID"]]
    for key, ident in wanted:
        if ident.startswith(("PHID-PROJ-", "#")):
            continue
        candidates = list(client.search("project.search", constraints={"name": ident}))
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


def resolve_boards(client: ConduitClient, config: Config) -> list[Board]:
    """Resolve the configured boards and column roles to PHIDs; unknown names are config errors."""
    file = str(config.path) if config.path else "<config>"
    projects = resolve_projects(client, [(f"{b.key}.project", b.project) for b in config.boards], file)
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


def load_structure(client: ConduitClient, config: Config) -> tuple[list[Board], tuple[Status, ...], tuple[Priority, ...]]:
    """What every reader needs before tasks: the capability check, the boards with roles
    resolved to PHIDs, and the server's statuses and priorities."""
    client.require()
    return resolve_boards(client, config), fetch_statuses(client), fetch_priorities(client)


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
