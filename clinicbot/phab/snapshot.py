"""Build a :class:`Snapshot` from the server: boards, tasks, users, timelines, team.

This is where the board layer, the history layer and the config meet; everything downstream
(checks, metrics, reports) receives the finished Snapshot and does no I/O.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict
from datetime import datetime
from typing import Any, Iterable, Mapping

from clinicbot.phab.boards import (
    BoardData,
    _batches,
    fetch_users,
    load_boards,
    parse_project,
    project_members,
    resolve_projects,
)
from clinicbot.phab.conduit import ConduitClient
from clinicbot.config import Config
from clinicbot.model import Board, Shape, Snapshot, User

log = logging.getLogger(__name__)

# ``lookups`` below is a clinicbot.state.lookups.Lookups (get/put, user/put_user, is_unknown/put_unknown);
# typed Any: phab/ does not import state/.
Lookups = Any


def whoami(client: ConduitClient) -> dict:
    """``user.whoami``: the bot's own account. Its PHID and user name are relied on (they keep the
    bot's own actions out of activity), so nulls or other types there are a ConduitShapeError."""
    result = client.call("user.whoami")
    shape = Shape("user.whoami", "result")
    me = shape.mapping(result, "result")
    shape.phid(me.get("phid"), "phid")
    if not shape.text(me.get("userName"), "userName"):
        shape.fail("userName", me.get("userName"), "the bot's user name")
    return dict(me)


def team_usernames(config: Config, extra: Iterable[str] = ()) -> set[str]:
    return set(config.get("team.members")) | set(extra)


def team_projects(client: ConduitClient, config: Config, data: BoardData, lookups: Lookups | None = None,
                  known: Mapping[str, set[str]] | None = None) -> tuple[frozenset[str], set[str]]:
    """The team's projects (``team.projects``, default the watched boards) and their members' PHIDs.
    ``known``: project PHID -> members already asked for (the sync's board resolution)."""
    names = list(config.get("team.projects"))
    key = json.dumps([names, sorted(b.phid for b in data.boards)])
    kept = lookups.get("team") if lookups is not None else None
    if isinstance(kept, dict) and kept.get("key") == key:
        return frozenset(kept["projects"]), set(kept["members"])
    if names:
        file = str(config.path) if config.path else "<config>"
        found = resolve_projects(client, [(f"team.projects[{i}]", n) for i, n in enumerate(names)], file)
        phids = frozenset(found[n]["phid"] for n in names)
    else:
        phids = frozenset(b.phid for b in data.boards)
    members: set[str] = set()
    if known is not None and phids <= set(known):
        members = set().union(*(known[p] for p in phids))
    else:
        for item in client.search("project.search", constraints={"phids": sorted(phids)}, attachments={"members": True}):
            members |= project_members(item)
    if lookups is not None:
        lookups.put("team", {"key": key, "projects": sorted(phids), "members": sorted(members)})
    return phids, members


def known_users(client: ConduitClient, lookups: Lookups | None, *, phids: Iterable[str]) -> dict[str, User]:
    """``fetch_users`` by PHID through the fixed lookups: only users not kept (or kept too long) are
    asked for, and a PHID the server did not know is not asked for again until it expires."""
    if lookups is None:
        return fetch_users(client, phids=phids)
    users: dict[str, User] = {}
    need = []
    for phid in sorted(set(p for p in phids if p)):
        fields = lookups.user(phid)
        if fields is not None:
            users[phid] = User(**fields)
        elif not lookups.is_unknown(phid):
            need.append(phid)
    if need:
        fetched = fetch_users(client, phids=need)
        for user in fetched.values():
            lookups.put_user(user.phid, asdict(user))
        for phid in need:
            if phid not in fetched:
                lookups.put_unknown(phid)
        users.update(fetched)
    return users


class LookupFiller:
    """The fixed lookups a full or reconcile sync fills, so the first job after it asks for none:
    the bot's account and the team projects with their members (asked in a thread while the task
    pages arrive), then, at the end, the users it met (authors, owners, actors, members, the bot).

    It is a cache: when a lookup fails, :meth:`finish` logs one line and returns None, and the
    next job asks for it itself (and reports the error if it persists)."""

    def __init__(self, client: ConduitClient, config: Config, boards: list[Board], lookups: Lookups,
                 members: Mapping[str, set[str]] | None = None):
        self.client, self.config, self.lookups, self.members = client, config, lookups, members
        self.phids: set[str] = set()
        self.error: Exception | None = None
        data = BoardData(boards=boards, tasks={}, statuses=(), priorities=())
        self.thread = threading.Thread(target=self._fixed, args=(data,), name="sync-lookups", daemon=True)
        self.thread.start()

    def _fixed(self, data: BoardData) -> None:
        try:
            self.lookups.put("whoami", whoami(self.client))
            team_projects(self.client, self.config, data, self.lookups, self.members)
        except Exception as exc:  # noqa: BLE001  (a cache: the job asks again and reports)
            self.error = exc

    def note(self, page: Iterable[Any]) -> None:
        """The authors and owners of one page of raw ``maniphest.search`` items."""
        for item in page:
            fields = item.get("fields") if isinstance(item, dict) else None
            if isinstance(fields, dict):
                self.phids.update(v for v in (fields.get("authorPHID"), fields.get("ownerPHID"))
                                  if isinstance(v, str) and v.startswith("PHID-USER-"))

    def finish(self, actors: Iterable[str]) -> Lookups | None:
        self.thread.join()
        try:
            if self.error is not None:
                raise self.error
            team, me = self.lookups.get("team"), self.lookups.get("whoami")
            known_users(self.client, self.lookups,
                        phids=self.phids | set(actors) | set(team["members"]) | {me.get("phid")})
        except Exception as exc:  # noqa: BLE001
            log.info("the fixed lookups were not filled (the next job asks for them): %s", exc)
            return None
        return self.lookups


def project_names(client: ConduitClient, lookups: Lookups | None, phids: Iterable[str]) -> dict[str, str]:
    """Project names by PHID (the tags of tasks an agenda lists): kept a day in the fixed lookups;
    only those not kept are asked for (``project.search``, 100 a call)."""
    names: dict[str, str] = {}
    need = []
    for phid in sorted(set(phids)):
        kept = lookups.get(f"project {phid}") if lookups is not None else None
        if isinstance(kept, str):
            names[phid] = kept
        elif lookups is None or not lookups.is_unknown(phid):
            need.append(phid)
    for batch in _batches(need):
        for item in client.search("project.search", constraints={"phids": batch}):
            project = parse_project(item)
            names[project["phid"]] = str(project["fields"]["name"])
    if lookups is not None:
        for phid in need:
            if phid in names:
                lookups.put(f"project {phid}", names[phid])
            else:
                lookups.put_unknown(phid)
    return names


def people_usernames(config: Config, bot_username: str, member_usernames: Iterable[str] = (),
                     also_fetch: Iterable[str] = ()) -> list[str]:
    """Who can be pinged, asked for by user name with their availability: the team's members (config
    and rotation), the ignored users, ``also_fetch`` (the rotation's manager...) and the bot."""
    return sorted(team_usernames(config, member_usernames) | set(config.get("team.ignored_users"))
                  | set(also_fetch) | {bot_username})


class PeopleAhead:
    """:func:`people` asked for in a thread while the job's sync waits for its own call: a job whose
    kept availability is too old makes its two round trips at once. :meth:`finish` keeps the answer
    in the lookups (where :func:`people` finds it) or raises what the call raised."""

    def __init__(self, client: ConduitClient, usernames: list[str]):
        self.client, self.usernames = client, usernames
        self.users: dict[str, User] = {}
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="people-ahead", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.users = fetch_users(self.client, usernames=self.usernames)
        except BaseException as exc:  # noqa: BLE001  (raised in the job's thread by finish)
            self.error = exc

    def join(self) -> None:
        self.thread.join()

    def finish(self, lookups: Lookups | None) -> None:
        self.join()
        if self.error is not None:
            raise self.error
        if lookups is not None:
            keep_people(lookups, self.usernames, self.users)


def keep_people(lookups: Lookups, usernames: list[str], users: Mapping[str, User]) -> None:
    lookups.put_people(usernames, [asdict(u) for u in users.values()])
    for user in users.values():
        lookups.put_user(user.phid, asdict(user))


def people(client: ConduitClient, lookups: Lookups | None, usernames: list[str]) -> dict[str, User]:
    """The users (with their availability) by user name: kept ones while fresh, else one call."""
    kept = lookups.people(usernames) if lookups is not None else None
    if kept is not None:
        return {fields["phid"]: User(**fields) for fields in kept}
    users = fetch_users(client, usernames=usernames)
    if lookups is not None:
        keep_people(lookups, usernames, users)
    return users


def build_snapshot(
    client: ConduitClient,
    config: Config,
    now: datetime,
    *,
    member_usernames: Iterable[str] = (),
    also_fetch: Iterable[str] = (),
    roles: Iterable[str] | None = None,
    open_only: bool = False,
    with_timelines: bool = True,
    data: BoardData | None = None,
    timelines: Mapping | None = None,
    sightings: Mapping | None = None,
    actors: Iterable[str] | None = None,
    lookups: Lookups | None = None,
) -> Snapshot:
    """Fetch what checks and reports need. ``member_usernames`` usually comes from the rotation.

    ``lookups``: the fixed lookups (bot account, team projects, users) kept from earlier runs; what
    is missing or expired is fetched and put there (the caller saves them). ``actors``: who acted
    in the timelines, when known without reading every timeline (the sync cache keeps them)."""
    data = data or load_boards(client, config, roles=roles, open_only=open_only)
    me = (lookups.get("whoami") if lookups is not None else None) or whoami(client)
    if lookups is not None and lookups.get("whoami") is None:
        lookups.put("whoami", me)
    bot_username = config.get("phabricator.bot_username") or me.get("userName")
    ignored = set(config.get("team.ignored_users"))
    members = team_usernames(config, member_usernames)

    project_phids, project_members = team_projects(client, config, data, lookups)
    referenced = {me.get("phid")} | project_members
    for task in data.tasks.values():
        referenced.update(p for p in (task.author_phid, task.owner_phid) if p)
    # The people named in the config and the rotation: their availability decides who is pinged,
    # so they are kept only minutes (lookups.PEOPLE_MINUTES). Everyone else (authors, owners, actors) is kept a day.
    users = people(client, lookups, people_usernames(config, bot_username, member_usernames, also_fetch))
    users.update(known_users(client, lookups, phids=[p for p in referenced if p and p not in users]))
    if with_timelines and timelines is None:
        from clinicbot.phab.history import fetch_timelines

        timelines = fetch_timelines(client, [(t.id, t.phid) for t in data.tasks.values()])
    # Anyone who acted in a timeline but is not known yet (commenters, movers): one more batch.
    if actors is None and timelines:
        actors = {e.author_phid for tl in timelines.values() for e in tl.events if e.author_phid}
    missing = sorted(p for p in set(actors or ()) - set(users) if p.startswith("PHID-USER-"))
    if missing:
        users.update(known_users(client, lookups, phids=missing))
    by_name = {u.username: u.phid for u in users.values()}
    bot_phid = by_name.get(bot_username) or me.get("phid")
    member_phids = {by_name[m] for m in members if m in by_name}
    if not config.get("team.members"):
        # Default: the rotation's members plus the team projects' members.
        member_phids |= project_members
    return Snapshot(
        now=now,
        boards={b.phid: b for b in data.boards},
        tasks=data.tasks,
        users=users,
        timelines=timelines if timelines is not None else {},  # type: ignore[arg-type]  # a Mapping (lazy from the cache)
        statuses=data.statuses,
        priorities=data.priorities,
        team_project_phids=project_phids,
        team_member_phids=frozenset(member_phids - {bot_phid}),
        bot_phid=bot_phid,
        ignored_user_phids=frozenset(by_name[u] for u in ignored if u in by_name),
        sightings=sightings if sightings is not None else {},  # a Mapping (lazy from the cache)
    )


def rotation_usernames(rotation: Any) -> tuple[list[str], list[str]]:
    """(engineers, others) named by the rotation. Engineers' answers count as the team's; the
    manager and product manager are looked up too (they can be pinged) but are not responders."""
    if rotation is None:
        return [], []
    engineers = list(getattr(rotation, "members", {}) or {})
    others = []
    for role in ("manager", "product_manager"):
        person = getattr(rotation, role, None)
        if person is not None:
            others.append(person if isinstance(person, str) else person.username)
    return engineers, others
