"""Triage meeting follow-up (issue 14 point 6), the agenda's half: items that were on the previous
meeting's agenda are marked "carried over" in every medium, the others are not."""

from __future__ import annotations

from datetime import date, timezone

import pytest

from checkdata import ALICE, SnapshotBuilder, at, days, moved
from clinicbot.reports.agenda import agenda_task_ids, build_agenda
from clinicbot.reports.render import render
from clinicbot.state.metrics_history import MetricsStore

MEETING = at("2024-05-16 15:00")  # the Thursday after the meeting of 9 May


@pytest.fixture()
def agenda(tmp_path):
    sb = SnapshotBuilder(MEETING - days(1))
    tmi, inbox = sb.column("Team", "triage_meeting_inbox"), sb.column("Team", "inbox")
    sb.task(1, created=MEETING - days(12), title="Left over from last week", columns=[tmi],
            events=[moved(MEETING - days(10), ALICE, tmi, inbox)])
    sb.task(2, created=MEETING - days(3), title="New this week", columns=[tmi],
            events=[moved(MEETING - days(2), ALICE, tmi, inbox)])
    with MetricsStore(tmp_path) as store:
        store.save_agenda(date(2024, 5, 9), [1, 7], MEETING - days(7))
        data = build_agenda(sb.build(), team="Core", meeting_at=MEETING,
                            previous=store.previous_agenda(date(2024, 5, 16)), tz=timezone.utc)
    return data


def test_the_agenda_knows_what_the_previous_meeting_had(agenda):
    assert [(r["task"], r["carried_over"]) for r in agenda["items"]] == [("T1", True), ("T2", False)]
    assert (agenda["carried_over"], agenda["previous_meeting"], agenda["left"]) == (1, "2024-05-09", [7])
    assert agenda_task_ids(agenda) == [1, 2]  # what the job stores for the next meeting to compare with


@pytest.mark.parametrize("fmt", ["text", "md", "remarkup", "html", "term", "chat"])
def test_every_medium_marks_carried_over_items_and_only_them(agenda, fmt):
    text = render(agenda, fmt)
    lines = text.splitlines()
    [old] = [ln for ln in lines if "Left over from last week" in ln]
    [new] = [ln for ln in lines if "New this week" in ln]
    assert "(carried over)" in old and "carried over" not in new, (fmt, old, new)
