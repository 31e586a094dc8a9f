"""Response times as github/issue-metrics reports them (issue 14, point 9): for every incoming task,
time to first team response, time in the Inbox and time to close; mean, median and p90, overall and
per duty shift, in the metrics JSON and on the page. Every number is worked out by hand below."""

from __future__ import annotations

from dataclasses import replace

import pytest

from clinicbot.metrics import compute_metrics
from clinicbot.reports.metrics_page import build_metrics_report
from clinicbot.reports.render import render

from test_metrics import ALICE, BOB, BOT, D, DOING, H, INBOX, NOW, OTHER, OUTSIDER, REVIEW_BOARD, TEAM, ev, snapshot, task


def move(at, who, to, frm):
    return ev("column", at, who, board_phid=TEAM, column_phid=to.phid, from_column_phids=(frm.phid,))


def on_duty(at):
    return ["alice"] if at < NOW - 4 * D else ["bob"]


def board():
    t1 = task(1, created=NOW - 5 * D, closed=NOW - 1 * D, column=DOING.phid)
    t2 = task(2, created=NOW - 3 * D, author=ALICE)
    t3 = replace(task(3, created=NOW - 40 * D, column=DOING.phid), modified=NOW - 9 * D)
    t4 = task(4, created=NOW - 60 * D)  # arrived before the window: not incoming
    t5 = task(5, created=NOW - 2 * D)
    t6 = task(6, created=NOW - 1 * D)
    t7 = replace(task(7, created=NOW - 20 * D), project_phids=(TEAM, REVIEW_BOARD), modified=NOW - 5 * D)
    timelines = {
        # alice comments after 3 h (the first response); bob moves it out of the Inbox after 10 h;
        # closed 4 days after it arrived.
        1: [ev("commented", NOW - 5 * D + 3 * H, ALICE, text="on it"), move(NOW - 5 * D + 10 * H, BOB, DOING, INBOX)],
        # filed by alice herself: her own comment is no response, nor the bot's; bob's priority change is (2 h).
        2: [ev("commented", NOW - 3 * D + 1 * H, ALICE, text="more info"),
            ev("commented", NOW - 3 * D + 1 * H, BOT, text="ping"),
            ev("priority", NOW - 3 * D + 2 * H, BOB, old=50, new=90)],
        # created 40 days ago elsewhere; the team's project added 10 days ago (arrival); into the
        # Inbox (the default column); alice moves it to Doing 30 h later: response and end of the stay.
        3: [ev("projects", NOW - 40 * D, OUTSIDER, new=(OTHER,)),
            ev("projects", NOW - 10 * D, OUTSIDER, new=(TEAM,), old=(OTHER,)),
            move(NOW - 10 * D + 30 * H, ALICE, DOING, INBOX)],
        # created in Doing; bob moves it into the Inbox a day later: a response (24 h), and the stay begins.
        5: [move(NOW - 1 * D, BOB, INBOX, DOING)],
        # only a subscription by bob and the author's own comment: unanswered, still in the Inbox.
        6: [ev("subscribers", NOW - 20 * H, BOB, new=(BOB,)), ev("commented", NOW - 10 * H, OUTSIDER, text="hello?")],
        # tagged with the team at creation; the review board's project (also the team's) added later:
        # arrival is still the creation. alice answers after 5 h.
        7: [ev("projects", NOW - 20 * D, OUTSIDER, new=(TEAM,)), ev("commented", NOW - 20 * D + 5 * H, ALICE, text="x"),
            ev("projects", NOW - 5 * D, BOB, new=(REVIEW_BOARD,))],
    }
    return snapshot([t1, t2, t3, t4, t5, t6, t7], timelines)


def stats(d):
    return (d["count"], d["mean"], d["median"], d["p90"])


def test_overall_clocks_of_every_incoming_task():
    m = compute_metrics(board(), window_days=30, on_duty=on_duty).to_dict()
    c = m["incoming_clocks"]
    assert c["incoming"] == 6  # T1, T2, T3, T5, T6, T7 (not T4)
    # first responses: 3, 2, 30, 24, 5 h -> sorted 2 3 5 24 30: mean 12.8, median 5, p90 pos 3.6 -> 24 + 0.6 * 6
    assert stats(c["first_response"]) == (5, 12.8, 5, 27.6) and c["unanswered"] == 1
    # Inbox stays that ended: T1 10 h, T3 30 h; T2, T5, T6, T7 are still there
    assert stats(c["time_in_inbox"]) == (2, 20, 20, 28) and c["still_in_inbox"] == 4
    # closed: T1, 4 days after it arrived
    assert stats(c["time_to_close"]) == (1, 96, 96, 96) and c["still_open"] == 5
    # The history keeps the trends.
    assert m["incoming"] == 6 and m["incoming_response"]["median"] == 5 and m["inbox_time"]["count"] == 2
    assert m["time_to_close"]["median"] == 96


def test_clocks_per_duty_shift_by_arrival():
    rows = {r["shift"]: r for r in compute_metrics(board(), window_days=30, on_duty=on_duty).incoming_per_shift}
    alice, bob = rows["alice"], rows["bob"]
    # alice's shift (arrivals before NOW - 4 d): T1, T3 (arrived 10 days ago, not 40), T7
    assert alice["incoming"] == 3
    assert stats(alice["first_response"]) == (3, pytest.approx(12.67), 5, 25)  # 3, 30, 5 h
    assert stats(alice["time_in_inbox"]) == (2, 20, 20, 28) and alice["still_in_inbox"] == 1
    assert stats(alice["time_to_close"]) == (1, 96, 96, 96) and alice["still_open"] == 2
    # bob's: T2 (2 h), T5 (24 h), T6 (unanswered); all three still in the Inbox and open
    assert bob["incoming"] == 3
    assert stats(bob["first_response"]) == (2, 13, 13, 21.8) and bob["unanswered"] == 1
    assert stats(bob["time_in_inbox"]) == (0, None, None, None) and bob["still_in_inbox"] == 3
    assert bob["still_open"] == 3
    assert compute_metrics(board(), window_days=30).incoming_per_shift == []  # no rotation, no breakdown


def test_closing_or_leaving_the_board_ends_the_inbox_stay_and_outsiders_do_not_respond():
    t8 = task(8, created=NOW - 6 * D, closed=NOW - 5 * D)  # closed by its author a day later, still in the Inbox column
    t9 = replace(task(9, created=NOW - 7 * D, column=DOING.phid), project_phids=(OTHER,))
    snap = snapshot([t8, t9], {
        8: [ev("status", NOW - 5 * D, OUTSIDER, old="open", new="resolved")],
        # moved into the Inbox by its author, then the team's project removed: off the board
        9: [move(NOW - 6 * D, OUTSIDER, INBOX, DOING), ev("projects", NOW - 4 * D, BOB, old=(TEAM,), new=(OTHER,))],
    })
    c = compute_metrics(snap, window_days=30).incoming
    # t8: the author closing is no response; t9: neither the author's move nor bob's tag edit
    assert c["incoming"] == 2 and c["unanswered"] == 2 and c["first_response"]["count"] == 0
    # t8: 24 h in the Inbox (left by closing); t9: 48 h (left when the team's board was removed)
    assert stats(c["time_in_inbox"]) == (2, 36, 36, 45.6) and c["still_in_inbox"] == 0
    assert stats(c["time_to_close"]) == (1, 24, 24, 24)


def test_page_and_other_media_show_the_clocks():
    m = compute_metrics(board(), window_days=30, on_duty=on_duty)
    data = build_metrics_report(m, team="Core", history=[])
    html = render(data, "html")
    assert "Incoming tasks: time to first team response" in html
    assert "Incoming tasks per duty shift" in html
    for fmt in ("md", "term", "remarkup", "text"):
        text = render(data, fmt)
        assert "time in Inbox" in text and "time to close" in text, fmt
    assert "time to close" in render(data, "chat")
