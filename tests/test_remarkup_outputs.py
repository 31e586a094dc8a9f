"""Every Remarkup clinicbot renders, built from hand-made data full of hostile text, is inert.

Check comments (every built-in check template, through the comment wrapper), digest, agenda and
metrics in ``remarkup`` (the same text goes to task comments and wiki pages). Task text here carries every reference form that makes a mention edge (bare ``T99``,
``{T98}``, a task URL), a file embed, a mention, markup, Remarkup table syntax and control
characters; :mod:`tests.remarkup_scan` (checked against the real Phorge's recordings in
``test_remarkup_recordings.py``) says what a real Phorge would still interpret.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from clinicbot.checks import BUILTIN_SLUGS
from clinicbot.metrics import compute_metrics
from clinicbot.checks.base import Finding
from clinicbot.reports.render import render
from clinicbot.reports.agenda import build_agenda
from clinicbot.reports.digest import build_digest
from clinicbot.reports.metrics_page import build_metrics_report
from clinicbot.reports.templating import Templates
from tests.remarkup_scan import problems
from tests.test_metrics import NOW
from tests.test_reports import D, board_snapshot

HOSTILE = ("See T99, {T98} and http://phab.example.org/T97 @alice {F1} **bold** `code` a | b [[ c "
           "%%%x%%% \x1b[2J\x1b]0;pwned\x07 \u202eevil\u202c \x85\x9b31m end")
# Fields of the report data that hold text from tasks, users or boards (not dates, ids or kinds).
TEXT_KEYS = {"team", "username", "name", "title", "status", "priority", "author", "responder", "board", "column",
             "by", "moved_by", "owner", "excerpt", "shift", "summary", "slug", "tags"}


def hostile(data: Any, key: str | None = None) -> Any:
    """``data`` with every text field replaced by HOSTILE."""
    if isinstance(data, dict):
        return {k: hostile(v, k) for k, v in data.items()}
    if isinstance(data, list):
        return [HOSTILE if key in TEXT_KEYS and isinstance(v, str) else hostile(v, key) for v in data]
    if isinstance(data, str) and key in TEXT_KEYS:
        return HOSTILE
    return data


class Record:
    """A ledger record as build_digest reads it."""

    def __init__(self, task_id: int, at: datetime):
        self.check_slug, self.task_id, self.summary, self.severity = "untriaged", task_id, HOSTILE, "warning"
        self.created_at, self.handled_at = at, at


def reports() -> dict[str, dict[str, Any]]:
    from clinicbot.rotation import parse_rotation
    from tests.test_reports import ROTATION

    rotation = parse_rotation(ROTATION, "rotation.yaml")
    snap = board_snapshot()
    snap = replace(snap, tasks={p: replace(t, title=HOSTILE) for p, t in snap.tasks.items()})
    metrics = compute_metrics(snap, on_duty=lambda at: ["alice"])
    data = {
        "digest": build_digest(snap, team="Core", rotation=rotation, since=NOW - 2 * D,
                               findings=[Record(1, NOW - D), Record(3, NOW - timedelta(hours=1))]),
        "agenda": build_agenda(snap, team="Core", meeting_at=NOW + D, rotation=rotation,
                               previous={"meeting": "2026-11-16", "tasks": [3, 77]}),
        "metrics": build_metrics_report(metrics, team="Core", sla_hours={"unbreak_now": 4, "review": 72}),
    }
    return {kind: hostile(d) for kind, d in data.items()}


@pytest.mark.parametrize("kind", ["digest", "agenda", "metrics"])
def test_report_remarkup_has_no_edge_mention_markup_or_control_character(kind):
    data = reports()[kind]
    out = render(data, "remarkup")
    assert "pwned" in out and "T97" in out  # the hostile text is there, quoted
    assert problems(out) == [], out
    # tasks the report lists are links that create no edge (digest: UBN, inbox, review, meeting, findings)
    assert "[[ /T1 | T1 ]]" in out or kind == "agenda"
    if kind == "agenda":
        assert "[[ /T3 | T3 ]]" in out and "[[ /T77 | T77 ]]" in out  # listed, and left since last time


def test_the_scan_catches_the_old_templates_bare_monograms():
    # what the templates wrote before: "- T1 %%%title%%%"; the scan must flag it
    old = "- T1 %%%" + HOSTILE.replace("@", "@\u200b") + "%%%"
    found = problems(old)
    assert any(p.startswith("bare monogram: T1") for p in found) and "stray %%%" in found
    assert any(p.startswith("braces") for p in found) and any(p.startswith("task URL") for p in found)
    assert any(p.startswith("control character") for p in found)


FACT_TEXT = {"who": HOSTILE, "owner": HOSTILE, "board": HOSTILE, "column": HOSTILE, "priority": HOSTILE}


def _sections(templates: Templates) -> list[str]:
    out = []
    for slug in BUILTIN_SLUGS:
        for reason in ("no-owner", "no-response", "too-many", "other"):
            facts = {**FACT_TEXT, "reason": reason, "count": 7, "max_claimed": 3, "age_hours": 50.0, "age_days": 2.1,
                     "approximate": True, "tasks": [{"task": "T5", "title": HOSTILE}, {"task": 6, "title": HOSTILE}]}
            finding = Finding(slug, "PHID-TASK-5", 5, "critical", HOSTILE, facts, subject=reason)
            name = templates.first_of(f"checks/{slug}.remarkup.j2", "checks/_default.remarkup.j2")
            out.append(templates.render(name, finding=finding, facts=facts, task=None, repetition=2, escalated=True))
    custom = Finding("my-custom", "PHID-TASK-5", 5, "info", HOSTILE, {})
    out.append(templates.render("checks/_default.remarkup.j2", finding=custom, facts={}, task=None, repetition=0,
                                escalated=False))
    return out


def test_every_check_comment_has_no_edge_mention_markup_or_control_character():
    t = Templates()
    sections = _sections(t)
    comment = t.render("checks/_comment.remarkup.j2", task=None, sections=sections, mentions=["@carol", "@dave"],
                       on_duty_note="", team=HOSTILE, now=NOW)
    assert comment.startswith("@carol, @dave: ")  # the mentions clinicbot means to make stay live
    assert problems(comment, allowed_mentions={"carol", "dave"}) == [], comment
    assert "[[ /T5 | T5 ]]" in comment and "[[ /T6 | T6 ]]" in comment  # triage-meeting leftovers, linked


def test_a_custom_template_that_forgets_every_filter_still_posts_no_control_character(tmp_path):
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "untriaged.remarkup.j2").write_text("Raw: {{ finding.summary }}")
    t = Templates(tmp_path)
    text = t.render("checks/untriaged.remarkup.j2", finding=Finding("untriaged", "P", 1, "warning", HOSTILE))
    assert [p for p in problems(text) if p.startswith("control")] == []
