"""Reports on hand-built snapshots: sections, carry-over, escaping in every medium, settings, targets."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from clinicbot.config import parse_config
from clinicbot.errors import ConfigError
from clinicbot.metrics import compute_metrics
from clinicbot.state.metrics_history import MetricsStore
from clinicbot.model import Board, Column
from clinicbot.delivery.targets import Target, delivery_key, parse_target, report_settings, wiki_slug
from clinicbot.reports.render import MEDIA, format_hours, render
from clinicbot.reports.agenda import agenda_task_ids, build_agenda, next_meeting
from clinicbot.reports.digest import build_digest
from clinicbot.reports.metrics_page import build_metrics_report
from clinicbot.model import iso
from tests.test_metrics import ALICE, BOB, BOT, D, DOING, H, INBOX, NOW, OUTSIDER, REVIEW, REVIEW_BOARD, TEAM, ev, snapshot, task

EVIL = "@alice {F1} <script>alert(1)</script> <!channel> **bold**"
TMI = Column("PHID-PCOL-tmi", "Triage Meeting Inbox", TEAM, 2, role="triage_meeting_inbox")
WFR = Column("PHID-PCOL-wfr", "Waiting for Review", TEAM, 3, role="waiting_for_review")


def board_snapshot():
    """UBN T1 (evil title, answered by alice after 2 h), inbox T2, T3 in the meeting inbox (moved
    by bob yesterday), T4 waiting for review for 3 days, T5 an outside review request."""
    t1 = replace(task(1, created=NOW - 5 * D, priority=100, author=OUTSIDER), title=EVIL)
    t2 = task(2, created=NOW - 6 * D, priority=90)
    t3 = replace(task(3, created=NOW - 9 * D, column=TMI.phid), title=EVIL)
    t4 = task(4, created=NOW - 4 * D, column=WFR.phid, author=ALICE)
    t5 = task(5, created=NOW - 2 * D, board=REVIEW_BOARD, column=REVIEW.phid)
    snap = snapshot([t1, t2, t3, t4, t5], {
        1: [ev("priority", t1.created, OUTSIDER, old=None, new=100),
            ev("commented", t1.created + 2 * H, ALICE, text=f"on it {EVIL}")],
        3: [ev("column", NOW - 1 * D, BOB, board_phid=TEAM, column_phid=TMI.phid, from_column_phids=(INBOX.phid,)),
            ev("commented", NOW - 20 * H, OUTSIDER, text="Please decide " + EVIL + " " + "x" * 400),
            ev("commented", NOW - 10 * H, BOT, text="bot noise")],
        4: [ev("column", NOW - 3 * D, ALICE, board_phid=TEAM, column_phid=WFR.phid, from_column_phids=(DOING.phid,))],
    })
    snap.boards[TEAM] = Board(TEAM, "Team", "team", (INBOX, DOING, TMI, WFR))
    return snap


ROTATION = """\
name: Test clinic duty
timezone: UTC
handoff: "09:00"
on_duty: {min: 2, max: 3}
members: [alice, bob, carol, dave, erin, frank, grace, heidi]
manager: {username: maria, name: Maria Manager}
product_manager: pete
cycle:
  start: 2026-11-02
  order: [alice, bob, carol, dave, erin, frank, grace, heidi]
  shift_length: 3w
  per_shift: 3
  stagger: 1w
"""


@pytest.fixture
def rotation():
    from clinicbot.rotation import parse_rotation

    return parse_rotation(ROTATION, "rotation.yaml")


def test_digest_sections(rotation):
    d = build_digest(board_snapshot(), team="Core", rotation=rotation, since=NOW - 2 * D, findings=[])
    assert [p["username"] for p in d["on_duty"]] == ["carol", "dave", "erin"]  # week 3 of the cycle
    (ubn,) = d["unbreak"]
    assert (ubn["task"], ubn["responded"], ubn["responder"], ubn["response_hours"]) == ("T1", True, "alice", 2)
    assert [r["task"] for r in d["inbox"]] == ["T2", "T1"]  # oldest first
    assert [(r["task"], r["waiting_hours"]) for r in d["review_queue"]] == [("T4", 72), ("T5", 48)]
    assert [(r["task"], r["by"], r["still_there"]) for r in d["moved_to_meeting"]] == [("T3", "bob", True)]
    assert d["findings"] == [] and d["since"] == iso(NOW - 2 * D)
    later = build_digest(board_snapshot(), team="Core", since=NOW - 12 * H, findings=None)
    assert later["moved_to_meeting"] == [] and later["findings"] is None and later["rotation_changes"] is None


def test_digest_findings_since_last_digest():
    class Rec:
        def __init__(self, at, slug):
            self.created_at, self.check_slug, self.task_id, self.summary = at, slug, 7, f"{slug} {EVIL}"
            self.severity, self.handled_at = "warning", None

    d = build_digest(board_snapshot(), team="Core", since=NOW - 1 * D,
                     findings=[Rec(NOW - 2 * D, "old"), Rec(NOW - 3 * H, "new")])
    assert [f["slug"] for f in d["findings"]] == ["new"]


def test_empty_sections_say_so_in_one_line():
    empty = snapshot([], {})
    text = render(build_digest(empty, team="Core", findings=[]), "text")
    for line in ("No open Unbreak Now! tasks.", "The Inbox is empty.", "Nothing waits for review.",
                 "Nothing was moved to the Triage Meeting Inbox.", "No findings fired."):
        assert line in text


def test_agenda_items_and_carry_over(rotation, tmp_path):
    snap = board_snapshot()
    meeting_at = datetime(2026, 11, 26, 15, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    with MetricsStore(tmp_path) as store:
        store.save_agenda(date(2026, 11, 19), [3, 99], NOW - 3 * D)
        a = build_agenda(snap, team="Core", meeting_at=meeting_at, rotation=rotation,
                         previous=store.previous_agenda(date(2026, 11, 26)), tz=ZoneInfo("Europe/Berlin"))
    (item,) = a["items"]
    assert (item["task"], item["moved_by"], item["carried_over"], item["owner"]) == ("T3", "bob", True, None)
    assert item["moved_at"] == iso(NOW - 1 * D) and item["tags"] == ["Team"]
    assert item["last_comment"]["author"] == "out"  # the bot's later comment does not count
    assert len(item["last_comment"]["excerpt"]) == 200
    assert a["left"] == [99] and a["previous_meeting"] == "2026-11-19" and a["carried_over"] == 1
    assert a["meeting_date"] == "2026-11-26"
    assert a["attendees"]["manager"]["username"] == "maria" and a["attendees"]["product_manager"]["username"] == "pete"
    assert len(a["attendees"]["on_duty"]) == 3
    assert agenda_task_ids(a) == [3]


def test_next_meeting_today_counts_all_day():
    berlin = ZoneInfo("Europe/Berlin")
    thu = datetime(2026, 11, 26, 20, 0, tzinfo=timezone.utc)  # a Thursday evening
    assert next_meeting(thu, "thu", "15:00", berlin) == datetime(2026, 11, 26, 15, 0, tzinfo=berlin)
    assert next_meeting(thu + D, "thu", "15:00", berlin).date() == date(2026, 12, 3)
    assert next_meeting(NOW, "mon", "09:30", berlin) == datetime(2026, 11, 23, 9, 30, tzinfo=berlin)


def _all_reports(rotation):
    snap = board_snapshot()
    m = compute_metrics(snap, on_duty=lambda at: ["alice"])
    return [build_digest(snap, team="Core", rotation=rotation, since=NOW - 2 * D, findings=[]),
            build_agenda(snap, team="Core", meeting_at=NOW + D, rotation=rotation),
            build_metrics_report(m, team="Core", sla_hours={"unbreak_now": 4, "review": 72})]


@pytest.mark.parametrize("fmt", MEDIA)
def test_task_text_is_plain_text_in_every_format(rotation, fmt):
    for data in _all_reports(rotation):
        out = render(data, fmt)
        if data["kind"] == "metrics" and fmt == "chat":
            continue  # a summary: no task text at all
        assert "alert" in out, (data["kind"], fmt)  # the title is there ...
        if fmt in ("html", "md", "chat"):  # ... never as markup where it would be markup
            assert "<script>" not in out, (data["kind"], fmt)
        # the mention is broken (JSON is the raw data; Remarkup quotes it in inert monospace)
        if fmt == "json":
            assert json.dumps(EVIL) in out, data["kind"]  # the raw data, unchanged
        else:
            assert "@alice" not in (_outside_monospace(out) if fmt == "remarkup" else out), (data["kind"], fmt)
        if fmt == "html":
            assert "&lt;script&gt;" in out and "<!channel>" not in out
        if fmt == "md":
            assert "\\*\\*bold\\*\\*" in out and "\\{F1\\}" in out
        if fmt == "remarkup":
            # inline monospace (the form a real Phorge shows inert): no mention, embed, bold, stray %%%
            assert "%%%" not in out and "\u200b" not in out
            assert "`@alice {F1} <script>alert(1)</script> <!channel> **bold**`" in out
        if fmt == "chat":
            assert "&lt;!channel&gt;" in out and "`@\u200balice {F1} &lt;script&gt;" in out
        if fmt == "term":
            from rich.console import Console

            console = Console(record=True, width=400, color_system=None)
            console.print(out, markup=True, highlight=False)
            assert "**bold**" in console.export_text()
        if fmt == "json":
            assert EVIL in [r["title"] for r in _walk(json.loads(out))]


# Phorge's inline monospace rule (PhutilRemarkupMonospaceRule): what it matches is shown as plain text.
MONOSPACE = re.compile(r"##(.+?)##|\B`(.+?)`", re.ASCII)


def _outside_monospace(text):
    return "\n".join(MONOSPACE.sub(" ", line) for line in text.split("\n"))


def _walk(data):
    if isinstance(data, dict):
        if "title" in data:
            yield data
        for v in data.values():
            yield from _walk(v)
    elif isinstance(data, list):
        for v in data:
            yield from _walk(v)


def test_format_hours():
    assert format_hours(None) == "n/a"
    assert format_hours(0.25) == "15m"
    assert format_hours(2.5) == "2h 30m"
    assert format_hours(50) == "2d 2h"


def test_templates_dir_overrides_a_builtin(tmp_path):
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "digest.md.j2").write_text("custom {{ r.inbox|length }} {{ r.team|md }}")
    data = build_digest(board_snapshot(), team="Core", findings=[])
    assert render(data, "md", templates_dir=tmp_path) == "custom 2 Core\n"
    assert render(data, "text", templates_dir=tmp_path).startswith("Daily triage digest")


def _config(reports):
    return parse_config({"phabricator": {"url": "https://phab.example/"}, "boards": [{"project": "X"}],
                         "reports": reports}, Path("/etc/clinicbot.yaml"))


def test_report_settings_defaults_and_validation():
    s = report_settings(_config(None))
    assert s.window_days == 30 and s.sla_hours == {"unbreak_now": 4.0, "review": 72.0}
    s = report_settings(_config({"sla_hours": {"review": 24}, "window_days": 7, "email_to": ["a@example.org"]}))
    assert s.sla_hours == {"unbreak_now": 4.0, "review": 24.0} and s.window_days == 7
    for bad, key in (({"window_days": 0}, "reports.window_days"), ({"sla_hours": {"ubn": 1}}, "reports.sla_hours.ubn"),
                     ({"sla_hours": {"review": -1}}, "reports.sla_hours.review"), ({"colour": 1}, "reports.colour"),
                     ({"agenda_wiki_path": ""}, "reports.agenda_wiki_path"), ({"email_to": ["nobody"]}, "reports.email_to")):
        with pytest.raises(ConfigError) as err:
            report_settings(_config(bad))
        assert err.value.key == key and "/etc/clinicbot.yaml" in str(err.value)


def test_targets_and_keys():
    assert parse_target("task:123") == Target("task", "T123")
    assert parse_target("file:out/x.md") == Target("file", "out/x.md")
    with pytest.raises(ConfigError, match="--to"):
        parse_target("pigeon")
    digest = {"kind": "digest", "date": "2026-11-22", "team": "Core"}
    agenda = {"kind": "agenda", "meeting_date": "2026-11-26", "team": "Core"}
    assert delivery_key(digest, Target("chat")) == "digest:2026-11-22:chat"
    assert delivery_key(agenda, Target("task", "T5")) == "agenda:2026-11-26:task:T5"
    s = report_settings(_config({"agenda_wiki_path": "team/meetings"}))
    assert wiki_slug(agenda, s) == "team/meetings/2026-11-26/"
    assert wiki_slug({"kind": "metrics", "date": "x"}, s) == "clinic/metrics/"


def test_moved_to_meeting_reads_no_history_of_a_task_unchanged_since():
    """A move after ``since`` is an edit after it, so a task whose dateModified is older has no move
    to list and its history is not read (at 100k tasks, most of them)."""
    from clinicbot.reports.digest import moved_to_meeting

    snap = board_snapshot()
    t3 = snap.tasks["PHID-TASK-3"]
    assert [r["task"] for r in moved_to_meeting(snap, NOW - 2 * D)] == ["T3"]

    class Unread(dict):
        def get(self, phid, default=None):
            raise AssertionError(f"read the history of {phid}")

    snap.timelines = Unread()
    assert moved_to_meeting(snap, t3.modified) == []
