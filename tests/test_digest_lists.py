"""Finding-list sections: ``reports.digest.lists`` / ``reports.agenda.lists`` name checks whose
current findings the digest (agenda) lists, a section each; ``max_rows``/``section_max_rows`` cap
them. Config validated at load; an unknown slug is skipped with a warning; check settings apply."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import clinicbot.jobs  # noqa: F401  (registers the section validators)
from clinicbot.checks.base import Finding
from clinicbot.cli import cli
from clinicbot.config import parse_config, validate_sections
from clinicbot.delivery.targets import ReportSettings
from clinicbot.errors import ConfigError
from clinicbot.jobs import report_lists
from clinicbot.jobs.report_lists import DEFAULT_LISTS, heading, list_settings, listed_findings
from clinicbot.reports import digest as digest_module
from clinicbot.reports.agenda import build_agenda
from clinicbot.reports.digest import build_digest
from clinicbot.reports.render import MEDIA, render
from tests.test_digest_scale import two_board_snapshot
from tests.test_metrics import H, NOW
from tests.test_reports_sandbox import NOW_ISO, sandbox  # noqa: F401  (the generated world, served once)


def config(reports=None, checks=None):
    raw = {"phabricator": {"url": "https://phab.example/"}, "boards": [{"project": "Team"}]}
    if reports is not None:
        raw["reports"] = reports
    if checks is not None:
        raw["checks"] = checks
    return validate_sections(parse_config(raw, Path("/etc/clinicbot.yaml")))


# -- a test-only custom check (checks.<slug>.path) --------------------------------------------------


def answered(ctx):
    """Tasks the team answered (test-only): two findings about T1, one about T2."""
    out = []
    for task in sorted(ctx.snapshot.tasks.values(), key=lambda t: t.id)[:2]:
        out.append(Finding("answered", task.phid, task.id, "info", f"{task.monogram} {task.title} was answered "
                           f"48 hours ago", {"age_hours": 48.0}, subject="a"))
    first = min(ctx.snapshot.tasks.values(), key=lambda t: t.id)
    out.append(Finding("answered", first.phid, first.id, "warning", "also waited 384.6 hours", subject="b"))
    return out


answered.title = "Answered: remove from the board"  # type: ignore[attr-defined]


def broken(ctx):
    """Always fails (test-only)."""
    raise ValueError("boom")


CUSTOM = {"answered": {"path": "tests.test_digest_lists:answered"},
          "broken": {"path": "tests.test_digest_lists:broken"}}


# -- settings ------------------------------------------------------------------------------------------


def test_defaults_list_the_process_checks_and_cap_at_twenty():
    cfg = config()
    assert isinstance(cfg.typed["reports"], ReportSettings)  # the rest of reports: as before
    digest, agenda = list_settings(cfg, "digest"), list_settings(cfg, "agenda")
    assert digest.lists == ("discussing-answered", "review-migration", "untag-candidate") == DEFAULT_LISTS["digest"]
    assert agenda.lists == ("untag-candidate",)
    assert digest.caps.limit("inbox") == 20 and agenda.caps.limit("untag-candidate") == 20


def test_settings_are_read():
    cfg = config({"window_days": 9, "digest": {"max_rows": 5, "section_max_rows": {"inbox": 0, "answered": 2},
                                               "lists": ["answered"]},
                  "agenda": {"lists": []}})
    digest = list_settings(cfg, "digest")
    assert digest.lists == ("answered",) and digest.caps.limit("inbox") == 0 and digest.caps.limit("answered") == 2
    assert digest.caps.limit("review_queue") == 5 and list_settings(cfg, "agenda").lists == ()
    assert cfg.typed["reports"].window_days == 9


@pytest.mark.parametrize("reports, key", [
    ({"digest": {"max_rows": -1}}, "reports.digest.max_rows"),
    ({"digest": {"max_rows": True}}, "reports.digest.max_rows"),
    ({"digest": {"max_row": 3}}, "reports.digest.max_row"),
    ({"digest": {"lists": "untag-candidate"}}, "reports.digest.lists"),
    ({"digest": {"lists": ["Untag Candidate"]}}, "reports.digest.lists"),
    ({"digest": {"lists": ["a", "a"]}}, "reports.digest.lists"),
    ({"digest": {"section_max_rows": {"inbx": 3}}}, "reports.digest.section_max_rows.inbx"),
    ({"digest": {"section_max_rows": {"inbox": -2}}}, "reports.digest.section_max_rows.inbox"),
    ({"agenda": {"section_max_rows": {"inbox": 3}}}, "reports.agenda.section_max_rows.inbox"),
    ({"agenda": ["untag-candidate"]}, "reports.agenda"),
    ({"window_days": 0, "digest": {}}, "reports.window_days"),
])
def test_bad_settings_are_refused_at_load_naming_the_key(reports, key):
    with pytest.raises(ConfigError) as exc:
        config(reports)
    assert exc.value.key == key and exc.value.file == "/etc/clinicbot.yaml"


def test_a_bad_setting_stops_every_command_with_one_line(tmp_path):
    path = tmp_path / "clinicbot.yaml"
    path.write_text(yaml.safe_dump({"phabricator": {"url": "https://phab.example/"}, "boards": [{"project": "X"}],
                                    "reports": {"digest": {"max_rows": "many"}}}))
    result = CliRunner().invoke(cli, ["--config", str(path), "status"])
    assert result.exit_code == 2 and "reports.digest.max_rows" in result.output and "Traceback" not in result.output


def test_the_digest_sections_agree():
    assert report_lists.DIGEST_SECTIONS == digest_module.DIGEST_SECTIONS


# -- the mechanism --------------------------------------------------------------------------------


def test_a_listed_checks_current_findings_become_a_section(caplog):
    cfg = config(checks=CUSTOM)
    snap = two_board_snapshot()
    with caplog.at_level(logging.WARNING):
        listed, skipped = listed_findings(cfg, snap, None, ("answered", "no-such-check", "broken"))
    assert skipped == ["no-such-check"] and "no-such-check" in caplog.text and "skipped" in caplog.text
    assert [x.slug for x in listed] == ["answered", "broken"]
    assert listed[0].title == "Answered: remove from the board" and listed[1].error == "ValueError: boom"
    d = build_digest(snap, team="Core", findings=[], lists=listed, lists_skipped=skipped)
    section, failed = d["lists"]
    assert d["lists_skipped"] == ["no-such-check"]
    assert (section["slug"], section["total"], section["more"]) == ("answered", 2, None)
    first, second = section["rows"]
    # The warning first; T1 once though it sits on two boards and has two findings.
    assert (first["task"], first["severity"], first["boards"]) == ("T1", "warning", ["Team", "Reviews"])
    assert [f["detail"] for f in first["findings"]] == ["was answered 2d ago", "also waited 16d"]
    assert second["task"] == "T2"
    assert failed["error"] == "ValueError: boom" and failed["rows"] == []
    text = render(d, "text")
    assert "Answered: remove from the board (2):" in text
    assert "- T1 task 1 (Team, Reviews) — was answered 2d ago; also waited 16d" in text
    assert "The check broken failed (ValueError: boom)" in text


@pytest.mark.parametrize("fmt", MEDIA)
def test_list_sections_render_in_every_medium_with_their_cap(fmt):
    cfg = config(checks=CUSTOM)
    snap = two_board_snapshot()
    listed, _ = listed_findings(cfg, snap, None, ("answered",))
    caps = list_settings(config({"digest": {"lists": ["answered"], "section_max_rows": {"answered": 1}}}), "digest").caps
    d = build_digest(snap, team="Core", findings=[], base_url="https://phab.example/", caps=caps, lists=listed)
    (section,) = d["lists"]
    assert len(section["rows"]) == 1 and section["total"] == 2 and section["more"]["count"] == 1
    out = render(d, fmt)
    if fmt == "json":
        assert json.loads(out)["lists"][0]["more"]["path"] == "/maniphest/?ids=2"
        return
    plain = out.replace("\\", "").replace("`", "")  # Markdown escapes; Remarkup and chat quote text in monospace
    assert "Answered: remove from the board (2)" in plain
    section_text = plain.split("Answered: remove from the board")[1].split("Findings fired")[0]
    assert "…and 1 more" in section_text and "ids=2" in section_text
    assert "task 1" in section_text and "task 2" not in section_text  # the row after the cap is not printed
    if fmt == "remarkup":
        assert "[[ /T1 | T1 ]]" in out and "[[ /maniphest/?ids=2 | …and 1 more ]]" in out


def test_check_settings_and_exemptions_apply_as_in_check():
    snap = two_board_snapshot()  # T1 has waited 3 days in Waiting for Review
    strict = config(checks={"waiting-for-review": {"days": 2}})
    (section,), _ = listed_findings(strict, snap, None, ("waiting-for-review",))
    assert [f.task_id for f in section.findings] == [1]
    lenient = config(checks={"waiting-for-review": {"days": 5}})
    assert listed_findings(lenient, snap, None, ("waiting-for-review",))[0][0].findings == ()
    exempt = config(checks={"waiting-for-review": {"days": 2, "exempt": {"tasks": ["T1"]}}})
    assert listed_findings(exempt, snap, None, ("waiting-for-review",))[0][0].findings == ()
    # Switched off for `check`, still listed when the config asks for the list (like --only).
    off = config(checks={"waiting-for-review": {"days": 2, "enabled": False}})
    assert len(listed_findings(off, snap, None, ("waiting-for-review",))[0][0].findings) == 1


def test_headings():
    class Plain:
        slug = "some-check"

    class Titled:
        slug = "x"
        title = "Titled list"

    assert heading(Plain()) == "Some check" and heading(Titled()) == "Titled list"
    assert heading(replace_slug(Plain(), "untag-candidate")) == "Untag candidates: old tasks with no real activity"


def replace_slug(obj, slug):
    obj.slug = slug
    return obj


def test_the_agenda_lists_too():
    cfg = config(checks=CUSTOM)
    snap = two_board_snapshot()
    listed, _ = listed_findings(cfg, snap, None, ("answered",))
    agenda = build_agenda(snap, team="Core", meeting_at=NOW + 3 * H, lists=listed)
    assert [s["slug"] for s in agenda["lists"]] == ["answered"] and agenda["lists"][0]["total"] == 2
    for fmt in ("md", "remarkup", "text", "term", "html", "chat"):
        assert "Answered: remove from the board" in render(agenda, fmt), fmt
    assert [i["task"] for i in agenda["items"]] == ["T2"]  # the meeting's own items are never cut or replaced


def test_no_lists_no_sections():
    d = build_digest(two_board_snapshot(), team="Core", findings=[])
    assert d["lists"] == [] and d["lists_skipped"] == []
    assert "Nothing to list" not in render(d, "text")


def test_a_task_missing_from_the_snapshot_is_listed_from_the_finding():
    snap = two_board_snapshot()
    f = Finding("answered", "PHID-TASK-99", 99, "info", "T99 gone was answered", {"title": "gone"})
    from clinicbot.reports.finding_lists import Listed

    d = build_digest(snap, team="Core", findings=[], lists=[Listed("answered", "Answered", findings=(f,))])
    (row,) = d["lists"][0]["rows"]
    assert (row["task"], row["title"], row["boards"]) == ("T99", "gone", [])


# -- end to end: the sandbox and the demo ---------------------------------------------------------------


def test_digest_and_agenda_commands_list_the_configured_checks(sandbox, tmp_path):  # noqa: F811
    from clinicbot.jobs.demo import write_sandbox_config

    path = write_sandbox_config(tmp_path / "clinicbot.yaml", sandbox.url, sandbox.token)
    data = yaml.safe_load(path.read_text())
    data["reports"] = {"digest": {"lists": ["waiting-for-review", "no-such-check"], "max_rows": 3},
                       "agenda": {"lists": ["waiting-for-review"], "max_rows": 2}}
    path.write_text(yaml.safe_dump(data))

    def run(*args):
        result = CliRunner().invoke(cli, ["--config", str(path), "--now", NOW_ISO, *args, "--format", "json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout), result.stderr

    digest, stderr = run("digest")
    (section,) = digest["lists"]
    assert section["slug"] == "waiting-for-review" and section["total"] > 3 and len(section["rows"]) == 3
    assert section["more"]["count"] == section["total"] - 3 and digest["lists_skipped"] == ["no-such-check"]
    assert "no-such-check" in stderr
    assert len(digest["inbox"]) == 3 and digest["totals"]["inbox"] > 3
    ids = [r["id"] for r in section["rows"]]
    assert len(set(ids)) == len(ids)
    agenda, _ = run("agenda")
    assert agenda["lists"][0]["slug"] == "waiting-for-review" and len(agenda["lists"][0]["rows"]) == 2


def test_the_demo_shows_the_new_digest_sections():
    result = CliRunner().invoke(cli, ["--now", NOW.isoformat(), "demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Review tasks to move to the external review board (" in out
    answered = out.split("Answered in Discussing: remove from the board (1)")[1].split("\n\n")[1]
    assert answered.startswith("- T") and "Review: Mobile API rate limit headers" in answered  # the seeded one
    assert "Untag candidates: old tasks with no real activity (" in out
    assert "…and " in out and "/maniphest/?ids=" in out  # a section longer than its cap
    section = out.split("Untag candidates: old tasks with no real activity (")[1].split("\n\n")[1]
    assert section.startswith("- T") and "no real activity since" in section


def test_an_unknown_reports_key_names_digest_and_agenda_among_the_known_ones(tmp_path):
    import yaml
    from clinicbot.config import load_config
    from clinicbot.errors import ConfigError

    raw = {"phabricator": {"url": "https://phab.example.org/"}, "boards": [{"project": "Team", "columns": {"inbox": "Inbox"}}],
           "reports": {"digets": {"max_rows": 3}}}
    (tmp_path / "clinicbot.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as bad:
        load_config(tmp_path / "clinicbot.yaml")
    assert "reports.digets" in str(bad.value) and "agenda, " in str(bad.value) and "digest, " in str(bad.value)
