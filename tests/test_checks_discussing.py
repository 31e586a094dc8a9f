"""discussing-unanswered and discussing-answered (issue 14 point 1): the Discussing column waits for
the team's input; unanswered for N days is flagged, answered ones are listed for the digest."""

from __future__ import annotations

from checkdata import ALICE, BOB, BOT, CAROL, OTHERBOT, SECOND, SnapshotBuilder, at, comment, days, event, hours
from checkdata import keys, moved, owner, run_check, subscribed
from clinicbot.checks import ColumnDwellCheck, builtin_checks, context_factory, load_checks_and_settings, run_checks
from clinicbot.checks.reviews import DiscussingAnsweredCheck, DiscussingUnansweredCheck
from clinicbot.model import iso
from test_checks_dwell import _discussing  # a task moved into Review: Discussing at `entered`

NOW = at("2024-05-08 12:00")
UNANSWERED = DiscussingUnansweredCheck()
ANSWERED = DiscussingAnsweredCheck()


def test_unanswered_is_a_declared_dwell_check_of_seven_days_by_default():
    assert isinstance(UNANSWERED, ColumnDwellCheck) and UNANSWERED.defaults == {"days": 7}
    assert UNANSWERED.unanswered and UNANSWERED.roles == ("discussing",) and UNANSWERED.severity == "warning"
    assert "discussing-unanswered" in {c.slug for c in builtin_checks()}


def test_unanswered_fires_after_exactly_seven_days_without_a_team_answer():
    sb = SnapshotBuilder(NOW)
    for task_id, entered in ((1, NOW - days(7)), (2, NOW - days(7) + SECOND)):
        _discussing(sb, task_id, entered, title=f"Which queue, {task_id}?")
    [first] = run_check(UNANSWERED, sb.build())
    assert (first.key, first.facts["column"], first.facts["threshold_days"]) == \
        ("discussing-unanswered:T1", "Discussing", 7)
    assert first.summary == "T1 Which queue, 1? has waited 7 days in Review: Discussing for the team's input"
    assert len(run_check(UNANSWERED, sb.build(), days=3)) == 2


def test_author_bots_outsiders_and_subscribing_are_no_answer_but_a_team_comment_is():
    sb = SnapshotBuilder(NOW)
    day = NOW - days(1)
    events = [comment(day, BOT, "reminder"), comment(day, OTHERBOT, "CI"), comment(day, CAROL, "any news?"),
              subscribed(day, ALICE, ALICE), comment(day, BOB, "my own question"),
              comment(NOW - days(2), ALICE, "use the fast queue"), comment(NOW - days(11), ALICE, "before it")]
    for task_id, answer in enumerate(events, start=1):  # T5 is BOB's own task; T7's answer predates Discussing
        _discussing(sb, task_id, NOW - days(10), answer, author=BOB if task_id == 5 else CAROL)
    snap = sb.build()
    assert keys(run_check(UNANSWERED, snap)) == [f"discussing-unanswered:T{i}" for i in (1, 2, 3, 4, 5, 7)]
    assert keys(run_check(ANSWERED, snap)) == ["discussing-answered:T6"]


def test_answered_says_who_answered_when_and_where():
    sb = SnapshotBuilder(NOW)
    _discussing(sb, 1, NOW - days(10), comment(NOW - days(9), CAROL, "bump"),
                comment(NOW - days(2), ALICE, "use the fast queue"), comment(NOW - days(1), BOB, "+1"),
                title="Which {queue}?")
    [f] = run_check(ANSWERED, sb.build())
    assert f.severity == "info" and f.task_id == 1
    assert f.summary == "T1 Which {queue}? in Review: Discussing was answered by alice 2 days ago: take it off the board"
    assert f.facts["answered_by"] == "alice" and f.facts["answered_at"] == iso(NOW - days(2))
    assert f.facts["answer_kind"] == "commented" and f.facts["entered_at"] == iso(NOW - days(10))
    assert (f.facts["board"], f.facts["column"], f.facts["approximate"]) == ("Review", "Discussing", False)
    assert f.facts["age_hours"] == 48.0 and f.facts["threshold_hours"] == 0


def test_an_owner_or_priority_change_by_the_team_is_an_answer_too():
    sb = SnapshotBuilder(NOW)
    _discussing(sb, 1, NOW - days(3), owner(NOW - hours(5), ALICE, ALICE))
    _discussing(sb, 2, NOW - days(3), event("title", NOW - hours(5), ALICE, old="a", new="b"))
    found = run_check(ANSWERED, sb.build())
    assert keys(found) == ["discussing-answered:T1"] and found[0].facts["answer_kind"] == "owner"
    assert found[0].summary.endswith("answered by alice 5 hours ago: take it off the board")


def test_answered_waits_its_hours_and_closed_tasks_never_fire():
    sb = SnapshotBuilder(NOW)
    _discussing(sb, 1, NOW - days(3), comment(NOW - hours(2), ALICE, "done"))
    _discussing(sb, 2, NOW - days(3), comment(NOW - hours(30), ALICE, "done"), closed=True)
    snap = sb.build()
    assert keys(run_check(ANSWERED, snap)) == ["discussing-answered:T1"]
    assert run_check(ANSWERED, snap, hours=3) == []
    assert keys(run_check(ANSWERED, snap, hours=2)) == ["discussing-answered:T1"]


def test_a_task_without_history_is_in_neither_list():
    sb = SnapshotBuilder(NOW)
    sb.task(1, created=NOW - days(30), columns=[sb.column("Reviews", "discussing")], history=False)
    snap = sb.build()
    assert run_check(UNANSWERED, snap) == [] and run_check(ANSWERED, snap) == []


def test_a_task_discussed_on_two_boards_is_answered_once_where_it_was_answered_first():
    sb = SnapshotBuilder(NOW)
    a, b = sb.column("Review", "discussing"), sb.column("Other", "discussing")
    sb.task(1, created=NOW - days(20), columns=[a, b],
            events=[moved(NOW - days(10), CAROL, a), moved(NOW - days(3), CAROL, b), comment(NOW - days(5), ALICE)])
    [f] = run_check(ANSWERED, sb.build())
    # answered after entering Review (day -10), not after entering Other (day -3)
    assert (f.facts["board"], f.facts["other_places"]) == ("Review", ["Other: Discussing"])
    assert keys(run_check(UNANSWERED, sb.build(), days=2)) == ["discussing-unanswered:T1"]  # Other: not answered since


def test_both_run_from_the_config_through_the_registry():
    sb = SnapshotBuilder(NOW)
    _discussing(sb, 1, NOW - days(9))
    _discussing(sb, 2, NOW - days(9), comment(NOW - days(1), ALICE, "here is my advice"))
    checks, settings = load_checks_and_settings({"discussing-unanswered": {"days": 8},
                                                 "discussing-answered": {"hours": 12}}, plugins=False)
    result = run_checks(checks, context_factory(sb.build(), settings),
                        only=["discussing-unanswered", "discussing-answered"])
    assert sorted(keys(result.findings)) == ["discussing-answered:T2", "discussing-unanswered:T1"]
    assert settings["discussing-answered"].handlers == ("console",)
