"""unassigned-on-internal-board (issue 14 point 2): every task on the internal board is assigned to
a team member; unassigned ones are flagged by column role (not the inboxes, not done)."""

from __future__ import annotations

import pytest

from checkdata import ALICE, BOT, CAROL, DAVE, SECOND, SnapshotBuilder, at, days, hours, keys, moved, owner, run_check
from clinicbot.checks import context_factory, load_checks_and_settings, run_checks
from clinicbot.checks.hygiene import UnassignedOnInternalBoardCheck
from clinicbot.errors import ConfigError
from clinicbot.model import COLUMN_ROLES

NOW = at("2024-05-08 12:00")
CHECK = UnassignedOnInternalBoardCheck()
INTERNAL = ("inbox", "triage_meeting_inbox", "ready", "doing", "blocked", "waiting_for_review", "done")
EXTERNAL = ("review_needed", "review_in_progress", "discussing", "done")


def _boards(sb, *placed):
    """The two boards, and one unowned task (T1, T2, ...) three days old in each (board, role) given."""
    sb.board("Team", INTERNAL)
    sb.board("Reviews", EXTERNAL)
    for i, (board, role) in enumerate(placed, start=1):
        sb.task(i, created=NOW - days(3), columns=[sb.column(board, role)])
    return sb.build()


def test_every_role_but_the_inboxes_and_done_is_judged_on_an_internal_board():
    found = run_check(CHECK, _boards(SnapshotBuilder(NOW), *(("Team", role) for role in INTERNAL)))
    assert [f.facts["role"] for f in found] == ["ready", "doing", "blocked", "waiting_for_review"]
    f = found[0]
    assert f.key == "unassigned-on-internal-board:T3" and f.severity == "info"
    assert f.summary == "T3 Task number 3 has had no owner for 3 days in Team: Ready"
    assert (f.facts["reason"], f.facts["owner"], f.facts["board"], f.facts["threshold_hours"]) == \
        ("no-owner", "", "Team", 24)


def test_owned_by_the_team_is_fine_an_outsider_or_a_bot_is_not():
    sb = SnapshotBuilder(NOW)
    _boards(sb)
    ready = sb.column("Team", "ready")
    sb.task(1, created=NOW - days(3), columns=[ready], owner=ALICE)
    sb.task(2, created=NOW - days(3), columns=[ready], owner=DAVE)
    sb.task(3, created=NOW - days(3), columns=[ready], owner=BOT)
    sb.task(4, created=NOW - days(3), columns=[ready], closed=True)
    found = run_check(CHECK, sb.build())
    assert keys(found) == ["unassigned-on-internal-board:T2", "unassigned-on-internal-board:T3"]
    assert found[0].facts["reason"] == "owner-not-in-team" and found[0].facts["owner"] == "dave"
    assert found[0].summary == "T2 Task number 2 is owned by dave, who is not on the team, for 3 days in Team: Ready"


def test_the_external_review_board_is_not_internal_unless_named():
    snap = _boards(SnapshotBuilder(NOW), ("Reviews", "review_in_progress"), ("Team", "doing"))
    assert keys(run_check(CHECK, snap)) == ["unassigned-on-internal-board:T2"]
    assert keys(run_check(CHECK, snap, boards=["Reviews"])) == ["unassigned-on-internal-board:T1"]
    assert keys(run_check(CHECK, snap, boards=["#reviews", "PHID-PROJ-team"])) == \
        ["unassigned-on-internal-board:T1", "unassigned-on-internal-board:T2"]


def test_excluded_roles_and_hours_are_settings():
    snap = _boards(SnapshotBuilder(NOW), ("Team", "inbox"), ("Team", "blocked"))
    assert keys(run_check(CHECK, snap, excluded_roles=["blocked"])) == ["unassigned-on-internal-board:T1"]
    assert run_check(CHECK, snap, hours=73) == []
    assert keys(run_check(CHECK, snap, hours=72)) == ["unassigned-on-internal-board:T2"]


def test_the_clock_starts_at_the_later_of_the_move_and_losing_the_owner():
    sb = SnapshotBuilder(NOW)
    _boards(sb)
    ready, doing = sb.column("Team", "ready"), sb.column("Team", "doing")
    sb.task(1, created=NOW - days(9), columns=[doing],
            events=[moved(NOW - days(8), ALICE, doing, ready), owner(NOW - hours(24), ALICE, None, ALICE)])
    sb.task(2, created=NOW - days(9), columns=[doing],
            events=[moved(NOW - days(8), ALICE, doing, ready), owner(NOW - hours(24) + SECOND, ALICE, None, ALICE)])
    sb.task(3, created=NOW - days(9), columns=[doing],
            events=[owner(NOW - days(8), ALICE, None, ALICE), moved(NOW - hours(24), CAROL, doing, ready)])
    found = run_check(CHECK, sb.build())
    assert keys(found) == ["unassigned-on-internal-board:T1", "unassigned-on-internal-board:T3"]
    assert found[0].summary == "T1 Task number 1 has had no owner for 24 hours in Team: Doing"


def test_columns_without_a_role_are_not_judged():
    from dataclasses import replace

    sb = SnapshotBuilder(NOW)
    _boards(sb)
    col = sb.column("Team", "ready")
    board = sb.boards[col.board_phid]
    sb.boards[col.board_phid] = replace(board, columns=tuple(replace(c, role=None) if c.phid == col.phid else c
                                                             for c in board.columns))
    sb.task(1, created=NOW - days(3), columns=[col])
    assert run_check(CHECK, sb.build()) == []


def test_settings_are_validated_and_an_unknown_board_stops_the_run_naming_the_key():
    for bad, words in (({"excluded_roles": ["inbox", "limbo"]}, "unknown column role(s) ['limbo']"),
                       ({"boards": "Team"}, "must be a list"),
                       ({"boards": [""]}, "must list boards by name")):
        with pytest.raises(ConfigError) as err:
            load_checks_and_settings({"unassigned-on-internal-board": bad}, plugins=False)
        assert words in str(err.value) and "checks.unassigned-on-internal-board." in str(err.value)
    sb = SnapshotBuilder(NOW)
    _boards(sb)
    checks, settings = load_checks_and_settings({"unassigned-on-internal-board": {"boards": ["Team", "Kanban"]}},
                                                plugins=False, error=lambda k, m: ConfigError("team.yaml", k, m))
    with pytest.raises(ConfigError) as err:
        run_checks(checks, context_factory(sb.build(), settings), only="unassigned-on-internal-board")
    assert str(err.value) == ("team.yaml, key 'checks.unassigned-on-internal-board.boards[1]': 'Kanban' is not "
                              "a watched board; watched boards: Team (#team), Reviews (#reviews)")


def test_the_default_roles_are_real_roles():
    assert set(CHECK.defaults["excluded_roles"]) <= set(COLUMN_ROLES)
