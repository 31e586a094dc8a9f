"""cookie-licking (too many claimed, or claimed and idle) and stale-in-progress."""

from __future__ import annotations

from checkdata import (
    ALICE,
    BOB,
    BOT,
    CAROL,
    DAVE,
    HERALD,
    OTHERBOT,
    SECOND,
    SnapshotBuilder,
    at,
    comment,
    days,
    event,
    hours,
    keys,
    moved,
    owner,
    run_check,
    subscribed,
)
from clinicbot.checks.workload import CookieLickingCheck, StaleInProgressCheck
from clinicbot.model import iso

NOW = at("2024-05-08 12:00")
LICK = CookieLickingCheck()
STALE = StaleInProgressCheck()

# -- cookie-licking: too many --------------------------------------------------------------------------


def _owned(sb, first_id, n, who, column, **kw):
    for i in range(n):
        sb.task(first_id + i, created=NOW - hours(1), owner=who, columns=[column],
                events=[owner(NOW - hours(1), who, who)], **kw)


def test_more_than_five_claimed_open_tasks_is_one_finding_per_engineer():
    sb = SnapshotBuilder(NOW)
    ready = sb.column("Team", "ready")
    _owned(sb, 1, 6, ALICE, ready)
    _owned(sb, 11, 5, BOB, ready)  # exactly five: fine
    f = run_check(LICK, sb.build())
    assert keys(f) == ["cookie-licking:-:alice"]
    assert f[0].task_id is None and f[0].subject == "alice" and f[0].severity == "info"
    assert f[0].facts["reason"] == "too-many" and f[0].facts["who"] == "alice"
    assert f[0].facts["count"] == 6 and f[0].facts["max_claimed"] == 5
    assert f[0].facts["task_monograms"] == ["T1", "T2", "T3", "T4", "T5", "T6"]
    assert f[0].summary == "alice owns 6 open tasks on the watched boards (more than 5)"


def test_closed_unwatched_and_non_team_tasks_do_not_count():
    sb = SnapshotBuilder(NOW)
    ready = sb.column("Team", "ready")
    _owned(sb, 1, 5, ALICE, ready)
    sb.task(10, created=NOW - hours(1), owner=ALICE, columns=[ready], closed=True)
    sb.task(11, created=NOW - hours(1), owner=ALICE)  # on no watched board
    _owned(sb, 20, 9, DAVE, ready)  # not on the team
    _owned(sb, 40, 9, BOT, ready)
    assert run_check(LICK, sb.build()) == []
    assert keys(run_check(LICK, sb.build(), max_claimed=4)) == ["cookie-licking:-:alice"]


def test_open_tasks_in_done_columns_are_not_claimed_work():
    sb = SnapshotBuilder(NOW)
    _owned(sb, 1, 5, ALICE, sb.column("Team", "ready"))
    _owned(sb, 10, 3, ALICE, sb.column("Team", "done"))
    assert run_check(LICK, sb.build()) == []


def test_tasks_on_two_boards_count_once():
    sb = SnapshotBuilder(NOW)
    a, b = sb.column("Alpha", "ready"), sb.column("Beta", "ready")
    for i in range(5):
        sb.task(i + 1, created=NOW - hours(1), owner=ALICE, columns=[a, b])
    assert run_check(LICK, sb.build()) == []


# -- cookie-licking: claimed and idle ------------------------------------------------------------------


def _claimed(sb, task_id, claimed_at, *events, who=ALICE, by=None, role="ready", **kw):
    col = sb.column("Team", role)
    return sb.task(task_id, created=claimed_at - days(1), owner=who, columns=[col],
                   events=[owner(claimed_at, by or who, who), *events], **kw)


def test_claimed_and_idle_for_exactly_fourteen_days():
    sb = SnapshotBuilder(NOW)
    _claimed(sb, 1, NOW - days(14), title="Refactor exporter")
    _claimed(sb, 2, NOW - days(14) + SECOND)
    f = run_check(LICK, sb.build())
    assert keys(f) == ["cookie-licking:T1:alice"]
    assert f[0].facts["reason"] == "idle" and f[0].facts["who"] == "alice"
    assert f[0].facts["claimed_at"] == iso(NOW - days(14)) and f[0].facts["claimed_by"] == "alice"
    assert f[0].facts["age_days"] == 14.0 and f[0].facts["threshold_days"] == 14
    assert f[0].summary == "alice claimed T1 Refactor exporter and has done nothing on it for 14 days"


def test_only_the_owners_own_activity_counts():
    sb = SnapshotBuilder(NOW)
    _claimed(sb, 1, NOW - days(20), comment(NOW - days(1), ALICE, "progress"))
    _claimed(sb, 2, NOW - days(20), comment(NOW - days(1), BOB, "any news?"))
    _claimed(sb, 3, NOW - days(20), comment(NOW - days(1), BOT, "reminder"))
    _claimed(sb, 4, NOW - days(20), subscribed(NOW - days(1), ALICE, ALICE))
    assert keys(run_check(LICK, sb.build())) == ["cookie-licking:T2:alice", "cookie-licking:T3:alice",
                                                 "cookie-licking:T4:alice"]


def test_assigned_by_someone_else_counts_from_the_assignment():
    sb = SnapshotBuilder(NOW)
    _claimed(sb, 1, NOW - days(15), by=BOB)
    f = run_check(LICK, sb.build())
    assert keys(f) == ["cookie-licking:T1:alice"] and f[0].facts["claimed_by"] == "bob"


def test_activity_before_the_claim_does_not_count():
    sb = SnapshotBuilder(NOW)
    _claimed(sb, 1, NOW - days(15), comment(NOW - days(16), ALICE, "I could do this"))
    assert keys(run_check(LICK, sb.build())) == ["cookie-licking:T1:alice"]


def test_idle_is_not_judged_where_the_owner_waits_on_others_or_stale_in_progress_watches():
    sb = SnapshotBuilder(NOW)
    for i, role in enumerate(["doing", "blocked", "review_needed", "waiting_for_review", "done"], start=1):
        _claimed(sb, i, NOW - days(30), role=role)
    _claimed(sb, 9, NOW - days(30), role="inbox")
    assert keys(run_check(LICK, sb.build())) == ["cookie-licking:T9:alice"]
    # configurable
    assert keys(run_check(LICK, sb.build(), max_claimed=10, idle_excluded_roles=["inbox"])) == [
        f"cookie-licking:T{i}:alice" for i in (1, 2, 3, 4, 5)]


def test_idle_closed_and_non_team_owners_never_fire():
    sb = SnapshotBuilder(NOW)
    _claimed(sb, 1, NOW - days(30), closed=True)
    _claimed(sb, 2, NOW - days(30), who=DAVE)
    _claimed(sb, 3, NOW - days(30), who=OTHERBOT)
    assert run_check(LICK, sb.build()) == []


def test_idle_without_history_uses_the_last_modification():
    sb = SnapshotBuilder(NOW)
    sb.task(1, created=NOW - days(40), owner=ALICE, columns=[sb.column("Team", "ready")],
            modified=NOW - days(2), history=False)
    sb.task(2, created=NOW - days(40), owner=ALICE, columns=[sb.column("Team", "ready")],
            modified=NOW - days(20), history=False)
    assert keys(run_check(LICK, sb.build())) == ["cookie-licking:T2:alice"]


def test_owner_set_at_creation_without_an_owner_event():
    sb = SnapshotBuilder(NOW)
    sb.task(1, created=NOW - days(15), owner=ALICE, author=ALICE, columns=[sb.column("Team", "ready")])
    assert keys(run_check(LICK, sb.build())) == ["cookie-licking:T1:alice"]


# -- stale-in-progress -----------------------------------------------------------------------------------


def _doing(sb, task_id, last_human, *events, role="doing", board="Team", **kw):
    col, ready = sb.column(board, role), sb.column(board, "ready")
    return sb.task(task_id, created=last_human - days(5), owner=ALICE, columns=[col],
                   events=[moved(last_human, ALICE, col, ready), *events], **kw)


def test_stale_in_progress_after_exactly_fourteen_days():
    sb = SnapshotBuilder(NOW)
    _doing(sb, 1, NOW - days(14), title="Migrate DB")
    _doing(sb, 2, NOW - days(14) + SECOND)
    f = run_check(STALE, sb.build())
    assert keys(f) == ["stale-in-progress:T1"]
    assert f[0].severity == "info" and f[0].facts["column"] == "Doing"
    assert f[0].facts["last_actor"] == "alice" and f[0].facts["last_activity_kind"] == "column"
    assert f[0].facts["last_activity_at"] == iso(NOW - days(14)) and f[0].facts["age_days"] == 14.0
    assert f[0].summary == "T1 Migrate DB in Team: Doing has had no activity for 14 days"


def test_bot_comments_do_not_reset_staleness_though_they_bump_date_modified():
    sb = SnapshotBuilder(NOW)
    _doing(sb, 1, NOW - days(20), comment(NOW - days(1), BOT, "Is this still being worked on?"))
    _doing(sb, 2, NOW - days(20), comment(NOW - days(1), OTHERBOT, "CI"))
    _doing(sb, 3, NOW - days(20), event("other", NOW - days(1), HERALD))
    _doing(sb, 4, NOW - days(20), subscribed(NOW - days(1), BOB, BOB))
    _doing(sb, 5, NOW - days(20), comment(NOW - days(1), CAROL, "any news?"))  # a human: activity
    snap = sb.build()
    assert snap.tasks["PHID-TASK-1"].modified == NOW - days(1)
    assert keys(run_check(STALE, snap)) == [f"stale-in-progress:T{i}" for i in (1, 2, 3, 4)]


def test_blocked_counts_too_and_closed_never_fires():
    sb = SnapshotBuilder(NOW)
    _doing(sb, 1, NOW - days(15), role="blocked")
    _doing(sb, 2, NOW - days(15), closed=True)
    _doing(sb, 3, NOW - days(15), role="ready")
    assert keys(run_check(STALE, sb.build())) == ["stale-in-progress:T1"]


def test_stale_on_two_boards_is_one_finding():
    sb = SnapshotBuilder(NOW)
    a, b = sb.column("Alpha", "doing"), sb.column("Beta", "blocked")
    sb.task(1, created=NOW - days(30), columns=[a, b], events=[comment(NOW - days(15), BOB, "started")])
    f = run_check(STALE, sb.build())
    assert keys(f) == ["stale-in-progress:T1"] and f[0].facts["other_places"] == ["Beta: Blocked"]


def test_stale_without_history_uses_date_modified():
    sb = SnapshotBuilder(NOW)
    col = sb.column("Team", "doing")
    sb.task(1, created=NOW - days(40), columns=[col], modified=NOW - days(1), history=False)
    sb.task(2, created=NOW - days(40), columns=[col], modified=NOW - days(14), history=False)
    assert keys(run_check(STALE, sb.build())) == ["stale-in-progress:T2"]


def test_stale_in_business_days_and_no_human_activity_at_all():
    sb = SnapshotBuilder(at("2024-05-24 17:00"))  # Friday
    sb.task(1, created=at("2024-05-06 09:00"), author=BOT, columns=[sb.column("Team", "doing")])
    # created by the bot: no human activity ever, counted from creation; 15 working days
    f = run_check(STALE, sb.build(), business_hours=True)
    assert keys(f) == ["stale-in-progress:T1"] and f[0].facts["age_days"] == 15.0
    assert f[0].facts["last_actor"] == ""
    assert run_check(STALE, sb.build(), business_hours=True, days=16) == []
