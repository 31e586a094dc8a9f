"""Builders for hand-made snapshots and timelines (for checks, metrics, reports tests).

::

    sb = SnapshotBuilder(now=at("2024-05-08 12:00"))
    inbox = sb.column("Team", "inbox")             # board "Team" with one column per role
    t = sb.task(1, created=at("2024-05-06 09:00"), columns=[inbox],
                events=[comment(at("2024-05-06 10:00"), ALICE, "on it")])
    snap = sb.build()
    findings = run_check(UntriagedCheck(), snap, hours=24)

Users: ALICE and BOB are the team, CAROL reports bugs (not in the team), BOT is clinicbot,
OTHERBOT an ignored bot. Timelines are real :class:`clinicbot.phab.history.Timeline` objects; a
task gets a "created" event by its author automatically (``history=False`` for no timeline).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

from clinicbot.checks.base import Check, CheckContext, Finding
from clinicbot.checks.hours import BusinessHours
from clinicbot.checks.settings import TeamSettings, merged_thresholds, parse_check_settings
from clinicbot.phab.history import Event, Timeline
from clinicbot.model import COLUMN_ROLES, Board, Column, Priority, Snapshot, Status, Task, User

UTC = timezone.utc

ALICE = "PHID-USER-alice"
BOB = "PHID-USER-bob"
CAROL = "PHID-USER-carol"
DAVE = "PHID-USER-dave"
BOT = "PHID-USER-clinicbot"
OTHERBOT = "PHID-USER-otherbot"
HERALD = "PHID-APPS-herald"

USERS = {
    ALICE: User(ALICE, "alice", "Alice A."),
    BOB: User(BOB, "bob", "Bob B."),
    CAROL: User(CAROL, "carol", "Carol C."),
    DAVE: User(DAVE, "dave", "Dave D."),
    BOT: User(BOT, "clinicbot", "Clinic Bot", is_bot=True),
    OTHERBOT: User(OTHERBOT, "otherbot", "Other Bot"),
}

PRIORITIES = (
    Priority(100, "Unbreak Now!", "unbreak", "pink"),
    Priority(90, "Needs Triage", "triage", "violet"),
    Priority(80, "High", "high", "red"),
    Priority(50, "Normal", "normal", "orange"),
    Priority(25, "Low", "low", "yellow"),
    Priority(0, "Wishlist", "wish", "sky"),
)
PRIORITY = {p.keyword: p for p in PRIORITIES}
STATUSES = (Status("open", "Open", False), Status("resolved", "Resolved", True), Status("invalid", "Invalid", True))


def at(text: str, tz: str | None = None) -> datetime:
    """'2024-05-06 09:00' -> aware datetime (UTC unless ``tz`` names a zone)."""
    from zoneinfo import ZoneInfo

    dt = datetime.fromisoformat(text)
    return dt.replace(tzinfo=ZoneInfo(tz) if tz else UTC) if dt.tzinfo is None else dt


# -- events -----------------------------------------------------------------------------------

def created(when: datetime, by: str | None = CAROL) -> Event:
    return Event("created", when, by)


def comment(when: datetime, by: str | None, text: str = "a comment") -> Event:
    return Event("commented", when, by, text=text)


def moved(when: datetime, by: str | None, column: Column, from_column: Column | None = None) -> Event:
    return Event("column", when, by, board_phid=column.board_phid, column_phid=column.phid,
                 from_column_phids=(from_column.phid,) if from_column else ())


def entered(sb: "SnapshotBuilder", task_id: int, when: datetime, role: str, from_role: str, *events: Event,
            board: str, author: str | None, filed_before: timedelta, **kw: Any) -> Task:
    """A task filed ``filed_before`` ``when`` that ``author`` moved from ``from_role`` into ``role`` on
    ``board`` at ``when``, then ``events``."""
    col, source = sb.column(board, role), sb.column(board, from_role)
    return sb.task(task_id, created=when - filed_before, author=author, columns=[col],
                   events=[moved(when, author, col, source), *events], **kw)


def priority(when: datetime, by: str | None, new: str, old: str | None = None) -> Event:
    return Event("priority", when, by, old=PRIORITY[old].value if old else None, new=PRIORITY[new].value)


def owner(when: datetime, by: str | None, new: str | None, old: str | None = None) -> Event:
    return Event("owner", when, by, old=old, new=new)


def subscribed(when: datetime, by: str | None, *phids: str) -> Event:
    return Event("subscribers", when, by, old=(), new=tuple(sorted(phids)))


def event(kind: str, when: datetime, by: str | None, **kw: Any) -> Event:
    return Event(kind, when, by, **kw)


# -- snapshots -----------------------------------------------------------------------------------

def _title(role: str) -> str:
    return role.replace("_", " ").title()


class SnapshotBuilder:
    def __init__(
        self,
        now: datetime,
        *,
        team: Iterable[str] = (ALICE, BOB),
        users: Mapping[str, User] = USERS,
        bot: str | None = BOT,
        ignored: Iterable[str] = (OTHERBOT,),
        priorities: tuple[Priority, ...] = PRIORITIES,
        approximate_columns: Iterable[str] = (),
    ) -> None:
        self.now = now
        self.team = frozenset(team)
        self.users = dict(users)
        self.bot = bot
        self.ignored = frozenset(ignored)
        self.priorities = priorities
        self.approximate_columns = set(approximate_columns)
        self.boards: dict[str, Board] = {}
        self.tasks: dict[str, Task] = {}
        self.timelines: dict[str, Timeline] = {}

    def board(self, name: str, roles: Iterable[str] = COLUMN_ROLES) -> Board:
        """A board with one column per role (named after it: "Inbox", "Review Needed", ...)."""
        phid = f"PHID-PROJ-{name.lower().replace(' ', '')}"
        if phid not in self.boards:
            columns = tuple(
                Column(f"PHID-PCOL-{name.lower().replace(' ', '')}-{role}", _title(role), phid, i, role=role)
                for i, role in enumerate(roles)
            )
            self.boards[phid] = Board(phid, name, name.lower(), columns)
        return self.boards[phid]

    def column(self, board: str, role: str) -> Column:
        found = self.board(board).by_role(role)
        assert found, f"board {board} has no {role} column"
        return found[0]

    def task(
        self,
        id: int,
        *,
        created: datetime,
        columns: Iterable[Column] = (),
        title: str | None = None,
        priority: str = "normal",
        owner: str | None = None,
        author: str | None = CAROL,
        closed: bool = False,
        modified: datetime | None = None,
        events: Iterable[Event] = (),
        history: bool = True,
        created_event: bool = True,
    ) -> Task:
        prio = next(p for p in self.priorities if p.keyword == priority)
        columns = list(columns)
        task = Task(
            id=id,
            phid=f"PHID-TASK-{id}",
            title=title or f"Task number {id}",
            status="resolved" if closed else "open",
            status_name="Resolved" if closed else "Open",
            is_closed=closed,
            priority=prio.value,
            priority_name=prio.name,
            author_phid=author,
            owner_phid=owner,
            points=None,
            created=created,
            modified=modified or max([created] + [e.at for e in events]),
            project_phids=tuple(dict.fromkeys(c.board_phid for c in columns)),
            columns={c.board_phid: c.phid for c in columns},
        )
        self.tasks[task.phid] = task
        if history:
            evs = ([Event("created", created, author)] if created_event else []) + list(events)
            self.timelines[task.phid] = Timeline(task.phid, id, tuple(evs))
        return task

    def build(self) -> Snapshot:
        return Snapshot(
            now=self.now,
            boards=dict(self.boards),
            tasks=dict(self.tasks),
            users=dict(self.users),
            timelines=dict(self.timelines),
            statuses=STATUSES,
            priorities=self.priorities,
            team_project_phids=frozenset(self.boards),
            team_member_phids=self.team,
            bot_phid=self.bot,
            ignored_user_phids=self.ignored,
            approximate_columns=frozenset(self.approximate_columns),
        )


# -- running one check -----------------------------------------------------------------------------

WEEKDAYS_9_TO_5 = BusinessHours("UTC", "09:00", "17:00", ("mon", "tue", "wed", "thu", "fri"))


def context(
    check: Check,
    snapshot: Snapshot,
    *,
    business_hours: BusinessHours | bool | None = None,
    rotation: Any = None,
    team: TeamSettings | None = None,
    **thresholds: Any,
) -> CheckContext:
    """The context the registry would build: defaults < team < ``thresholds`` (validated as
    the config's would be)."""
    settings = parse_check_settings({check.slug: dict(thresholds)}, [check])[check.slug]
    if business_hours is True:
        business_hours = WEEKDAYS_9_TO_5
    return CheckContext(
        snapshot=snapshot,
        now=snapshot.now,
        settings=merged_thresholds(check, settings, team),
        rotation=rotation,
        business_hours=business_hours or None,
    )


def run_check(check: Check, snapshot: Snapshot, **kw: Any) -> list[Finding]:
    return check.run(context(check, snapshot, **kw))


def keys(findings: Iterable[Finding]) -> list[str]:
    return [f.key for f in findings]


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def days(n: float) -> timedelta:
    return timedelta(days=n)


SECOND = timedelta(seconds=1)
