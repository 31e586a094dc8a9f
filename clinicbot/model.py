"""Plain data that flows from the board layer to checks, metrics and reports.

Everything here is immutable-ish plain data: no I/O, no clock, no config. Projects,
columns and users are identified by PHID; names are for display only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, NoReturn, Self, overload

from clinicbot.errors import ConduitShapeError
from clinicbot.timeline import Timeline


# Column roles a config can give to a board's columns. Checks and reports look columns
# up by role, never by name, so a team whose column is called "Needs Triage" still works.
COLUMN_ROLES = (
    "inbox",
    "triage_meeting_inbox",
    "ready",
    "doing",
    "blocked",
    "review_needed",
    "review_in_progress",
    "waiting_for_review",
    "waiting_for_deployment",
    "discussing",
    "done",
    "other",
)


def from_epoch(value: int | str | None) -> datetime | None:
    """Conduit epoch (int, or str in legacy methods) -> aware UTC datetime."""
    if value is None or value == "":
        return None
    return datetime.fromtimestamp(int(value), tz=timezone.utc)


@overload
def iso(at: datetime) -> str: ...
@overload
def iso(at: None) -> None: ...
def iso(at: datetime | None) -> str | None:
    """The one time format clinicbot writes (ledger, JSON output, reports): ISO 8601 in UTC with a
    ``Z`` (``2026-11-22T09:00:00Z``), whatever zone ``at`` is in; a naive time is taken as UTC
    (an aware one is converted: never the host's zone). None stays None."""
    if at is None:
        return None
    at = at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)
    return at.isoformat().replace("+00:00", "Z")


def parse_iso(value: str | None) -> datetime | None:
    """An ISO 8601 time (``Z``, an offset, or naive = UTC) -> aware datetime; None/"" -> None."""
    if not value:
        return None
    dt = datetime.fromisoformat(value)
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def json_default(value: Any) -> Any:
    """``json.dumps(..., default=json_default)`` for clinicbot's JSON output: times as :func:`iso`
    (UTC, ``Z``), sets and tuples as lists; anything else is a TypeError naming its type (a value
    that reaches JSON unconverted is a bug to fix where it is made, not to paper over with str())."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class Closing:
    """A resource used in a ``with`` block: leaving it calls :meth:`close`."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Shape:
    """Reads the fields of one Conduit object, checking the shapes clinicbot relies on.

    A wrong shape raises :class:`ConduitShapeError` naming the method, the object (``T12``, a
    PHID, ``result``) and the field: never a silent default that would shrink a result.
    """

    def __init__(self, method: str, obj: str):
        self.method = method
        self.obj = obj

    def fail(self, field: str, got: Any, expected: str) -> NoReturn:
        raise ConduitShapeError(self.method, self.obj, field, got, expected)

    def mapping(self, value: Any, field: str, *, empty_list: bool = False) -> Mapping[str, Any]:
        """An object; ``empty_list``: PHP encodes an empty map as ``[]``, accept it as ``{}``."""
        if isinstance(value, dict):
            return value
        if empty_list and value == []:
            return {}
        self.fail(field, value, "an object")

    def text(self, value: Any, field: str, *, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str):
            self.fail(field, value, "a string" + (" or null" if optional else ""))
        return value

    def phid(self, value: Any, field: str, *, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value.startswith("PHID-"):
            self.fail(field, value, "a PHID" + (" or null" if optional else ""))
        return value

    def integer(self, value: Any, field: str, *, optional: bool = False) -> int | None:
        """An int, or a string of digits (legacy methods send numbers as strings)."""
        if value is None and optional:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lstrip("-").isdigit():
            return int(value)
        self.fail(field, value, "a whole number" + (" or null" if optional else ""))

    def epoch(self, value: Any, field: str, *, optional: bool = False) -> datetime | None:
        """A Conduit date: epoch seconds (int, or a digit string in legacy methods)."""
        if value is None and optional:
            return None
        if (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value.isdigit()):
            try:
                return datetime.fromtimestamp(int(value), tz=timezone.utc)
            except (OverflowError, OSError, ValueError):
                pass
        self.fail(field, value, "a date as epoch seconds" + (" or null" if optional else ""))

    def flag(self, value: Any, field: str) -> bool:
        """A boolean; a missing key (None) is False."""
        if value is None or isinstance(value, bool):
            return bool(value)
        self.fail(field, value, "true or false")

    def items(self, value: Any, field: str, *, optional: bool = False) -> list[Any]:
        if value is None and optional:
            return []
        if not isinstance(value, list):
            self.fail(field, value, "a list")
        return value

    def phids(self, value: Any, field: str) -> list[str]:
        out = self.items(value, field)
        for i, item in enumerate(out):
            self.phid(item, f"{field}[{i}]")
        return out


@dataclass(frozen=True)
class Person:
    """Someone clinicbot names or pings: Phabricator username, display name, email, chat handle.

    The one type for people: a rotation member (``rotation.Member``), a person in a report, and (with
    a PHID) a recipient of a delivery (``delivery.outbox.Recipient``)."""

    username: str
    name: str = ""
    email: str = ""
    chat: str = ""

    @property
    def display(self) -> str:
        return f"{self.name} ({self.username})" if self.name else self.username

    def to_dict(self) -> dict[str, str]:
        return {"username": self.username, "name": self.name or self.username, "email": self.email, "chat": self.chat}


@dataclass(frozen=True)
class User:
    phid: str
    username: str
    real_name: str = ""
    is_bot: bool = False
    is_disabled: bool = False
    # user.search availability: "available", "busy" or "away".
    availability: str = "available"

    @property
    def is_away(self) -> bool:
        return self.availability == "away"


@dataclass(frozen=True)
class Status:
    value: str
    name: str
    closed: bool


@dataclass(frozen=True)
class Priority:
    value: int
    name: str
    keyword: str  # first keyword: what maniphest.edit accepts
    color: str = ""


@dataclass(frozen=True)
class Column:
    phid: str
    name: str
    board_phid: str
    sequence: int
    hidden: bool = False
    is_default: bool = False
    proxy_phid: str | None = None  # milestone/subproject proxy column
    role: str | None = None  # from config; None when the config gives this column no role


@dataclass(frozen=True)
class Board:
    phid: str
    name: str
    slug: str | None
    columns: tuple[Column, ...]  # ordered by sequence

    def column(self, phid: str) -> Column | None:
        for col in self.columns:
            if col.phid == phid:
                return col
        return None

    def by_role(self, role: str) -> list[Column]:
        return [c for c in self.columns if c.role == role]


@dataclass(frozen=True)
class Task:
    id: int
    phid: str
    title: str
    status: str
    status_name: str
    is_closed: bool
    priority: int
    priority_name: str
    author_phid: str | None
    owner_phid: str | None
    points: float | None
    created: datetime
    modified: datetime
    closed_at: datetime | None = None
    description: str = ""
    project_phids: tuple[str, ...] = ()
    subscriber_phids: tuple[str, ...] = ()
    # board PHID -> column PHID, for every board the columns attachment reported.
    columns: Mapping[str, str] = field(default_factory=dict)
    subtype: str = "default"  # maniphest.search fields.subtype (check exemptions may name it)

    @property
    def monogram(self) -> str:
        return f"T{self.id}"

    @property
    def is_open(self) -> bool:
        return not self.is_closed

    def column_on(self, board_phid: str) -> str | None:
        return self.columns.get(board_phid)


@dataclass
class Snapshot:
    """What the boards looked like at ``now``: the single input of checks, metrics and reports."""

    now: datetime
    boards: dict[str, Board]  # board PHID -> Board (watched boards only)
    tasks: dict[str, Task]  # task PHID -> Task (tasks on watched boards / team projects)
    users: dict[str, User] = field(default_factory=dict)  # user PHID -> User
    timelines: dict[str, Timeline] = field(default_factory=dict)  # task PHID -> Timeline
    statuses: tuple[Status, ...] = ()
    priorities: tuple[Priority, ...] = ()
    team_project_phids: frozenset[str] = frozenset()
    team_member_phids: frozenset[str] = frozenset()  # whose answers count as a team response
    bot_phid: str | None = None  # clinicbot's own account: never activity, never a response
    ignored_user_phids: frozenset[str] = frozenset()  # other bots: never activity, never a response
    # column PHIDs whose entry time was only observed by clinicbot (no structured column
    # transactions on this server): times are approximate and output says so.
    approximate_columns: frozenset[str] = frozenset()
    # (task PHID, board PHID, column PHID) -> first time clinicbot saw the task there (from the
    # sync cache); what column entry times fall back to on servers without structured moves.
    sightings: Mapping[tuple[str, str, str], datetime] = field(default_factory=dict)
    # Project names/#hashtags the config names outside ``boards`` (check exemptions) -> PHID, as
    # the job resolved them on the server (jobs/context.py); watched boards resolve without it.
    project_aliases: dict[str, str] = field(default_factory=dict)

    # -- lookups used by checks and reports -------------------------------------------
    def task_fields(self, task: Task) -> dict[str, Any]:
        """What every finding and report row says about a task: monogram, title, status, priority
        and the owner's and author's usernames ("" when there is none)."""
        return {"task": task.monogram, "title": task.title, "status": task.status_name,
                "priority": task.priority_name, "owner": self.username(task.owner_phid),
                "author": self.username(task.author_phid)}

    def username(self, phid: str | None) -> str:
        if not phid:
            return ""
        user = self.users.get(phid)
        return user.username if user else phid

    def non_human_phids(self) -> frozenset[str]:
        extra = {p for p, u in self.users.items() if u.is_bot}
        if self.bot_phid:
            extra.add(self.bot_phid)
        return frozenset(self.ignored_user_phids | extra)

    def columns_with_role(self, role: str) -> list[Column]:
        return [c for b in self.boards.values() for c in b.by_role(role)]

    def tasks_in_columns(self, columns: Iterable[Column], *, open_only: bool = True) -> list[tuple[Task, Column]]:
        wanted = {(c.board_phid, c.phid): c for c in columns}
        out = []
        for task in self.tasks.values():
            if open_only and task.is_closed:
                continue
            for board_phid, col_phid in task.columns.items():
                col = wanted.get((board_phid, col_phid))
                if col is not None:
                    out.append((task, col))
        out.sort(key=lambda tc: (tc[0].created, tc[0].id))
        return out

    def tasks_with_role(self, role: str, *, open_only: bool = True) -> list[tuple[Task, Column]]:
        return self.tasks_in_columns(self.columns_with_role(role), open_only=open_only)

    def entered_column(self, task: Task, column: Column) -> tuple[datetime, bool]:
        """When ``task`` entered ``column`` and whether that time is only approximate.

        The timeline knows best (structured column transactions, else clinicbot's sightings);
        without a timeline, creation is a lower bound, so the answer is marked approximate.
        """
        timeline = self.timelines.get(task.phid)
        found = timeline.column_entered_at(column.board_phid, column.phid, sightings=self.sightings) \
            if timeline is not None else None
        if found is None:
            return task.created, True
        at, approximate = found
        return at, bool(approximate) or column.phid in self.approximate_columns

    def priority_by_keyword(self, keyword: str) -> Priority | None:
        for p in self.priorities:
            if p.keyword == keyword:
                return p
        return None
