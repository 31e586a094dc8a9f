"""review-needed (no team response since entering the column) and waiting-for-review."""

from __future__ import annotations

from checkdata import (
    ALICE,
    BOB,
    BOT,
    CAROL,
    DAVE,
    OTHERBOT,
    SECOND,
    SnapshotBuilder,
    at,
    comment,
    days,
    entered,
    hours,
    keys,
    moved,
    run_check,
)
from clinicbot.checks.reviews import ReviewNeededCheck, WaitingForReviewCheck

NOW = at("2024-05-08 12:00")
REVIEW = ReviewNeededCheck()
WAITING = WaitingForReviewCheck()


def _in_review(sb, task_id, at, *events, board="Team", author=CAROL, **kw):
    return entered(sb, task_id, at, "review_needed", "doing", *events, board=board, author=author,
                   filed_before=days(3), **kw)


# -- review-needed -----------------------------------------------------------------------------------


def test_review_needed_fires_after_exactly_seven_days_without_a_response():
    sb = SnapshotBuilder(NOW)
    _in_review(sb, 1, NOW - days(7), title="Add retries")
    _in_review(sb, 2, NOW - days(7) + SECOND)
    f = run_check(REVIEW, sb.build())
    assert keys(f) == ["review-needed:T1"]
    assert f[0].severity == "warning"
    assert f[0].summary == "T1 Add retries has waited 7 days in Team: Review Needed without a response from the team"
    assert f[0].facts["column"] == "Review Needed" and f[0].facts["age_days"] == 7.0
    assert f[0].facts["threshold_days"] == 7 and f[0].facts["approximate"] is False


def test_a_team_response_after_entering_the_column_silences_it():
    sb = SnapshotBuilder(NOW)
    _in_review(sb, 1, NOW - days(10), comment(NOW - days(9), ALICE, "LGTM with nits"))
    _in_review(sb, 2, NOW - days(10), comment(NOW - days(11), ALICE, "before it was in review"))
    assert keys(run_check(REVIEW, sb.build())) == ["review-needed:T2"]


def test_bot_author_and_outsider_comments_are_not_responses():
    sb = SnapshotBuilder(NOW)
    _in_review(sb, 1, NOW - days(10), comment(NOW - days(1), BOT, "reminder: review needed"))
    _in_review(sb, 2, NOW - days(10), comment(NOW - days(1), OTHERBOT, "CI passed"))
    _in_review(sb, 3, NOW - days(10), comment(NOW - days(1), CAROL, "ping?"))
    _in_review(sb, 4, NOW - days(10), comment(NOW - days(1), DAVE, "+1"))
    # a team member's own patch: their comments are not a review
    _in_review(sb, 5, NOW - days(10), comment(NOW - days(1), BOB, "rebased"), author=BOB)
    assert keys(run_check(REVIEW, sb.build())) == [f"review-needed:T{i}" for i in (1, 2, 3, 4, 5)]


def test_review_needed_closed_never_fires():
    sb = SnapshotBuilder(NOW)
    _in_review(sb, 1, NOW - days(30), closed=True)
    assert run_check(REVIEW, sb.build()) == []


def test_review_needed_in_business_days():
    # entered Friday 10 May 17:00: seven working days later is Tuesday 21 May 17:00
    sb = SnapshotBuilder(at("2024-05-21 17:00"))
    _in_review(sb, 1, at("2024-05-10 17:00"))
    f = run_check(REVIEW, sb.build(), business_hours=True)
    assert keys(f) == ["review-needed:T1"] and f[0].facts["age_days"] == 7.0
    sb.now = at("2024-05-21 17:00") - SECOND
    assert run_check(REVIEW, sb.build(), business_hours=True) == []


def test_review_needed_on_two_boards_is_one_finding():
    sb = SnapshotBuilder(NOW)
    a, b = sb.column("Alpha", "review_needed"), sb.column("Beta", "review_needed")
    sb.task(1, created=NOW - days(20), columns=[a, b],
            events=[moved(NOW - days(9), CAROL, a, sb.column("Alpha", "doing")),
                    moved(NOW - days(8), CAROL, b, sb.column("Beta", "doing"))])
    f = run_check(REVIEW, sb.build())
    assert keys(f) == ["review-needed:T1"]
    assert f[0].facts["board"] == "Alpha" and f[0].facts["other_places"] == ["Beta: Review Needed"]
    assert f[0].facts["age_days"] == 9.0


def test_review_needed_without_history_says_nothing():
    sb = SnapshotBuilder(NOW)
    sb.task(1, created=NOW - days(30), columns=[sb.column("Team", "review_needed")], history=False)
    assert run_check(REVIEW, sb.build()) == []


def test_review_needed_threshold_setting():
    sb = SnapshotBuilder(NOW)
    _in_review(sb, 1, NOW - hours(36))
    assert run_check(REVIEW, sb.build()) == []
    assert keys(run_check(REVIEW, sb.build(), days=1.5)) == ["review-needed:T1"]


# -- waiting-for-review --------------------------------------------------------------------------------


def test_waiting_for_review_edges_and_facts():
    sb = SnapshotBuilder(NOW)
    col, doing = sb.column("Team", "waiting_for_review"), sb.column("Team", "doing")
    sb.task(1, created=NOW - days(20), columns=[col], owner=ALICE, title="Upstream patch",
            events=[moved(NOW - days(7), ALICE, col, doing), comment(NOW - hours(1), ALICE, "pinged upstream")])
    sb.task(2, created=NOW - days(20), columns=[col], events=[moved(NOW - days(7) + SECOND, ALICE, col, doing)])
    sb.task(3, created=NOW - days(20), columns=[col], closed=True, events=[moved(NOW - days(10), ALICE, col, doing)])
    f = run_check(WAITING, sb.build())
    assert keys(f) == ["waiting-for-review:T1"]
    assert f[0].severity == "info" and f[0].facts["owner"] == "alice"
    assert f[0].summary == "T1 Upstream patch has been in Team: Waiting For Review for 7 days"


def test_waiting_for_review_on_two_boards_and_bot_comments():
    sb = SnapshotBuilder(NOW)
    a, b = sb.column("Alpha", "waiting_for_review"), sb.column("Beta", "waiting_for_review")
    sb.task(1, created=NOW - days(8), columns=[a, b], events=[comment(NOW - hours(1), BOT, "reminder")])
    f = run_check(WAITING, sb.build())
    assert keys(f) == ["waiting-for-review:T1"] and f[0].facts["other_places"] == ["Beta: Waiting For Review"]
