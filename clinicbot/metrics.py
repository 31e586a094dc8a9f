"""Metrics: is clinic duty working? Pure functions of a :class:`Snapshot` (no I/O, no clock).

Every definition here is spelled out in ``docs/reports.md``; keep the two in step. In short:

* the *backlog* is the open tasks (stalled counts as open: it is an open status) in the team's
  projects; *unsized* have no points, *unprioritised* have the "triage" priority;
* *created* / *resolved* count team tasks created / closed inside the window;
* *untouched* are open backlog tasks with no human activity after creation, or none in N days;
* *incoming* tasks are those that became team tasks inside the window; for each, the time to
  the first team response, the time in the Inbox and the time to close (github/issue-metrics'
  three clocks), overall and per duty shift (the shift on duty when the task arrived);
* durations (age, time to first team response) are summarised as count, mean, median and
  90th percentile (linear interpolation between closest ranks), in hours; an empty set gives
  ``None`` everywhere, which reports show as "n/a".

Bots, clinicbot's own account and ``team.ignored_users`` are never activity, responders or
"outside" authors (``Snapshot.non_human_phids``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any, Callable, Mapping, Sequence

from clinicbot.model import Snapshot, Task
from clinicbot.stats import DurationStats, hours_between
from clinicbot.timeline import RESPONSE_KINDS

DEFAULT_WINDOW_DAYS = 30
DEFAULT_UNTOUCHED_DAYS = 14
DEFAULT_WEEKS = 12

# Who was on duty at a moment: usernames, in rotation order. Built by the caller from the
# rotation so this module needs no rotation file (and tests can pass a lambda).
DutyLookup = Callable[[datetime], Sequence[str]]


# --------------------------------------------------------------------------------------------
# Which tasks count


def is_team_task(snapshot: Snapshot, task: Task) -> bool:
    """Tagged with a team project, or on a team board (a milestone's proxy column counts)."""
    team = snapshot.team_project_phids
    return not team.isdisjoint(task.project_phids) or not team.isdisjoint(task.columns)


def team_tasks(snapshot: Snapshot) -> list[Task]:
    """Team tasks that exist at ``snapshot.now``: with ``--now`` in the past, later tasks are left
    out (their status is still today's: a past ``now`` reproduces counts only approximately)."""
    return sorted((t for t in snapshot.tasks.values() if is_team_task(snapshot, t) and t.created <= snapshot.now),
                  key=lambda t: t.id)


def closed_at(task: Task) -> datetime | None:
    """When a closed task was closed; a closed task without dateClosed (old servers) -> modified."""
    if not task.is_closed:
        return None
    return task.closed_at or task.modified


def unbreak_since(snapshot: Snapshot, task: Task) -> datetime | None:
    """When the task (first) became Unbreak Now!, or None if it never was.

    Created with that priority -> creation time (a priority transaction at creation, or no
    priority transaction at all while the task is UBN now). Raised later -> that edit's time.
    """
    ubn = snapshot.priority_by_keyword("unbreak")
    if ubn is None:
        return None
    timeline = snapshot.timelines.get(task.phid)
    events = timeline.of_kind("priority") if timeline is not None else []
    if not events:
        return task.created if task.priority == ubn.value else None
    if events[0].old == ubn.value:
        return task.created
    for e in events:
        if e.new == ubn.value:
            return e.at
    return None


def review_columns(snapshot: Snapshot) -> list[tuple[str, str]]:
    """(board, column) of every review_needed column: where review requests arrive."""
    return [(c.board_phid, c.phid) for c in snapshot.columns_with_role("review_needed")]


def review_requested_at(snapshot: Snapshot, task: Task,
                        cols: Sequence[tuple[str, str]] | None = None) -> datetime | None:
    """When a task became a review request: its first move into a review_needed column; if it
    never moved there but is on a board that has one, when it was put on that board (tag or
    creation, it starts in the board's default column). ``cols``: :func:`review_columns`, when
    the caller asks for many tasks."""
    cols = review_columns(snapshot) if cols is None else cols
    timeline = snapshot.timelines.get(task.phid)
    moves = []
    if timeline is not None:
        for board, col in cols:
            moves.extend(e.at for e in timeline.moved_into(board, col))
    if moves:
        return min(moves)
    boards = {b for b, _ in cols}
    on_board = [b for b in boards if b in task.columns]
    if not on_board:
        return None
    tagged = [timeline.tagged_at(b) for b in on_board] if timeline is not None else []
    tagged_times = [t for t in tagged if t is not None]
    return min(tagged_times) if tagged_times else task.created


def is_outside_author(snapshot: Snapshot, task: Task) -> bool:
    author = task.author_phid
    return bool(author) and author not in snapshot.team_member_phids and author not in snapshot.non_human_phids()


# --------------------------------------------------------------------------------------------
# Responses


@dataclass(frozen=True)
class Response:
    """One task in a response-time population: when it started waiting, who answered when."""

    task: Task
    start: datetime
    responder_phid: str | None
    responded_at: datetime | None

    @property
    def hours(self) -> float | None:
        return None if self.responded_at is None else hours_between(self.start, self.responded_at)


def first_team_response(snapshot: Snapshot, task: Task, start: datetime) -> Response:
    """The first response strictly after ``start`` by a team member other than the author."""
    timeline = snapshot.timelines.get(task.phid)
    event = None
    if timeline is not None:
        exclude = set(snapshot.non_human_phids())
        if task.author_phid:
            exclude.add(task.author_phid)
        event = timeline.first_response(start, exclude=exclude, responders=snapshot.team_member_phids)
    return Response(task, start, event.author_phid if event else None, event.at if event else None)


# --------------------------------------------------------------------------------------------
# Incoming tasks: three clocks per task, read in one pass over its timeline


@dataclass(frozen=True)
class Incoming:
    """When a task became a team task, and when its three clocks stopped (None: still running)."""

    task: Task
    arrived: datetime
    responded: datetime | None  # the first team response strictly after arrival
    inbox: tuple[datetime, datetime | None] | None  # its first stay in an Inbox column; None: never there
    closed: datetime | None  # closed (now) at, if not before it arrived

    def hours(self, end: datetime | None, start: datetime | None = None) -> float | None:
        return None if end is None else hours_between(start or self.arrived, end)


def incoming_clock(snapshot: Snapshot, task: Task, *, inbox: Mapping[str, frozenset[str]],
                   human_exclude: frozenset[str]) -> Incoming:
    """Arrival, first team response, first Inbox stay and close of ``task``: one pass over its events.

    *Arrival*: creation, unless the task was created outside the team and a team project was added
    later (the first team-project event is an addition after the creation second, and every team
    project the task has now was added by an event): then that moment. *Response*: as
    :meth:`Timeline.first_response` (a comment, owner, priority or status change, or a move to
    another column, by a team member who is not the author nor a bot). *Inbox stay* (``inbox``:
    board PHID -> its inbox columns): entered by a move into an Inbox column, or by arriving on the
    board while the first move there leaves an Inbox column (or no move at all while the task is
    in one now: the board's default column); left by the next move to another column on that
    board, by the board's project being removed, or by closing.
    """
    team, created = snapshot.team_project_phids, task.created
    timeline = snapshot.timelines.get(task.phid)
    events = timeline.events if timeline is not None else ()
    first_team: tuple[datetime, bool] | None = None  # the first team-project event: (at, an addition)
    team_added: set[str] = set()
    responses: list[Any] = []
    exclude = human_exclude | ({task.author_phid} if task.author_phid else set())
    board_at: dict[str, datetime] = {}  # inbox board -> when the task (first) went onto it
    moved: set[str] = set()  # inbox boards on which a real move was seen
    enter: datetime | None = None
    left: datetime | None = None
    where: str | None = None  # the board of the stay
    members = snapshot.team_member_phids
    for e in events:
        kind = e.kind
        reorder = kind == "column" and e.column_phid in e.from_column_phids  # e.is_reorder, without a call
        if kind == "projects":
            added, removed = set(e.new or ()), set(e.old or ())
            if first_team is None and (added | removed) & team:
                first_team = (e.at, not removed & team)
            team_added |= added & team
            for b in added & inbox.keys():
                board_at.setdefault(b, e.at)
            if where in removed and left is None:
                left = e.at
        elif kind == "column" and not reorder:
            b = e.board_phid or ""
            cols = inbox.get(b)
            if cols is None:
                pass
            elif enter is None:
                if e.column_phid in cols:
                    enter, where = e.at, b
                elif b not in moved and cols & set(e.from_column_phids):
                    enter, left, where = board_at.get(b, created), e.at, b
                moved.add(b)
            elif left is None and b == where and e.column_phid not in cols:
                left = e.at
        if kind in RESPONSE_KINDS and not reorder and e.author_phid in members and e.author_phid not in exclude:
            responses.append(e.at)
    start = created
    if first_team is not None and first_team[1] and first_team[0] > created \
            and not (set(task.project_phids) & team) - team_added:
        start = first_team[0]
    if enter is None:  # no move: in an Inbox column now means there since it went onto the board
        for b, cols in inbox.items():
            if b not in moved and task.columns.get(b) in cols:
                enter, where = max(board_at.get(b, created), created), b
                break
    closed = closed_at(task)
    if enter is not None and left is None and closed is not None and closed >= enter:
        left = closed
    return Incoming(task, start, next((at for at in responses if at > start), None),
                    None if enter is None else (enter, left), closed if closed is not None and closed >= start else None)


def incoming_tasks(snapshot: Snapshot, tasks: Sequence[Task], since: datetime, now: datetime) -> list[Incoming]:
    """The team tasks that arrived in ``[since, now]``, with their clocks (oldest arrival first).
    A task created before ``since`` and not modified since cannot have arrived in the window; one
    whose history the server did not return is left out (nothing can be said about its clocks)."""
    inbox: dict[str, frozenset[str]] = {}
    for c in snapshot.columns_with_role("inbox"):
        inbox[c.board_phid] = inbox.get(c.board_phid, frozenset()) | {c.phid}
    exclude = snapshot.non_human_phids()
    clocks = (incoming_clock(snapshot, t, inbox=inbox, human_exclude=exclude)
              for t in tasks if (t.created >= since or t.modified >= since) and t.phid in snapshot.timelines)
    return sorted((c for c in clocks if since <= c.arrived <= now), key=lambda c: (c.arrived, c.task.id))


def incoming_stats(population: Sequence[Incoming]) -> dict[str, Any]:
    """The three clocks of a population: statistics of those that stopped, counts of those running."""
    def stay(c: Incoming) -> float | None:
        return None if c.inbox is None else c.hours(c.inbox[1], c.inbox[0])

    return {
        "incoming": len(population),
        "first_response": DurationStats.of(h for c in population if (h := c.hours(c.responded)) is not None).to_dict(),
        "unanswered": sum(1 for c in population if c.responded is None),
        "time_in_inbox": DurationStats.of(h for c in population if (h := stay(c)) is not None).to_dict(),
        "still_in_inbox": sum(1 for c in population if c.inbox is not None and c.inbox[1] is None),
        "time_to_close": DurationStats.of(h for c in population if (h := c.hours(c.closed)) is not None).to_dict(),
        "still_open": sum(1 for c in population if c.closed is None),
    }


# --------------------------------------------------------------------------------------------
# The metrics


@dataclass
class Metrics:
    now: datetime
    window_days: int
    untouched_days: int
    backlog: int
    unsized: int
    unprioritised: int
    created: int
    resolved: int
    untouched_since_creation: int
    untouched_recently: int
    without_history: int
    age: DurationStats
    unbreak_response: DurationStats
    unbreak_unanswered: int
    review_response: DurationStats
    review_unanswered: int
    incoming: dict[str, Any] = field(default_factory=lambda: incoming_stats(()))
    incoming_per_shift: list[dict[str, Any]] = field(default_factory=list)
    unbreak_tasks: list[dict[str, Any]] = field(default_factory=list)
    review_tasks: list[dict[str, Any]] = field(default_factory=list)
    per_shift: list[dict[str, Any]] = field(default_factory=list)
    per_column: list[dict[str, Any]] = field(default_factory=list)
    weekly: list[dict[str, Any]] = field(default_factory=list)
    oldest: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The numbers a history record keeps (for trends): no per-task lists."""
        return {
            "now": self.now.isoformat(),
            "window_days": self.window_days,
            "backlog": self.backlog,
            "unsized": self.unsized,
            "unprioritised": self.unprioritised,
            "created": self.created,
            "resolved": self.resolved,
            "untouched_since_creation": self.untouched_since_creation,
            "untouched_recently": self.untouched_recently,
            "age": self.age.to_dict(),
            "unbreak_response": self.unbreak_response.to_dict(),
            "review_response": self.review_response.to_dict(),
            # The incoming tasks' clocks, flat for the history's trends.
            "incoming": self.incoming["incoming"],
            "incoming_response": self.incoming["first_response"],
            "inbox_time": self.incoming["time_in_inbox"],
            "time_to_close": self.incoming["time_to_close"],
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "untouched_days": self.untouched_days,
            "window_start": (self.now - timedelta(days=self.window_days)).isoformat(),
            "without_history": self.without_history,
            "unbreak_unanswered": self.unbreak_unanswered,
            "review_unanswered": self.review_unanswered,
            "unbreak_tasks": self.unbreak_tasks,
            "review_tasks": self.review_tasks,
            "per_shift": self.per_shift,
            "incoming_clocks": self.incoming,
            "incoming_per_shift": self.incoming_per_shift,
            "per_column": self.per_column,
            "weekly": self.weekly,
            "oldest": self.oldest,
        }


def _task_ref(snapshot: Snapshot, task: Task) -> dict[str, Any]:
    return {"task": task.monogram, "id": task.id, "title": task.title, "status": task.status_name,
            "priority": task.priority_name, "author": snapshot.username(task.author_phid)}


def _response_row(snapshot: Snapshot, r: Response, now: datetime) -> dict[str, Any]:
    return {**_task_ref(snapshot, r.task), "start": r.start.isoformat(),
            "responder": snapshot.username(r.responder_phid) or None,
            "responded_at": r.responded_at.isoformat() if r.responded_at else None,
            "hours": None if r.hours is None else round(r.hours, 2),
            "waiting_hours": round(hours_between(r.start, now), 2) if r.responded_at is None else None}


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def weekly_series(snapshot: Snapshot, tasks: Sequence[Task], now: datetime, weeks: int,
                  tz: tzinfo) -> list[dict[str, Any]]:
    """Created and resolved per ISO week (Monday, team timezone) for the last ``weeks`` weeks
    (the current, partial week last), and the backlog reconstructed at each week's end (or now)
    from created/closed dates of the tasks clinicbot can see."""
    this_week = week_start(now.astimezone(tz).date())
    # One pass over the tasks, then counts by bisection: a task is in the backlog at ``end`` when
    # created before it and not closed before it (closed before it and created before it = the
    # later of the two before it).
    created_times = sorted(t.created for t in tasks)
    closed_times = sorted(c for t in tasks if (c := closed_at(t)) is not None)
    gone_times = sorted(max(t.created, c) for t in tasks if (c := closed_at(t)) is not None)
    out = []
    for i in range(weeks - 1, -1, -1):
        start_day = this_week - timedelta(weeks=i)
        start = datetime.combine(start_day, datetime.min.time(), tz)
        end = min(start + timedelta(days=7), now)
        created = bisect_left(created_times, end) - bisect_left(created_times, start)
        resolved = bisect_left(closed_times, end) - bisect_left(closed_times, start)
        backlog = bisect_left(created_times, end) - bisect_left(gone_times, end)
        out.append({"week": start_day.isoformat(), "created": created, "resolved": resolved,
                    "backlog_at_end": backlog, "end": end.isoformat()})
    return out


def counted_since(now: datetime, *, window_days: int, weeks: int, tz: tzinfo) -> datetime:
    """The oldest time the metrics count from: the window's start or the first weekly series
    week's start (team timezone), whichever is earlier. A task closed before it, and not modified
    since, changes no metric: the loader may leave it in the cache (only open tasks and those
    closed or modified since then are loaded). Every event a metric dates is at or before the
    task's dateModified, so "modified since" keeps any task whose history starts in the window."""
    first_week = week_start(now.astimezone(tz).date()) - timedelta(weeks=max(weeks, 1) - 1)
    return min(now - timedelta(days=window_days), datetime.combine(first_week, datetime.min.time(), tz))


def histories_read(snapshot: Snapshot, *, window_days: int) -> list[str]:
    """The tasks whose histories :func:`compute_metrics` reads (open team tasks, and team tasks
    modified in the window: every history-dated start is at or before dateModified): the caller
    can have them read from the cache in one go (``LazyTimelines.prefetch``). Only a speed hint:
    a timeline outside it is still read when asked for."""
    now = snapshot.now
    since = now - timedelta(days=window_days)
    return [t.phid for t in snapshot.tasks.values()  # team_tasks' tasks, unsorted
            if (t.is_open or t.modified >= since) and t.created <= now and is_team_task(snapshot, t)]


def compute_metrics(
    snapshot: Snapshot,
    *,
    window_days: int = DEFAULT_WINDOW_DAYS,
    untouched_days: int = DEFAULT_UNTOUCHED_DAYS,
    weeks: int = DEFAULT_WEEKS,
    on_duty: DutyLookup | None = None,
    tz: tzinfo = timezone.utc,
) -> Metrics:
    """Every metric of ``docs/reports.md`` at ``snapshot.now``."""
    now = snapshot.now
    since = now - timedelta(days=window_days)
    tasks = team_tasks(snapshot)
    open_tasks = [t for t in tasks if t.is_open]
    triage = snapshot.priority_by_keyword("triage")

    untouched_never = untouched_recent = no_history = 0
    stale_before = now - timedelta(days=untouched_days)
    never_ids: set[str] = set()
    exclude = snapshot.non_human_phids()
    for t in open_tasks:
        # touched after creation, and the last human activity, from one read of the history
        timeline = snapshot.timelines.get(t.phid)
        if timeline is None:
            no_history += 1
            continue
        event = timeline.last_activity(exclude=exclude)
        if event is None or event.at <= t.created:
            untouched_never += 1
            never_ids.add(t.phid)
        last = max(event.at, t.created) if event else t.created
        if last < stale_before:
            untouched_recent += 1

    created_in_window = [t for t in tasks if since <= t.created <= now]
    resolved = [t for t in tasks if (c := closed_at(t)) is not None and since <= c <= now]

    # Both start times are events of the task or its creation, never after its dateModified (as in
    # counted_since): a task not modified since the window opened cannot start in it, and its
    # history is not read.
    recent = [t for t in tasks if t.modified >= since]
    ubn: list[Response] = []
    for t in recent:
        start = unbreak_since(snapshot, t)
        if start is not None and since <= start <= now:
            ubn.append(first_team_response(snapshot, t, start))
    reviews: list[Response] = []
    review_cols = review_columns(snapshot)
    for t in recent:
        if not is_outside_author(snapshot, t):
            continue
        start = review_requested_at(snapshot, t, review_cols)
        if start is not None and since <= start <= now:
            reviews.append(first_team_response(snapshot, t, start))

    if on_duty is not None:
        on_duty = _remembered(on_duty)  # incoming arrivals are mostly creation times _per_shift asked for
    per_shift = _per_shift(created_in_window, ubn, reviews, never_ids, on_duty) if on_duty else []
    incoming = incoming_tasks(snapshot, tasks, since, now)
    by_shift: dict[str, list[Incoming]] = {}
    for c in incoming if on_duty else ():
        by_shift.setdefault(shift_name(on_duty, c.arrived), []).append(c)
    oldest = sorted(open_tasks, key=lambda t: (t.created, t.id))[:10]
    return Metrics(
        now=now,
        window_days=window_days,
        untouched_days=untouched_days,
        backlog=len(open_tasks),
        unsized=sum(1 for t in open_tasks if t.points is None),
        unprioritised=sum(1 for t in open_tasks if triage is not None and t.priority == triage.value),
        created=len(created_in_window),
        resolved=len(resolved),
        untouched_since_creation=untouched_never,
        untouched_recently=untouched_recent,
        without_history=no_history,
        age=DurationStats.of(hours_between(t.created, now) for t in open_tasks),
        unbreak_response=DurationStats.of(r.hours for r in ubn if r.hours is not None),
        unbreak_unanswered=sum(1 for r in ubn if r.responded_at is None),
        review_response=DurationStats.of(r.hours for r in reviews if r.hours is not None),
        review_unanswered=sum(1 for r in reviews if r.responded_at is None),
        incoming=incoming_stats(incoming),
        incoming_per_shift=[{"shift": name, **incoming_stats(by_shift[name])} for name in sorted(by_shift)],
        unbreak_tasks=[_response_row(snapshot, r, now) for r in sorted(ubn, key=lambda r: r.start)],
        review_tasks=[_response_row(snapshot, r, now) for r in sorted(reviews, key=lambda r: r.start)],
        per_shift=per_shift,
        per_column=_per_column(snapshot),
        weekly=weekly_series(snapshot, tasks, now, weeks, tz),
        oldest=[{**_task_ref(snapshot, t), "age_hours": round(hours_between(t.created, now), 2)} for t in oldest],
    )


def _per_column(snapshot: Snapshot) -> list[dict[str, Any]]:
    out = []
    placed = [t.columns for t in snapshot.tasks.values() if not t.is_closed]  # the open tasks' columns
    for board in snapshot.boards.values():
        counts = Counter(columns.get(board.phid) for columns in placed)
        for col in board.columns:
            if col.hidden and not counts[col.phid]:
                continue  # hidden columns only matter when something is stuck in them
            out.append({"board": board.name, "column": col.name, "role": col.role, "open": counts[col.phid]})
    return out


def _per_shift(created: Sequence[Task], ubn: Sequence[Response], reviews: Sequence[Response],
               never_ids: set[str], on_duty: DutyLookup) -> list[dict[str, Any]]:
    """Group what arrived in the window by who was on duty when it arrived.

    A shift is named by its engineers ("alice, bob"); arrivals while nobody was on duty go
    to "(nobody)". Arrival: creation for new tasks; becoming UBN / a review request for those.
    """
    def shift(at: datetime) -> str:
        return shift_name(on_duty, at)

    rows: dict[str, dict[str, Any]] = {}

    def row(name: str) -> dict[str, Any]:
        return rows.setdefault(name, {"shift": name, "created": 0, "untouched_since_creation": 0,
                                      "_ubn": [], "unbreak_unanswered": 0, "_review": [], "review_unanswered": 0})

    for t in created:
        r = row(shift(t.created))
        r["created"] += 1
        r["untouched_since_creation"] += t.phid in never_ids
    for key, population in (("ubn", ubn), ("review", reviews)):
        for resp in population:
            r = row(shift(resp.start))
            if resp.hours is None:
                r["unbreak_unanswered" if key == "ubn" else "review_unanswered"] += 1
            else:
                r["_" + key].append(resp.hours)
    out = []
    for name in sorted(rows):
        r = rows[name]
        r["unbreak_response"] = DurationStats.of(r.pop("_ubn")).to_dict()
        r["review_response"] = DurationStats.of(r.pop("_review")).to_dict()
        out.append(r)
    return out


def _remembered(on_duty: DutyLookup) -> DutyLookup:
    """``on_duty`` asked once per distinct time, its answer kept as a list (any DutyLookup: a plain
    ``rotation.query.on_duty`` plans the rotation around ``at`` each call)."""
    seen: dict[datetime, list[str]] = {}

    def lookup(at: datetime) -> list[str]:
        if at not in seen:
            seen[at] = list(on_duty(at))
        return seen[at]

    return lookup


def shift_name(on_duty: DutyLookup, at: datetime) -> str:
    """A shift by its engineers ("alice, bob"); "(nobody)" when nobody was on duty."""
    names = list(on_duty(at))
    return ", ".join(names) if names else "(nobody)"
