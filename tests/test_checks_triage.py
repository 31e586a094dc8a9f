"""untriaged, triage-meeting-leftovers, unprioritised."""

from __future__ import annotations

from datetime import timedelta

import pytest

from checkdata import (
    ALICE,
    BOT,
    CAROL,
    SECOND,
    SnapshotBuilder,
    at,
    comment,
    context,
    days,
    hours,
    keys,
    moved,
    priority,
    run_check,
)
from clinicbot.checks.settings import TeamSettings
from clinicbot.checks.triage import (
    TriageMeetingLeftoversCheck,
    UnprioritisedCheck,
    UntriagedCheck,
    latest_meeting,
)
from clinicbot.checks.hours import as_zone, parse_hhmm
from clinicbot.model import Priority
from clinicbot.model import iso

NOW = at("2024-05-08 12:00")  # a Wednesday
UNTRIAGED = UntriagedCheck()

# -- untriaged ---------------------------------------------------------------------------------------


def test_untriaged_fires_at_exactly_48_hours_not_a_second_earlier():
    sb = SnapshotBuilder(NOW)
    inbox = sb.column("Team", "inbox")
    sb.task(1, created=NOW - hours(48), columns=[inbox], title="Login broken")
    sb.task(2, created=NOW - hours(48) + SECOND, columns=[inbox])
    findings = run_check(UNTRIAGED, sb.build())
    assert keys(findings) == ["untriaged:T1"]
    f = findings[0]
    assert f.severity == "warning" and f.task_phid == "PHID-TASK-1" and f.task_id == 1
    assert f.summary == "T1 Login broken has waited 48 hours in Team: Inbox without triage"
    assert f.facts["task"] == "T1" and f.facts["title"] == "Login broken"
    assert f.facts["column"] == "Inbox" and f.facts["board"] == "Team"
    assert f.facts["age_hours"] == 48.0 and f.facts["age_days"] == 2.0
    assert f.facts["threshold_hours"] == 48 and f.facts["approximate"] is False
    assert f.facts["since"] == iso(NOW - hours(48))
    assert f.facts["author"] == "carol" and f.facts["owner"] == ""


def test_untriaged_threshold_is_configurable():
    sb = SnapshotBuilder(NOW)
    sb.task(1, created=NOW - hours(5), columns=[sb.column("Team", "inbox")])
    assert run_check(UNTRIAGED, sb.build()) == []
    assert keys(run_check(UNTRIAGED, sb.build(), hours=5)) == ["untriaged:T1"]


def test_untriaged_counts_from_entering_the_inbox_not_from_creation():
    sb = SnapshotBuilder(NOW)
    ready, inbox = sb.column("Team", "ready"), sb.column("Team", "inbox")
    sb.task(1, created=NOW - days(30), columns=[inbox],
            events=[moved(NOW - hours(48) + SECOND, ALICE, inbox, ready)])
    sb.task(2, created=NOW - days(30), columns=[inbox], events=[moved(NOW - hours(48), ALICE, inbox, ready)])
    assert keys(run_check(UNTRIAGED, sb.build())) == ["untriaged:T2"]


def test_untriaged_closed_tasks_never_fire():
    sb = SnapshotBuilder(NOW)
    sb.task(1, created=NOW - days(90), columns=[sb.column("Team", "inbox")], closed=True)
    assert run_check(UNTRIAGED, sb.build()) == []


def test_untriaged_in_business_hours_friday_evening_is_not_48_hours_old_on_monday():
    monday = at("2024-05-13 10:00")
    sb = SnapshotBuilder(monday)
    sb.task(1, created=at("2024-05-10 18:00"), columns=[sb.column("Team", "inbox")])  # Friday evening
    snap = sb.build()
    assert keys(run_check(UNTRIAGED, snap)) == ["untriaged:T1"]  # 64 wall-clock hours
    assert run_check(UNTRIAGED, snap, business_hours=True) == []  # 1 working hour
    # 48 working hours = six working days: Mon 13 to Mon 20 May, 17:00
    sb.now = at("2024-05-20 17:00")
    f = run_check(UNTRIAGED, sb.build(), business_hours=True)
    assert keys(f) == ["untriaged:T1"]
    assert f[0].facts["business_hours"] is True and f[0].facts["age_hours"] == 48.0
    assert "48 working hours" in f[0].summary
    sb.now = at("2024-05-20 17:00") - SECOND
    assert run_check(UNTRIAGED, sb.build(), business_hours=True) == []


def test_untriaged_on_two_boards_is_one_finding_about_the_longest_wait():
    sb = SnapshotBuilder(NOW)
    a_inbox, b_inbox = sb.column("Alpha", "inbox"), sb.column("Beta", "inbox")
    b_ready = sb.column("Beta", "ready")
    # Alpha: filed there 3 days ago; Beta: moved into its inbox 1 hour ago
    sb.task(1, created=NOW - days(3), columns=[a_inbox, b_inbox], events=[moved(NOW - hours(1), ALICE, b_inbox, b_ready)])
    # the other way round: fresh on Alpha, old on Beta
    sb.task(2, created=NOW - days(3), columns=[a_inbox, b_inbox],
            events=[moved(NOW - hours(1), ALICE, a_inbox, sb.column("Alpha", "ready"))])
    findings = run_check(UNTRIAGED, sb.build())
    assert keys(findings) == ["untriaged:T1", "untriaged:T2"]
    assert findings[0].facts["board"] == "Alpha" and findings[0].facts["other_places"] == ["Beta: Inbox"]
    assert findings[1].facts["board"] == "Beta" and findings[1].facts["other_places"] == ["Alpha: Inbox"]
    # fresh on both boards: nothing
    sb2 = SnapshotBuilder(NOW)
    a, b = sb2.column("Alpha", "inbox"), sb2.column("Beta", "inbox")
    sb2.task(3, created=NOW - hours(3), columns=[a, b])
    assert run_check(UNTRIAGED, sb2.build()) == []


def test_untriaged_approximate_entry_times_are_marked():
    sb = SnapshotBuilder(NOW)
    inbox = sb.column("Team", "inbox")
    sb.approximate_columns.add(inbox.phid)
    sb.task(1, created=NOW - days(3), columns=[inbox])
    f = run_check(UNTRIAGED, sb.build())[0]
    assert f.facts["approximate"] is True and "waited about 72 hours" in f.summary


def test_untriaged_without_a_timeline_uses_creation_approximately():
    sb = SnapshotBuilder(NOW)
    sb.task(1, created=NOW - days(3), columns=[sb.column("Team", "inbox")], history=False)
    f = run_check(UNTRIAGED, sb.build())[0]
    assert f.facts["approximate"] is True and f.facts["age_hours"] == 72.0


def test_untriaged_bot_activity_changes_nothing():
    sb = SnapshotBuilder(NOW)
    sb.task(1, created=NOW - days(3), columns=[sb.column("Team", "inbox")],
            events=[comment(NOW - hours(1), BOT, "reminder")])
    assert keys(run_check(UNTRIAGED, sb.build())) == ["untriaged:T1"]


def test_summary_is_one_line_whatever_the_title():
    sb = SnapshotBuilder(NOW)
    sb.task(1, created=NOW - days(3), columns=[sb.column("Team", "inbox")], title="two\nlines")
    f = run_check(UNTRIAGED, sb.build())[0]
    assert "\n" not in f.summary and "two lines" in f.summary and f.facts["title"] == "two\nlines"


# -- triage-meeting-leftovers ------------------------------------------------------------------------

MEETINGS = TriageMeetingLeftoversCheck()
BERLIN_TEAM = TeamSettings(timezone="Europe/Berlin", meeting_weekday="thu", meeting_time="15:00")
# Thursday 9 May 2024, 15:00 in Berlin (CEST) is 13:00 UTC
MEETING = at("2024-05-09 15:00", "Europe/Berlin")


def _meeting_snapshot(now, *entries):
    sb = SnapshotBuilder(now)
    col = sb.column("Team", "triage_meeting_inbox")
    other = sb.column("Team", "inbox")
    for task_id, entered in entries:
        sb.task(task_id, created=entered - days(1), columns=[col], events=[moved(entered, ALICE, col, other)])
    return sb


def test_leftovers_are_tasks_that_were_there_before_the_meeting_started():
    now = MEETING + hours(3)
    sb = _meeting_snapshot(now, (1, MEETING - SECOND), (2, MEETING), (3, MEETING - days(3)))
    findings = run_check(MEETINGS, sb.build(), team=BERLIN_TEAM)
    assert len(findings) == 1
    f = findings[0]
    assert f.task_phid is None and f.task_id is None and f.subject == "2024-05-09"
    assert f.key == "triage-meeting-leftovers:-:2024-05-09"
    assert f.facts["count"] == 2 and f.facts["task_monograms"] == ["T3", "T1"]
    assert f.facts["meeting_local"] == "Thu 2024-05-09 15:00 (Europe/Berlin)"
    assert f.facts["meeting_at"] == iso(MEETING)
    assert f.facts["columns"] == ["Team: Triage Meeting Inbox"]
    assert {"task", "title", "column", "board", "since", "approximate", "age_days"} <= set(f.facts["tasks"][0])
    assert f.summary == ("Schedule a follow-up triage meeting by Sun 2024-05-12: 2 tasks in Team: Triage Meeting "
                         "Inbox were already there before the meeting of Thu 2024-05-09 15:00 (Europe/Berlin) and "
                         "are still waiting")
    assert (f.facts["followup_by"], f.facts["followup_overdue"]) == ("2024-05-12", False)


def test_the_follow_up_is_one_finding_a_week_and_says_so_when_the_week_ended_without_one():
    sb = _meeting_snapshot(MEETING + hours(3), (1, MEETING - days(2)), (2, MEETING - days(1)), (3, MEETING - hours(1)))
    keys_seen = set()
    for later in (hours(3), days(1), days(3) + hours(8)):  # Thursday evening .. Sunday 23:00 Berlin
        sb.now = MEETING + later
        [f] = run_check(MEETINGS, sb.build(), team=BERLIN_TEAM)
        keys_seen.add(f.key)
        assert f.summary.startswith("Schedule a follow-up triage meeting by Sun 2024-05-12: 3 tasks")
    sb.now = at("2024-05-13 00:30", "Europe/Berlin")  # Monday: the week is over
    [f] = run_check(MEETINGS, sb.build(), team=BERLIN_TEAM)
    keys_seen.add(f.key)
    assert f.facts["followup_overdue"] is True and f.facts["count"] == 3
    assert f.summary.startswith("No follow-up triage meeting was held by Sun 2024-05-12: 3 tasks in Team: Triage")
    assert keys_seen == {"triage-meeting-leftovers:-:2024-05-09"}  # one condition for the whole week


def test_the_follow_up_deadline_is_the_end_of_the_meeting_week():
    from datetime import date

    from clinicbot.checks.triage import followup_deadline

    assert followup_deadline(date(2024, 5, 9)) == date(2024, 5, 12)  # Thursday -> Sunday
    assert followup_deadline(date(2024, 5, 6)) == date(2024, 5, 12)  # Monday -> Sunday
    assert followup_deadline(date(2024, 5, 12)) == date(2024, 5, 12)  # a Sunday meeting: that day


def test_no_leftovers_no_finding_and_closed_tasks_do_not_count():
    now = MEETING + hours(3)
    sb = _meeting_snapshot(now, (2, MEETING + hours(1)))
    col = sb.column("Team", "triage_meeting_inbox")
    sb.task(5, created=MEETING - days(5), columns=[col], closed=True)
    assert run_check(MEETINGS, sb.build(), team=BERLIN_TEAM) == []


def test_during_the_grace_period_the_previous_meeting_counts():
    now = MEETING + hours(1)  # the meeting is still going on
    sb = _meeting_snapshot(now, (1, MEETING - hours(2)), (2, MEETING - days(7) - SECOND))
    f = run_check(MEETINGS, sb.build(), team=BERLIN_TEAM)
    assert [x.subject for x in f] == ["2024-05-02"] and f[0].facts["task_monograms"] == ["T2"]
    # once the grace period is over, this week's meeting counts
    sb.now = MEETING + hours(2)
    f = run_check(MEETINGS, sb.build(), team=BERLIN_TEAM)
    assert [x.subject for x in f] == ["2024-05-09"] and f[0].facts["task_monograms"] == ["T2", "T1"]


def test_meeting_day_and_time_come_from_the_team_or_the_check_setting():
    monday = at("2024-05-06 10:00", "Europe/Berlin")
    now = monday + days(1)
    sb = _meeting_snapshot(now, (1, monday - hours(1)))
    # the default Thursday meeting (2 May) was before the task arrived
    assert run_check(MEETINGS, sb.build(), team=BERLIN_TEAM) == []
    monday_team = TeamSettings(timezone="Europe/Berlin", meeting_weekday="mon", meeting_time="10:00")
    assert [f.subject for f in run_check(MEETINGS, sb.build(), team=monday_team)] == ["2024-05-06"]
    # a per-check setting wins over the team's
    assert [f.subject for f in run_check(MEETINGS, sb.build(), team=BERLIN_TEAM,
                                         meeting_weekday="mon", meeting_time="10:00")] == ["2024-05-06"]


def test_meeting_stays_at_local_time_across_dst():
    tz = as_zone("Europe/Berlin")
    winter = latest_meeting(at("2024-03-29 12:00"), 3, parse_hhmm("15:00"), tz, timedelta(0))
    summer = latest_meeting(at("2024-04-05 12:00"), 3, parse_hhmm("15:00"), tz, timedelta(0))
    assert winter == at("2024-03-28 14:00") and summer == at("2024-04-04 13:00")


def test_meeting_at_exactly_now_plus_grace_counts():
    tz = as_zone("UTC")
    thu = at("2024-05-09 15:00")
    assert latest_meeting(thu + hours(2), 3, parse_hhmm("15:00"), tz, hours(2)) == thu
    assert latest_meeting(thu + hours(2) - SECOND, 3, parse_hhmm("15:00"), tz, hours(2)) == thu - days(7)


def test_task_on_two_meeting_boards_is_listed_once():
    now = MEETING + hours(3)
    sb = SnapshotBuilder(now)
    a, b = sb.column("Alpha", "triage_meeting_inbox"), sb.column("Beta", "triage_meeting_inbox")
    sb.task(1, created=MEETING - days(2), columns=[a, b])
    f = run_check(MEETINGS, sb.build(), team=BERLIN_TEAM)[0]
    assert f.facts["count"] == 1


# -- unprioritised -------------------------------------------------------------------------------------

UNPRIO = UnprioritisedCheck()


def test_unprioritised_fires_after_exactly_seven_days():
    sb = SnapshotBuilder(NOW)
    sb.task(1, created=NOW - days(7), priority="triage", title="Crash on save")
    sb.task(2, created=NOW - days(7) + SECOND, priority="triage")
    sb.task(3, created=NOW - days(70), priority="normal")
    f = run_check(UNPRIO, sb.build())
    assert keys(f) == ["unprioritised:T1"]
    assert f[0].summary == "T1 Crash on save has had priority Needs Triage for 7 days"
    assert f[0].facts["age_days"] == 7.0 and f[0].facts["threshold_days"] == 7 and f[0].facts["priority"] == "Needs Triage"


def test_unprioritised_counts_from_the_latest_change_to_needs_triage():
    sb = SnapshotBuilder(NOW)
    sb.task(1, created=NOW - days(30), priority="triage",
            events=[priority(NOW - days(20), ALICE, "high", "triage"), priority(NOW - days(3), CAROL, "triage", "high")])
    assert run_check(UNPRIO, sb.build()) == []
    assert keys(run_check(UNPRIO, sb.build(), days=3)) == ["unprioritised:T1"]


def test_unprioritised_finds_the_priority_by_keyword_not_by_number():
    prios = (Priority(100, "Unbreak Now!", "unbreak"), Priority(95, "Triage Me", "triage"), Priority(50, "Normal", "normal"))
    sb = SnapshotBuilder(NOW, priorities=prios)
    sb.task(1, created=NOW - days(8), priority="triage")
    f = run_check(UNPRIO, sb.build())
    assert keys(f) == ["unprioritised:T1"] and "Triage Me" in f[0].summary
    # a server without a "triage" priority: nothing to report
    sb2 = SnapshotBuilder(NOW, priorities=(Priority(50, "Normal", "normal"),))
    sb2.task(1, created=NOW - days(80), priority="normal")
    assert run_check(UNPRIO, sb2.build()) == []


def test_unprioritised_closed_never_fires_and_bot_does_not_matter():
    sb = SnapshotBuilder(NOW)
    sb.task(1, created=NOW - days(9), priority="triage", closed=True)
    sb.task(2, created=NOW - days(9), priority="triage", events=[comment(NOW - hours(1), BOT)])
    assert keys(run_check(UNPRIO, sb.build())) == ["unprioritised:T2"]


def test_unprioritised_in_business_days():
    # filed Monday 6 May 09:00; 7 working days = Mon-Fri + Mon 13 + Tue 14 May, until 17:00
    sb = SnapshotBuilder(at("2024-05-14 17:00"))
    sb.task(1, created=at("2024-05-06 09:00"), priority="triage")
    f = run_check(UNPRIO, sb.build(), business_hours=True)
    assert keys(f) == ["unprioritised:T1"] and f[0].facts["age_days"] == 7.0
    assert "7 working days" in f[0].summary
    sb.now = at("2024-05-14 17:00") - SECOND
    assert run_check(UNPRIO, sb.build(), business_hours=True) == []


@pytest.mark.parametrize("check", [UNTRIAGED, MEETINGS, UNPRIO])
def test_empty_snapshot(check):
    assert run_check(check, SnapshotBuilder(NOW).build()) == []
    assert context(check, SnapshotBuilder(NOW).build()).settings.keys() >= set(check.defaults)
