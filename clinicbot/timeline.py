"""What happened to a task: its events, parsed from either Conduit history form (phab/history.py).

Plain data, like model.py: the Snapshot holds a Timeline per task, the checks, metrics and
reports read them, and the sync cache stores their events.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

KINDS = ("created", "commented", "title", "description", "status", "priority", "owner", "points",
         "column", "projects", "subscribers", "other")

# What a human did *to* the task that tells the reporter someone is on it (first_response).
RESPONSE_KINDS = frozenset({"commented", "owner", "priority", "status", "column"})
# Everything but (un)subscribing counts as activity: a subscribe click (or the server's
# auto-subscribe of an @mentioned user) says nothing about work on the task.
ACTIVITY_KINDS = frozenset(KINDS) - {"subscribers"}


@dataclass(frozen=True, slots=True)
class Event:
    # slots: a 100,000-task board holds about a million events; without a __dict__ each is a
    # third smaller and quicker to build (the cache parses them when a job reads a timeline).
    kind: str  # one of KINDS
    at: datetime  # aware UTC
    author_phid: str | None
    xaction_id: int | None = None
    group_id: str | None = None
    # status: str; priority: int value; owner: PHID|None; points: float|None; title/description: str;
    # projects/subscribers: tuple of PHIDs added in `new`, removed in `old`.
    old: Any = None
    new: Any = None
    board_phid: str | None = None  # column events: one Event per board moved
    column_phid: str | None = None  # column events: the destination column
    from_column_phids: tuple[str, ...] = ()
    text: str | None = None  # comment raw text
    approximate: bool = False  # time not from a transaction (see Timeline.column_entered_at)

    @property
    def is_reorder(self) -> bool:
        """A column event that stayed in the same column (a drag within it): not an entry."""
        return self.kind == "column" and self.column_phid in self.from_column_phids


def _by_user(event: Event, exclude: Collection[str]) -> bool:
    # Only user accounts count as people. Herald and daemons author transactions as
    # application PHIDs (PHID-APPS-…); bots are users, so callers list them in `exclude`.
    author = event.author_phid
    return bool(author) and author.startswith("PHID-USER-") and author not in exclude


def _sort_key(event: Event) -> tuple[datetime, int]:
    return (event.at, event.xaction_id if event.xaction_id is not None else 0)


@dataclass
class Timeline:
    task_phid: str
    task_id: int
    events: tuple[Event, ...]  # oldest first, stable order (date, xaction id)
    # False when the server evidently had column moves it sent as `type: null` (see
    # timeline_from_transaction_search); column entry times then come from sightings.
    structured_columns: bool = True
    # transactions that came back as `type: null` and held nothing readable (diagnostics only)
    unreadable: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        # sorted() is stable: same-key events (one transaction, several boards) keep their order.
        self.events = tuple(sorted(self.events, key=_sort_key))

    @classmethod
    def from_sorted(cls, task_phid: str, task_id: int, events: tuple[Event, ...], *,
                    structured_columns: bool = True, unreadable: int = 0) -> "Timeline":
        """A Timeline whose ``events`` are already in order (as a Timeline stored them): the sync
        cache rebuilds thousands per job, and sorting them again was a fifth of that work."""
        timeline = cls.__new__(cls)
        timeline.task_phid, timeline.task_id, timeline.events = task_phid, task_id, events
        timeline.structured_columns, timeline.unreadable = structured_columns, unreadable
        return timeline

    # -- plain lookups -----------------------------------------------------------------------
    def of_kind(self, *kinds: str) -> list[Event]:
        return [e for e in self.events if e.kind in kinds]

    def created_at(self) -> datetime | None:
        for e in self.events:
            if e.kind == "created":
                return e.at
        return None

    def moves(self, board_phid: str | None = None) -> list[Event]:
        """Column events (oldest first), on one board or all; reorders within a column included."""
        return [e for e in self.events
                if e.kind == "column" and (board_phid is None or e.board_phid == board_phid)]

    def moved_into(self, board_phid: str, column_phid: str) -> list[Event]:
        """Every move into that column (who and when), oldest first; reorders inside it excluded."""
        return [e for e in self.moves(board_phid) if e.column_phid == column_phid and not e.is_reorder]

    def tagged_at(self, project_phid: str) -> datetime | None:
        """When the project was last added to the task, according to the history."""
        times = [e.at for e in self.events if e.kind == "projects" and project_phid in (e.new or ())]
        return times[-1] if times else None

    # -- derived answers ---------------------------------------------------------------------
    def column_entered_at(
        self,
        board_phid: str,
        column_phid: str,
        *,
        tagged_at: datetime | None = None,
        sightings: Mapping[tuple[str, str, str], datetime] | None = None,
    ) -> tuple[datetime, bool] | None:
        """When the task entered its *current* column on a board, and whether that is approximate.

        The caller knows (from maniphest.search) that the task is now in ``column_phid``.

        1. The last real move on the board (reorders within a column ignored) went into this
           column: its time, exact. If the board's project was (re)added after that move
           (``tagged_at`` or a projects event), the later time wins: the task cannot have sat in
           the column while it was off the board.
        2. The last move went into another column: the task came back without a transaction we
           can see. Lower bound = that move (or a later tag); the sighting if it is later.
           Approximate.
        3. No move on this board and the server sends structured column moves: the task arrived
           by being tagged (the default column) or created there: the time the board's project
           was added (``tagged_at``, else the history's last add), else creation. Exact.
        4. No move and ``structured_columns`` is False: ``sightings[(task, board, column)]`` —
           the first time clinicbot saw it there — not earlier than the tag time. Approximate.
           Without a sighting, the tag/creation time: a lower bound, so ages are overstated.

        ``None`` only when the timeline holds nothing to go by (no move, tag, creation or sighting).
        """
        tags = [t for t in (tagged_at, self.tagged_at(board_phid)) if t is not None]
        latest_tag = max(tags) if tags else None
        sighting = sightings.get((self.task_phid, board_phid, column_phid)) if sightings else None
        moves = [e for e in self.moves(board_phid) if not e.is_reorder]

        if moves:
            last = moves[-1]
            lower = max([last.at] + ([latest_tag] if latest_tag else []))
            if last.column_phid == column_phid:
                return lower, False
            return (max(lower, sighting) if sighting else lower), True

        base = latest_tag or self.created_at()
        if not self.structured_columns:
            if sighting is not None:
                return (max(sighting, base) if base else sighting), True
            return (base, True) if base else None
        return (base, False) if base else None

    def first_response(
        self,
        after: datetime,
        *,
        exclude: Collection[str],
        responders: Collection[str] | None = None,
    ) -> Event | None:
        """The first human response strictly after ``after``, or None.

        A response is an event with ``at > after`` whose kind is a comment, an owner, priority
        or status change, or a column move (a reorder within the same column does not count);
        its author is a user (``PHID-USER-…``) not in ``exclude`` (the task's author, bots,
        clinicbot's own account), and, when ``responders`` is given, one of them (the team).
        Title, description, points, tag and subscriber edits are not responses: they tell the
        reporter nothing about whether anyone is looking at the problem.
        """
        for e in self.events:
            if e.at <= after or e.kind not in RESPONSE_KINDS or e.is_reorder:
                continue
            if not _by_user(e, exclude):
                continue
            if responders is not None and e.author_phid not in responders:
                continue
            return e
        return None

    def last_activity(self, *, exclude: Collection[str]) -> Event | None:
        """The latest event by a user not in ``exclude``; (un)subscribing does not count."""
        for e in reversed(self.events):
            if e.kind in ACTIVITY_KINDS and _by_user(e, exclude):
                return e
        return None

    def last_comment(self, *, exclude: Collection[str]) -> Event | None:
        """The latest (not removed) comment by a user not in ``exclude``."""
        for e in reversed(self.events):
            if e.kind == "commented" and _by_user(e, exclude):
                return e
        return None
