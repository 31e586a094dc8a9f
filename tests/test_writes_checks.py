"""The checks behind the new writes (issue 14 points 3 and 4): review-migration and untag-candidate."""

from __future__ import annotations

import pytest

from checkdata import ALICE, BOT, CAROL, HERALD, OTHERBOT, SnapshotBuilder, at, comment, days, event, keys, moved, \
    run_check, subscribed
from clinicbot.checks.migration import ReviewMigrationCheck
from clinicbot.checks.settings import parse_check_settings
from clinicbot.checks.untag import UntagCandidateCheck
from clinicbot.errors import ConfigError

NOW = at("2026-11-22 09:00")
MIGRATE = {"from_board": "Team", "to_board": "#reviews"}


def migration_snapshot():
    sb = SnapshotBuilder(NOW)
    old_review = sb.column("Team", "review_needed")
    old_waiting = sb.column("Team", "waiting_for_review")
    inbox = sb.column("Team", "inbox")
    sb.board("Reviews", ("review_needed", "review_in_progress", "done"))
    new_needed = sb.column("Reviews", "review_needed")
    sb.task(1, created=NOW - days(9), columns=[old_review])                    # role match
    sb.task(2, created=NOW - days(9), columns=[old_waiting])                   # no role on the new board
    sb.task(3, created=NOW - days(9), columns=[inbox])                         # not a review column
    sb.task(4, created=NOW - days(9), columns=[old_review, new_needed])        # already migrated
    sb.task(5, created=NOW - days(9), columns=[old_review], closed=True)       # closed
    sb.task(6, created=NOW - days(30), columns=[old_review],
            events=[moved(NOW - days(2), ALICE, old_review, inbox)])           # moved recently
    return sb.build(), new_needed


def test_review_migration_lists_review_tasks_of_the_old_board_with_their_target():
    snap, new_needed = migration_snapshot()
    found = {f.task_id: f for f in run_check(ReviewMigrationCheck(), snap, **MIGRATE)}
    assert sorted(found) == [1, 2, 6]
    one = found[1].facts
    assert (one["from_board"], one["from_column"], one["to_board"], one["to_column"], one["to_column_phid"]) == \
        ("Team", "Review Needed", "Reviews", "Review Needed", new_needed.phid)
    assert one["move_due"] is True and "it belongs in Reviews: Review Needed" in found[1].summary
    assert found[2].facts["to_column"] is None and "map it in checks.review-migration.columns" in found[2].summary


def test_review_migration_explicit_column_map_and_unconfigured_is_silent():
    snap, _ = migration_snapshot()
    found = {f.task_id: f for f in run_check(ReviewMigrationCheck(), snap, **MIGRATE,
                                             columns={"Waiting For Review": "Review In Progress"})}
    assert found[2].facts["to_column"] == "Review In Progress"
    assert run_check(ReviewMigrationCheck(), snap) == []


def test_review_migration_transition_trigger_moves_only_tasks_that_changed_column_since():
    snap, _ = migration_snapshot()
    found = {f.task_id: f.facts["move_due"] for f in run_check(ReviewMigrationCheck(), snap, **MIGRATE,
                                                               trigger="transition", since="2026-11-15")}
    assert found == {1: False, 2: False, 6: True}


def test_review_migration_unknown_board_fails_naming_the_setting():
    snap, _ = migration_snapshot()
    with pytest.raises(ValueError, match="checks.review-migration.to_board: 'Nope' is not a watched board"):
        run_check(ReviewMigrationCheck(), snap, from_board="Team", to_board="Nope")


@pytest.mark.parametrize("key, value", [("trigger", "later"), ("since", "yesterday"), ("roles", ["reviewing"]),
                                        ("columns", {"A": 3}), ("from_board", 7)])
def test_review_migration_settings_are_validated(key, value):
    with pytest.raises(ConfigError) as info:
        parse_check_settings({"review-migration": {key: value}}, [ReviewMigrationCheck()])
    assert info.value.key == f"checks.review-migration.{key}"


# -- untag-candidate ------------------------------------------------------------------------------


def untag_snapshot():
    sb = SnapshotBuilder(NOW)
    ready = sb.column("Team", "ready")
    doing = sb.column("Team", "doing")
    old = NOW - days(500)
    sb.task(1, created=old, columns=[ready])                                                  # nothing since
    sb.task(2, created=old, columns=[ready], events=[comment(NOW - days(10), CAROL)])         # a person commented
    sb.task(3, created=old, columns=[ready], events=[                                         # only noise since
        comment(NOW - days(3), HERALD, "herald rule"), comment(NOW - days(3), BOT, "clinicbot"),
        comment(NOW - days(3), OTHERBOT, "other bot"), subscribed(NOW - days(2), ALICE, ALICE),
        event("projects", NOW - days(1), ALICE, old=(), new=("PHID-PROJ-x",), group_id="g1"),
        event("column", NOW - days(1), ALICE, board_phid=doing.board_phid, column_phid=doing.phid,
              from_column_phids=(ready.phid,), group_id="g1")])
    sb.task(4, created=old, columns=[ready], events=[                                         # a real move
        moved(NOW - days(1), ALICE, doing, ready)])
    sb.task(5, created=old, columns=[ready], closed=True)                                     # closed
    sb.task(6, created=NOW - days(30), columns=[ready])                                       # young
    sb.task(7, created=old, columns=[ready], history=False, modified=NOW - days(400))         # no history: modified
    sb.task(8, created=old, columns=[ready], history=False, modified=NOW - days(3))
    sb.task(9, created=old, columns=[ready], author=HERALD, created_event=True)               # filed by automation
    return sb.build()


def test_untag_candidates_have_had_no_real_activity():
    found = {f.task_id: f for f in run_check(UntagCandidateCheck(), untag_snapshot())}
    assert sorted(found) == [1, 3, 7, 9]
    three = found[3].facts
    assert three["last_activity_kind"] == "created" and three["untag"] == ["Team"]
    assert three["untag_phids"] == ["PHID-PROJ-team"] and found[9].facts["last_activity"] is None
    assert "no real activity since" in found[1].summary and "untag Team?" in found[1].summary


def test_untag_since_a_date_and_days():
    snap = untag_snapshot()
    assert sorted(f.task_id for f in run_check(UntagCandidateCheck(), snap, since="2026-11-20")) == [1, 2, 3, 6, 7, 8, 9]
    assert sorted(f.task_id for f in run_check(UntagCandidateCheck(), snap, days=5)) == [1, 2, 3, 6, 7, 9]
    assert keys(run_check(UntagCandidateCheck(), snap, projects=["PHID-PROJ-other"])) == []
    with pytest.raises(ConfigError) as info:
        parse_check_settings({"untag-candidate": {"since": "soon"}}, [UntagCandidateCheck()])
    assert info.value.key == "checks.untag-candidate.since"
