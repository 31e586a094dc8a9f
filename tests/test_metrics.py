"""Metrics on hand-built snapshots: every number here is worked out by hand in the comments."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from clinicbot.phab.history import Event, Timeline
from clinicbot.metrics import compute_metrics
from clinicbot.stats import DurationStats, median, percentile
from clinicbot.state.metrics_history import MetricsStore
from clinicbot.model import Board, Column, Priority, Snapshot, Task, User

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
H = timedelta(hours=1)
D = timedelta(days=1)


# --------------------------------------------------------------------------------------------
# Statistics


@pytest.mark.parametrize("values, expected", [
    ([], None),
    ([7], 7),
    ([3, 1, 2], 2),  # odd: the middle one
    ([4, 1, 3, 2], 2.5),  # even: mean of the two middle ones
    ([10, 20], 15),
])
def test_median(values, expected):
    assert median(values) == expected


@pytest.mark.parametrize("values, expected", [
    ([], None),
    ([5], 5),  # one element: itself
    (list(range(1, 11)), 9.1),  # pos = 9 * 0.9 = 8.1 -> 9 + 0.1 * (10 - 9)
    (list(range(1, 12)), 10),  # pos = 10 * 0.9 = 9 -> the 10th value exactly
    ([1, 2], 1.9),  # pos = 0.9 -> 1 + 0.9 * 1
    ([2, 2, 2], 2),
])
def test_p90(values, expected):
    if expected is None:
        assert percentile(values, 90) is None
    else:
        assert percentile(values, 90) == pytest.approx(expected)


def test_percentile_rejects_out_of_range():
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_duration_stats_empty_is_none_not_a_crash():
    s = DurationStats.of([])
    assert (s.count, s.mean, s.median, s.p90) == (0, None, None, None)
    assert s.to_dict() == {"count": 0, "mean": None, "median": None, "p90": None, "unit": "hours"}


def test_duration_stats_small_set():
    s = DurationStats.of([1, 2, 3, 10])  # mean 4, median 2.5, p90: pos 2.7 -> 3 + 0.7 * 7 = 7.9
    assert (s.count, s.mean, s.median) == (4, 4, 2.5)
    assert s.p90 == pytest.approx(7.9)


# --------------------------------------------------------------------------------------------
# A tiny board

TEAM = "PHID-PROJ-team"
OTHER = "PHID-PROJ-other"
INBOX = Column("PHID-PCOL-inbox", "Inbox", TEAM, 0, role="inbox")
DOING = Column("PHID-PCOL-doing", "Doing", TEAM, 1, role="doing")
REVIEW_BOARD = "PHID-PROJ-reviews"
REVIEW = Column("PHID-PCOL-review", "Review Needed", REVIEW_BOARD, 0, role="review_needed")
ALICE, BOB, OUTSIDER, BOT = "PHID-USER-alice", "PHID-USER-bob", "PHID-USER-out", "PHID-USER-bot"
PRIORITIES = (Priority(100, "Unbreak Now!", "unbreak"), Priority(90, "Needs Triage", "triage"),
              Priority(50, "Normal", "normal"))


def task(i: int, *, created: datetime, closed: datetime | None = None, priority: int = 50, points: float | None = 1,
         author: str = OUTSIDER, board: str = TEAM, column: str = INBOX.phid) -> Task:
    return Task(id=i, phid=f"PHID-TASK-{i}", title=f"task {i}", status="resolved" if closed else "open",
                status_name="Resolved" if closed else "Open", is_closed=closed is not None, priority=priority,
                priority_name={100: "Unbreak Now!", 90: "Needs Triage", 50: "Normal"}[priority], author_phid=author,
                owner_phid=None, points=points, created=created, modified=closed or created, closed_at=closed,
                project_phids=(board,), columns={board: column})


def ev(kind: str, at: datetime, author: str | None, **kw) -> Event:
    return Event(kind=kind, at=at, author_phid=author, **kw)


def snapshot(tasks: list[Task], timelines: dict[int, list[Event]]) -> Snapshot:
    """As the server has it: a task's dateModified is never older than its last event."""
    tl = {}
    for i, t in enumerate(tasks):
        events = [ev("created", t.created, t.author_phid)] + timelines.get(t.id, [])
        tl[t.phid] = Timeline(t.phid, t.id, tuple(events))
        tasks[i] = replace(t, modified=max([t.modified or t.created, *(e.at for e in events)]))
    boards = {TEAM: Board(TEAM, "Team", "team", (INBOX, DOING)),
              REVIEW_BOARD: Board(REVIEW_BOARD, "Reviews", "reviews", (REVIEW,))}
    users = {p: User(p, p.split("-")[-1], is_bot=(p == BOT)) for p in (ALICE, BOB, OUTSIDER, BOT)}
    return Snapshot(now=NOW, boards=boards, tasks={t.phid: t for t in tasks}, users=users, timelines=tl,
                    priorities=PRIORITIES, team_project_phids=frozenset({TEAM, REVIEW_BOARD}),
                    team_member_phids=frozenset({ALICE, BOB}), bot_phid=BOT)


def test_counts_untouched_and_ages():
    t1 = task(1, created=NOW - 40 * D, points=None)  # open, unsized, never touched, 40 days old
    t2 = task(2, created=NOW - 10 * D, priority=90)  # open, unprioritised; bot comment only
    t3 = task(3, created=NOW - 20 * D, closed=NOW - 5 * D)  # resolved in window
    t4 = task(4, created=NOW - 60 * D, closed=NOW - 45 * D)  # resolved before the window
    t5 = task(5, created=NOW - 30 * D + H)  # open; alice commented 20 days ago -> touched, but not in 14 days
    t6 = task(6, created=NOW - 2 * D, board=OTHER, column="PHID-PCOL-x")  # not the team's: ignored
    snap = snapshot([t1, t2, t3, t4, t5, t6], {
        2: [ev("commented", NOW - 1 * D, BOT, text="ping")],
        5: [ev("commented", NOW - 20 * D, ALICE, text="looking"), ev("subscribers", NOW - 1 * D, BOB, new=(BOB,))],
    })
    m = compute_metrics(snap, window_days=30, untouched_days=14).to_dict()
    assert m["backlog"] == 3  # t1, t2, t5
    assert m["unsized"] == 1 and m["unprioritised"] == 1
    assert m["created"] == 3  # t2, t3, t5 (t5 is 30 days - 1 h old)
    assert m["resolved"] == 1
    assert m["untouched_since_creation"] == 2  # t1; t2 (the bot does not count); t5 was touched
    assert m["untouched_recently"] == 2  # t1 (40 d) and t5 (20 d; a subscribe is no activity); t2 is 10 d old
    ages = sorted([40 * 24, 10 * 24, 30 * 24 - 1])
    assert m["age"]["count"] == 3
    assert m["age"]["median"] == ages[1]
    assert m["age"]["mean"] == pytest.approx(sum(ages) / 3, abs=0.01)


def test_unbreak_and_review_response_times():
    # UBN at creation, alice answers after 2 h; the author's own comment at 1 h does not count.
    t1 = task(1, created=NOW - 5 * D, priority=100, author=BOB)
    # raised to UBN by the outsider 3 days ago, bob answers 30 min later.
    t2 = task(2, created=NOW - 6 * D, priority=100)
    # UBN, only the bot answered: unanswered.
    t3 = task(3, created=NOW - 1 * D, priority=100)
    # review request from outside: created on the review board, alice moves it after 4 h.
    t4 = task(4, created=NOW - 3 * D, board=REVIEW_BOARD, column=REVIEW.phid)
    # review request by a team member: not counted.
    t5 = task(5, created=NOW - 3 * D, board=REVIEW_BOARD, column=REVIEW.phid, author=ALICE)
    snap = snapshot([t1, t2, t3, t4, t5], {
        1: [ev("priority", t1.created, BOB, old=None, new=100), ev("commented", t1.created + H, BOB, text="me"),
            ev("commented", t1.created + 2 * H, ALICE, text="on it")],
        2: [ev("priority", t2.created, OUTSIDER, old=None, new=50),
            ev("priority", NOW - 3 * D, OUTSIDER, old=50, new=100),
            ev("commented", NOW - 3 * D + 0.5 * H, BOB, text="ack")],
        3: [ev("commented", NOW - 1 * D + H, BOT, text="reminder")],
        4: [ev("column", t4.created + 4 * H, ALICE, board_phid=REVIEW_BOARD, column_phid="PHID-PCOL-prog",
               from_column_phids=(REVIEW.phid,))],
    })
    on_duty = lambda at: ["alice", "bob"] if at < NOW - 2 * D else ["carol"]  # noqa: E731
    m = compute_metrics(snap, on_duty=on_duty).to_dict()
    assert m["unbreak_response"]["count"] == 2
    assert m["unbreak_response"]["median"] == pytest.approx(1.25)  # (2 + 0.5) / 2
    assert m["unbreak_unanswered"] == 1
    by_task = {r["task"]: r for r in m["unbreak_tasks"]}
    assert by_task["T1"]["responder"] == "alice" and by_task["T1"]["hours"] == 2
    assert by_task["T2"]["responder"] == "bob" and by_task["T2"]["hours"] == 0.5
    assert by_task["T3"]["responder"] is None and by_task["T3"]["waiting_hours"] == 24
    assert m["review_response"] == {"count": 1, "mean": 4, "median": 4, "p90": 4, "unit": "hours"}
    shifts = {r["shift"]: r for r in m["per_shift"]}
    assert shifts["alice, bob"]["unbreak_response"]["count"] == 2
    assert shifts["carol"]["unbreak_unanswered"] == 1
    assert shifts["alice, bob"]["review_response"]["count"] == 1


def test_empty_snapshot_gives_na_not_a_crash():
    m = compute_metrics(snapshot([], {})).to_dict()
    assert m["backlog"] == 0
    for key in ("age", "unbreak_response", "review_response"):
        assert m[key]["median"] is None and m[key]["p90"] is None


def test_weekly_series_reconstructs_backlog():
    t1 = task(1, created=NOW - 20 * D)
    t2 = task(2, created=NOW - 9 * D, closed=NOW - 2 * D)
    m = compute_metrics(snapshot([t1, t2], {}), weeks=4).to_dict()
    weeks = m["weekly"]
    assert len(weeks) == 4 and weeks[-1]["end"] == NOW.isoformat()
    assert sum(w["created"] for w in weeks) == 2 and sum(w["resolved"] for w in weeks) == 1
    assert weeks[-1]["backlog_at_end"] == 1


def test_metrics_store_history_and_agendas(tmp_path):
    from datetime import date

    with MetricsStore(tmp_path) as store:
        store.record({"now": NOW.isoformat(), "backlog": 3})
        store.record({"now": NOW.isoformat(), "backlog": 4})  # same moment: replaced
        store.record({"now": (NOW - D).isoformat(), "backlog": 2})
        assert [r["backlog"] for r in store.history()] == [2, 4]
        store.save_agenda(date(2026, 11, 19), [3, 1], NOW - 3 * D)
        store.save_agenda(date(2026, 11, 26), [5], NOW)
        assert store.previous_agenda(date(2026, 11, 26))["tasks"] == [1, 3]
        assert store.previous_agenda(date(2026, 11, 19)) is None
        store.mark_report("digest", NOW)
        assert store.last_report("digest") == NOW
    assert not list(tmp_path.glob("*.tmp"))
    with MetricsStore(tmp_path) as again:
        assert len(again.history()) == 2


def test_metrics_store_corrupt_file_is_a_state_error(tmp_path):
    from clinicbot.errors import StateError

    (tmp_path / "metrics.json").write_text("{not json")
    with pytest.raises(StateError, match="metrics.json"):
        MetricsStore(tmp_path).history()
