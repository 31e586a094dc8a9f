"""unbreak-now: no response from the team, or no owner, N hours after it became Unbreak Now!."""

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
    owner,
    priority,
    run_check,
    subscribed,
)
from clinicbot.checks.urgent import UnbreakNowCheck
from clinicbot.model import Priority
from clinicbot.model import iso

NOW = at("2024-05-08 12:00")
UBN = UnbreakNowCheck()


def _raised(sb, task_id, raised_at, *events, owner_phid=ALICE, **kw):
    """A task that became Unbreak Now! at ``raised_at`` (raised by Carol, the reporter)."""
    return sb.task(task_id, created=raised_at - days(2), priority="unbreak", owner=owner_phid,
                   events=[priority(raised_at, CAROL, "unbreak", "normal"), *events], **kw)


def test_fires_at_exactly_four_hours_without_a_response():
    sb = SnapshotBuilder(NOW)
    _raised(sb, 1, NOW - hours(4), title="Payments down")
    _raised(sb, 2, NOW - hours(4) + SECOND)
    f = run_check(UBN, sb.build())
    assert keys(f) == ["unbreak-now:T1:no-response"]
    assert f[0].severity == "critical" and f[0].subject == "no-response"
    assert f[0].summary == "T1 Payments down has been Unbreak Now! for 4 hours without a response from the team"
    assert f[0].facts["reason"] == "no-response" and f[0].facts["raised_by"] == "carol"
    assert f[0].facts["age_hours"] == 4.0 and f[0].facts["threshold_hours"] == 4
    assert f[0].facts["owner"] == "alice" and f[0].facts["since"] == iso(NOW - hours(4))


def test_a_team_members_response_after_it_became_unbreak_now_silences_it():
    sb = SnapshotBuilder(NOW)
    _raised(sb, 1, NOW - hours(6), comment(NOW - hours(5), BOB, "looking"))
    _raised(sb, 2, NOW - hours(6), owner(NOW - hours(5), ALICE, ALICE))  # claiming is a response
    _raised(sb, 3, NOW - hours(6), comment(NOW - hours(7), BOB, "earlier, before UBN"))
    assert keys(run_check(UBN, sb.build())) == ["unbreak-now:T3:no-response"]


def test_bots_author_outsiders_and_subscribing_are_not_responses():
    sb = SnapshotBuilder(NOW)
    _raised(sb, 1, NOW - hours(6), comment(NOW - hours(5), BOT, "clinicbot reminder"))
    _raised(sb, 2, NOW - hours(6), comment(NOW - hours(5), OTHERBOT, "another bot"))
    _raised(sb, 3, NOW - hours(6), comment(NOW - hours(5), HERALD, "herald"))
    _raised(sb, 4, NOW - hours(6), comment(NOW - hours(5), DAVE, "not on the team"))
    _raised(sb, 5, NOW - hours(6), subscribed(NOW - hours(5), ALICE, ALICE))
    # the author answering their own task is no response, even when on the team
    sb.task(6, created=NOW - hours(6), priority="unbreak", owner=BOB, author=ALICE,
            events=[comment(NOW - hours(5), ALICE, "more details")])
    assert keys(run_check(UBN, sb.build())) == [f"unbreak-now:T{i}:no-response" for i in (1, 2, 3, 4, 5, 6)]


def test_without_a_known_team_any_human_but_the_author_responds():
    sb = SnapshotBuilder(NOW, team=())
    _raised(sb, 1, NOW - hours(6), comment(NOW - hours(5), DAVE, "on it"))
    _raised(sb, 2, NOW - hours(6), comment(NOW - hours(5), CAROL, "still broken"))
    assert keys(run_check(UBN, sb.build())) == ["unbreak-now:T2:no-response"]


def test_no_owner_is_a_second_condition():
    sb = SnapshotBuilder(NOW)
    _raised(sb, 1, NOW - hours(5), comment(NOW - hours(4), BOB, "ack"), owner_phid=None, title="Outage")
    _raised(sb, 2, NOW - hours(5), owner_phid=None)
    _raised(sb, 3, NOW - hours(3), owner_phid=None)  # not yet four hours
    f = run_check(UBN, sb.build())
    assert keys(f) == ["unbreak-now:T1:no-owner", "unbreak-now:T2:no-response", "unbreak-now:T2:no-owner"]
    assert f[0].summary == "T1 Outage has been Unbreak Now! for 5 hours and nobody owns it"
    assert f[0].facts["reason"] == "no-owner"


def test_filed_as_unbreak_now_counts_from_creation():
    sb = SnapshotBuilder(NOW)
    sb.task(1, created=NOW - hours(4), priority="unbreak", owner=ALICE)
    sb.task(2, created=NOW - hours(4) + SECOND, priority="unbreak", owner=ALICE)
    f = run_check(UBN, sb.build())
    assert keys(f) == ["unbreak-now:T1:no-response"] and f[0].facts["raised_by"] == ""


def test_raised_again_counts_from_the_latest_raise():
    sb = SnapshotBuilder(NOW)
    sb.task(1, created=NOW - days(10), priority="unbreak", owner=ALICE, events=[
        priority(NOW - days(9), CAROL, "unbreak", "normal"),
        comment(NOW - days(9) + hours(1), BOB, "fixed"),
        priority(NOW - days(8), BOB, "normal", "unbreak"),
        priority(NOW - hours(2), CAROL, "unbreak", "normal"),
    ])
    assert run_check(UBN, sb.build()) == []
    assert keys(run_check(UBN, sb.build(), hours=2)) == ["unbreak-now:T1:no-response"]


def test_priority_is_found_by_keyword_not_number():
    prios = (Priority(120, "Fire!", "unbreak"), Priority(100, "Very High", "veryhigh"), Priority(50, "Normal", "normal"))
    sb = SnapshotBuilder(NOW, priorities=prios)
    sb.task(1, created=NOW - days(1), priority="veryhigh", owner=ALICE)  # value 100 is not "unbreak" here
    sb.task(2, created=NOW - days(1), priority="unbreak", owner=ALICE)
    f = run_check(UBN, sb.build())
    assert keys(f) == ["unbreak-now:T2:no-response"] and "Fire!" in f[0].summary


def test_closed_tasks_never_fire():
    sb = SnapshotBuilder(NOW)
    _raised(sb, 1, NOW - days(3), owner_phid=None, closed=True)
    assert run_check(UBN, sb.build()) == []


def test_without_a_timeline_only_the_owner_condition_is_judged():
    sb = SnapshotBuilder(NOW)
    sb.task(1, created=NOW - days(1), priority="unbreak", owner=None, history=False)
    sb.task(2, created=NOW - days(1), priority="unbreak", owner=ALICE, history=False)
    assert keys(run_check(UBN, sb.build())) == ["unbreak-now:T1:no-owner"]


def test_business_hours_apply_when_configured():
    # raised Friday 16:00; Monday 11:00 is 3 working hours later
    sb = SnapshotBuilder(at("2024-05-13 11:00"))
    _raised(sb, 1, at("2024-05-10 16:00"))
    assert keys(run_check(UBN, sb.build())) == ["unbreak-now:T1:no-response"]
    assert run_check(UBN, sb.build(), business_hours=True) == []
    sb.now = at("2024-05-13 12:00")
    assert keys(run_check(UBN, sb.build(), business_hours=True)) == ["unbreak-now:T1:no-response"]


def test_reorder_in_a_column_is_not_a_response():
    sb = SnapshotBuilder(NOW)
    doing = sb.column("Team", "doing")
    _raised(sb, 1, NOW - hours(6), event("column", NOW - hours(5), BOB, board_phid=doing.board_phid,
                                           column_phid=doing.phid, from_column_phids=(doing.phid,)), columns=[doing])
    assert keys(run_check(UBN, sb.build())) == ["unbreak-now:T1:no-response"]
