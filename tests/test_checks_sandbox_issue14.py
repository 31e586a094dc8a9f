"""Issue 14 points 1, 2 and 7 through `clinicbot check` against the sandbox: tasks made with
maniphest.edit by an outsider and a team member, the sandbox's clock moved on, then the checks read
them back like any other task; exemptions from the config keep exempt tasks from firing, and a bad
one stops the run with one line naming the file and the key."""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from click.testing import CliRunner

from clinicbot.cli import cli
from clinicbot.jobs.demo import write_sandbox_config
from clinicbot.phab.conduit import ConduitClient
from clinicbot.sandbox import Sandbox, generate_scenario
from test_runner_sandbox import Clock  # the sandbox's clock, moved on by the test

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)
LATER = NOW + timedelta(days=8)


@pytest.fixture(scope="module")
def world():
    clock = Clock(NOW)
    sb = Sandbox(scenario=generate_scenario(NOW, size=30), clock=clock)
    sb.start()
    try:
        tokens = {user: "api-" + secrets.token_hex(14) for user in ("alice", "oscar")}  # generated, never real
        for user, token in tokens.items():
            sb.add_token(token, user)
        alice, oscar = (ConduitClient(sb.url, tokens[u]) for u in ("alice", "oscar"))
        boards = {p["fields"]["name"]: p["phid"] for p in oscar.search("project.search", constraints={
            "name": "C"}) if p["fields"]["name"] in ("Core Platform Team", "CPT External Code Reviews")}
        [security] = [p["phid"] for p in oscar.search("project.search", constraints={"name": "Security"})]
        columns = {(c["fields"]["project"]["phid"], c["fields"]["name"]): c["phid"]
                   for c in oscar.search("project.column.search", constraints={"projects": sorted(boards.values())})}
        ext, cpt = boards["CPT External Code Reviews"], boards["Core Platform Team"]

        def new(title: str, board: str, column: str, **more: str) -> dict:
            txs = [{"type": "title", "value": title}, {"type": "projects.add", "value": [board]},
                   {"type": "column", "value": [columns[(board, column)]]}]
            txs += [{"type": k, "value": v} for k, v in more.items()]
            task = oscar.call("maniphest.edit", transactions=txs)["object"]
            return {"id": task["id"], "phid": task["phid"], "monogram": f"T{task['id']}"}

        tasks = {
            "unanswered": new("Which queue should the importer use?", ext, "Discussing"),
            "answered": new("May we call the billing API directly?", ext, "Discussing"),
            "unowned": new("Unowned work on the internal board", cpt, "Ready"),
            "wishlist": new("Unowned wishlist item", cpt, "Ready", priority="wish"),
            "by-task": new("Unowned but exempt by task", cpt, "Ready"),
            "security": new("Unowned, tagged Security (a tag with no board)", cpt, "Ready",
                            **{"projects.add": [security]}),
        }
        clock.at = NOW + timedelta(days=1)
        alice.call("maniphest.edit", objectIdentifier=tasks["answered"]["phid"],
                   transactions=[{"type": "comment", "value": "Yes, through the v2 client."}])
        clock.at = LATER
        yield sb, tasks
    finally:
        sb.stop()


def _config(tmp_path, sb, checks: dict) -> str:
    path = write_sandbox_config(tmp_path / "clinicbot.yaml", sb.url, sb.token)
    data = yaml.safe_load(path.read_text())
    data["checks"] = checks
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def _check(config: str, *args: str):
    return CliRunner().invoke(cli, ["--config", config, "--now", LATER.isoformat(), "check", *args])


def _by_task(findings: list[dict], slug: str) -> dict[str, dict]:
    return {f["task"]: f for f in findings if f["slug"] == slug}


def test_the_new_checks_see_the_tasks_and_exemptions_keep_exempt_ones_quiet(world, tmp_path):
    sb, tasks = world
    exempt = {"priorities": ["wish"], "tasks": [tasks["by-task"]["monogram"]]}
    config = _config(tmp_path, sb, {"unassigned-on-internal-board": {"exempt": exempt}})
    result = _check(config, "--format", "json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["failures"] == []
    mono = {k: t["monogram"] for k, t in tasks.items()}
    unanswered = _by_task(data["findings"], "discussing-unanswered")
    answered = _by_task(data["findings"], "discussing-answered")
    assert mono["unanswered"] in unanswered and mono["answered"] not in unanswered
    assert unanswered[mono["unanswered"]]["facts"]["age_days"] == 8.0
    assert mono["answered"] in answered and mono["unanswered"] not in answered
    facts = answered[mono["answered"]]["facts"]
    assert (facts["answered_by"], facts["answer_kind"], facts["column"]) == ("alice", "commented", "Discussing")
    unassigned = _by_task(data["findings"], "unassigned-on-internal-board")
    assert mono["unowned"] in unassigned and unassigned[mono["unowned"]]["facts"]["role"] == "ready"
    assert mono["wishlist"] not in unassigned and mono["by-task"] not in unassigned  # exempt
    assert mono["security"] in unassigned
    # without the exemption they fire like the others
    plain = json.loads(_check(_config(tmp_path / "plain", sb, {}), "--format", "json").stdout)
    assert {mono["wishlist"], mono["by-task"], mono["unowned"]} <= set(_by_task(plain["findings"],
                                                                                "unassigned-on-internal-board"))


@pytest.mark.parametrize("name", ["Security", "#security"])
def test_a_tag_without_a_board_named_by_name_or_hashtag_is_looked_up_on_the_server(world, tmp_path, name):
    sb, tasks = world
    config = _config(tmp_path, sb, {"unassigned-on-internal-board": {"exempt": {"tags": [name]}}})
    data = json.loads(_check(config, "--format", "json").stdout)
    unassigned = _by_task(data["findings"], "unassigned-on-internal-board")
    assert tasks["unowned"]["monogram"] in unassigned and tasks["security"]["monogram"] not in unassigned


def test_an_exemption_naming_an_unknown_project_stops_the_run_with_one_line(world, tmp_path):
    sb, _ = world
    config = _config(tmp_path, sb, {"untriaged": {"exempt": {"projects": ["Core Platform Team"],
                                                             "tags": ["No Such Project"]}}})
    result = _check(config)
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert config in line and "checks.untriaged.exempt.tags[0]" in line and "No Such Project" in line
    assert "Traceback" not in result.output + result.stderr
