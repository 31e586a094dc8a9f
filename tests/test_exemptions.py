"""Exemptions (issue 14 point 7): per check, tasks exempt by project, marker tag, priority,
subtype or by task never fire, whatever the check (built-in or custom); the setting is validated
at load with one line naming the file and the key."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from checkdata import ALICE, BOB, SnapshotBuilder, at, days, hours
from clinicbot.checks import Finding, builtin_checks, context_factory, load_checks_and_settings, run_checks
from clinicbot.checks.exempt import Exemptions, parse_exempt, unresolved_projects
from clinicbot.checks.registry import as_check
from clinicbot.errors import ConfigError
from clinicbot.phab.boards import parse_task

NOW = at("2024-05-08 12:00")  # a Wednesday
SECURITY = "PHID-PROJ-security"
MARKER = "PHID-PROJ-clinicbotignore"
RECORDINGS = Path("/work/shared/conduit")


def _snapshot(**aliases: str):
    """Six untriaged tasks: T1 plain, T2 wishlist, T3 subtype bug, T4 tagged Security, T5 with the
    marker tag, T6 on a second board ("Ops") too."""
    sb = SnapshotBuilder(NOW)
    inbox, ops = sb.column("Team", "inbox"), sb.column("Ops", "inbox")
    for i in range(1, 7):
        sb.task(i, created=NOW - days(3), columns=[inbox, ops] if i == 6 else [inbox],
                priority="wish" if i == 2 else "normal")
    sb.tasks["PHID-TASK-3"] = replace(sb.tasks["PHID-TASK-3"], subtype="bug")
    sb.tasks["PHID-TASK-4"] = replace(sb.tasks["PHID-TASK-4"], project_phids=("PHID-PROJ-team", SECURITY))
    sb.tasks["PHID-TASK-5"] = replace(sb.tasks["PHID-TASK-5"], project_phids=("PHID-PROJ-team", MARKER))
    snap = sb.build()
    snap.project_aliases.update(aliases)
    return snap


def _run(exempt, snapshot=None, *, slug="untriaged"):
    checks, settings = load_checks_and_settings({slug: {"exempt": exempt}} if exempt is not None else {},
                                                plugins=False)
    return run_checks([c for c in checks if c.slug == slug], context_factory(snapshot or _snapshot(), settings))


def _ids(result) -> list[int]:
    return sorted(f.task_id for f in result.findings)


def test_without_exemptions_every_task_fires():
    assert _ids(_run(None)) == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("exempt, dropped, why", [
    ({"tasks": ["T1", 6]}, [1, 6], "task T1"),
    ({"priorities": ["wish"]}, [2], "priority Wishlist"),
    ({"priorities": ["Wishlist"]}, [2], "priority Wishlist"),
    ({"priorities": [0]}, [2], "priority Wishlist"),
    ({"subtypes": ["bug"]}, [3], "subtype bug"),
    ({"tags": [MARKER]}, [5], f"tag {MARKER}"),
    ({"projects": ["Ops"]}, [6], "project Ops"),         # a watched board by name: the task on its board
    ({"projects": ["#ops"]}, [6], "project #ops"),       # ... or by hashtag
    ({"projects": [SECURITY]}, [4], f"project {SECURITY}"),
])
def test_each_kind_of_exemption_drops_exactly_its_tasks(exempt, dropped, why):
    result = _run(exempt)
    assert _ids(result) == [i for i in range(1, 7) if i not in dropped]
    assert sorted(k for k, _ in result.exempted) == sorted(f"untriaged:T{i}" for i in dropped)
    assert result.exempted[0][1] == why


def test_projects_named_by_name_resolve_through_the_snapshots_aliases():
    # what the job looked up on the server for names that are not watched boards
    snap = _snapshot(**{"Security": SECURITY, "#clinicbot-ignore": MARKER})
    result = _run({"projects": ["Security"], "tags": ["#clinicbot-ignore"]}, snap)
    assert _ids(result) == [1, 2, 3, 6]
    assert dict(result.exempted) == {"untriaged:T4": "project Security", "untriaged:T5": "tag #clinicbot-ignore"}


def test_only_names_the_snapshot_cannot_resolve_are_left_to_the_server():
    section = {"untriaged": {"exempt": {"projects": ["Ops", "Security", SECURITY], "tags": ["#team", "#ignore"]}},
               "unprioritised": True}
    assert unresolved_projects(section, _snapshot()) == [("checks.untriaged.exempt.projects[1]", "Security"),
                                                         ("checks.untriaged.exempt.tags[1]", "#ignore")]
    assert unresolved_projects(section, _snapshot(Security=SECURITY, **{"#ignore": MARKER})) == []


def test_an_unknown_project_or_priority_stops_the_run_naming_the_key():
    with pytest.raises(ConfigError) as err:
        _run({"tags": ["Marker"]})
    assert err.value.key == "checks.untriaged.exempt.tags[0]" and "no project 'Marker'" in str(err.value)
    with pytest.raises(ConfigError) as err:
        _run({"priorities": ["urgent"]})
    assert err.value.key == "checks.untriaged.exempt.priorities[0]" and "wish (Wishlist, 0)" in str(err.value)


def test_exemptions_apply_to_custom_checks_too():
    def shouting(ctx):
        """Every open task."""
        return [Finding("shouting", t.phid, t.id, "info", t.title) for t in ctx.snapshot.tasks.values()]

    check = as_check(shouting, "shouting")
    from clinicbot.checks.settings import parse_check_settings

    settings = parse_check_settings({"shouting": {"exempt": {"tasks": ["T2", "T3"]}}}, [check])
    result = run_checks([check], context_factory(_snapshot(), settings))
    assert _ids(result) == [1, 4, 5, 6]


def test_every_builtin_accepts_exempt_and_a_task_finding_of_an_exempt_task_never_fires():
    section = {c.slug: {"exempt": {"tasks": ["T1", "T2", "T3", "T4", "T5", "T6"]}} for c in builtin_checks()}
    checks, settings = load_checks_and_settings(section, plugins=False)
    result = run_checks(checks, context_factory(_snapshot(), settings))
    assert [f for f in result.findings if f.task_id is not None] == []
    assert result.exempted and not result.failures


def test_the_meeting_leftovers_leave_exempt_tasks_out_of_their_list_and_count():
    sb = SnapshotBuilder(NOW)  # Wednesday; the meeting was last Thursday 15:00
    meeting = sb.column("Team", "triage_meeting_inbox")
    for i in (1, 2, 3):
        sb.task(i, created=NOW - days(10), columns=[meeting], priority="wish" if i == 2 else "normal")
    snap = sb.build()
    found = _run({"priorities": ["wish"]}, snap, slug="triage-meeting-leftovers").findings
    assert len(found) == 1 and found[0].facts["count"] == 2 and found[0].facts["task_monograms"] == ["T1", "T3"]
    everything = _run({"tasks": [1, 2, 3]}, snap, slug="triage-meeting-leftovers")
    assert everything.findings == []


def test_claimed_exempt_tasks_do_not_count_towards_max_claimed():
    sb = SnapshotBuilder(NOW)
    doing = sb.column("Team", "doing")
    for i in range(1, 4):
        sb.task(i, created=NOW - hours(1), columns=[doing], owner=ALICE, priority="wish" if i == 3 else "normal")
    sb.task(9, created=NOW - hours(1), columns=[doing], owner=BOB)
    checks, settings = load_checks_and_settings({"cookie-licking": {"max_claimed": 2}}, plugins=False)
    lick = [c for c in checks if c.slug == "cookie-licking"]
    assert [f.subject for f in run_checks(lick, context_factory(sb.build(), settings)).findings] == ["alice"]
    checks, settings = load_checks_and_settings(
        {"cookie-licking": {"max_claimed": 2, "exempt": {"priorities": ["wish"]}}}, plugins=False)
    assert run_checks(lick, context_factory(sb.build(), settings)).findings == []


# -- the config -----------------------------------------------------------------------------------


def test_the_setting_is_parsed_as_written():
    e = parse_exempt({"projects": ["Ops "], "tags": ["#x"], "priorities": ["low", 25, "90"], "subtypes": ["bug"],
                      "tasks": ["T12", 13, "t14"]}, "checks.x.exempt")
    assert (e.projects, e.tags, e.priorities, e.subtypes, e.tasks) == (("Ops",), ("#x",), ("low", 25, 90), ("bug",),
                                                                      (12, 13, 14))
    assert not parse_exempt(None, "checks.x.exempt") and not Exemptions() and e


@pytest.mark.parametrize("value, key, words", [
    (["T1"], "checks.untriaged.exempt", "must be a mapping"),
    ({"labels": ["x"]}, "checks.untriaged.exempt.labels", "unknown key; keys of exempt: projects, tags"),
    ({"tasks": "T1"}, "checks.untriaged.exempt.tasks", "must be a list of tasks"),
    ({"tasks": ["T1", "D12"]}, "checks.untriaged.exempt.tasks[1]", "must be a task like T123"),
    ({"tasks": [True]}, "checks.untriaged.exempt.tasks[0]", "must be a task like T123"),
    ({"projects": [""]}, "checks.untriaged.exempt.projects[0]", "must be project names"),
    ({"tags": [12]}, "checks.untriaged.exempt.tags[0]", "must be project names"),
    ({"priorities": [{"value": 1}]}, "checks.untriaged.exempt.priorities[0]", "priority keyword, name or value"),
    ({"subtypes": "bug"}, "checks.untriaged.exempt.subtypes", "must be a list of subtype keys"),
])
def test_a_bad_exempt_setting_is_one_line_naming_file_and_key_at_load(tmp_path, value, key, words):
    import clinicbot.jobs  # noqa: F401  (registers the checks section's validator)
    from clinicbot.config import load_config

    path = tmp_path / "clinicbot.yaml"
    path.write_text(yaml.safe_dump({"phabricator": {"url": "http://127.0.0.1:1/"},
                                    "boards": [{"project": "Team", "columns": {"inbox": ["Inbox"]}}],
                                    "checks": {"untriaged": {"exempt": value}}}))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert err.value.key == key and err.value.file == str(path) and words in text and "\n" not in text


def test_parse_task_reads_the_subtype_phorge_sends():
    recording = json.loads((RECORDINGS / "maniphest.search--ids.json").read_text())
    item = recording["response"]["result"]["data"][0]
    assert item["fields"]["subtype"] == "default"
    assert parse_task(item).subtype == "default"
    custom = {**item, "fields": {**item["fields"], "subtype": "bug"}}
    assert parse_task(custom).subtype == "bug"
