"""`clinicbot rotation` through click's CliRunner, with an App object as the main CLI passes it."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from icalendar import Calendar

from clinicbot.app import App
from clinicbot.cli_rotation import rotation
from clinicbot.errors import EXIT_CONFIG
from test_wiki import FakePhriction  # tests/ is on sys.path (rootdir conftest), as for conftest imports

EXAMPLE = Path(__file__).parent.parent / "rotation.yaml"
NOW = datetime(2026, 12, 20, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    shutil.copy(EXAMPLE, tmp_path / "rotation.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(args, app=None):
    app = app or App(now_override=NOW, env={})
    result = CliRunner().invoke(rotation, args, obj=app, catch_exceptions=False)
    return result, app


def test_table_output_defaults_to_the_local_rotation_yaml(workdir):
    result, _ = run([])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "On duty now" in out and "grace" in out and "heidi" in out
    assert "Changes in the next 14 days" in out and "Bob Brown (bob)" in out
    assert "bob:on:2026-12-21" in out  # a notice key, not an emoji
    assert "No coverage gaps" in out


def test_json_output(workdir):
    result, _ = run(["--format", "json", "--days", "4"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert [s["member"] for s in data["on_duty"]] == ["grace", "heidi", "alice"]
    assert data["changes"][0] == {"at": "2026-12-21T09:00:00+01:00", "member": "grace", "kind": "off",
                                  "source": "cycle"}
    assert [n["key"] for n in data["notices"]] == ["grace:off:2026-12-21", "bob:on:2026-12-21",
                                                   "alice:off:2026-12-24", "dave:on:2026-12-24"]
    assert data["gaps"] == [] and data["warnings"] == []
    assert data["manager"]["username"] == "mona"


def test_warnings_and_gaps_are_shown(workdir):
    text = (workdir / "rotation.yaml").read_text()
    (workdir / "rotation.yaml").write_text(text + "  - {member: bob, from: 2026-12-28, to: 2026-12-29}\n")
    result, _ = run(["--format", "json"])
    data = json.loads(result.output)
    assert result.exit_code == 0
    assert [w["key"] for w in data["warnings"]] == ["unavailable[2]"]
    result, _ = run(["--rotation", "rotation.yaml"])
    assert "warning: rotation.yaml:" in result.output and "bob is scheduled on duty" in result.output


def test_ical_file_is_written_and_parses(workdir):
    result, _ = run(["--ical", "duty.ics"])
    assert result.exit_code == 0
    assert "wrote duty.ics" in result.output
    cal = Calendar.from_ical((workdir / "duty.ics").read_bytes())
    uids = [str(e["UID"]) for e in cal.walk("VEVENT")]
    assert uids and len(uids) == len(set(uids))
    run(["--ical", "duty.ics"])
    again = [str(e["UID"]) for e in Calendar.from_ical((workdir / "duty.ics").read_bytes()).walk("VEVENT")]
    assert again == uids
    assert sorted(p.name for p in workdir.iterdir()) == ["duty.ics", "rotation.yaml"]


def test_wiki_prints_only_the_section(workdir):
    result, _ = run(["--wiki"])
    assert result.exit_code == 0
    assert result.output.startswith("= Current Clinic Duty Rotation =\n")
    assert "On duty now" in result.output and "┃" not in result.output


BROKEN = {
    "unknown key": ("handof: '10:00'\n", "handof"),
    "bad date": ("overrides:\n  - {from: 2026-13-01, to: 2026-12-02, replace: bob, with: erin}\n", "from"),
    "override names an unknown member": (
        "overrides:\n  - {from: 2026-12-01, to: 2026-12-02, replace: bob, with: zed}\n", "overrides[0].with"),
    "ends before it starts": ("shifts:\n  - {from: 2027-12-01, to: 2027-11-02, members: [bob]}\n", "shifts[0].to"),
    "contradictory shifts": ("shifts:\n  - {from: 2026-11-03, to: 2026-11-04, members: [alice]}\n", "shifts[0]"),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_rotation_exits_2_and_writes_nothing(workdir, name):
    extra, key = BROKEN[name]
    text = (workdir / "rotation.yaml").read_text()
    # Replace the example's overrides/unavailable tail so the broken entry is the only one.
    text = text.split("\noverrides:")[0] + "\n" + extra
    (workdir / "rotation.yaml").write_text(text)
    line = text.count("\n") - extra.count("\n") + 1 + (1 if extra.startswith(("overrides", "shifts")) else 0)
    client = FakePhriction({"team/": ("Team", "= Team =\n")})
    app = App(now_override=NOW, env={})
    app.set_client(client)
    result, _ = run(["--ical", "out.ics", "--publish", "team", "--apply"], app)
    assert result.exit_code == EXIT_CONFIG
    err = result.stderr if hasattr(result, "stderr") else result.output
    assert f"rotation.yaml:{line}" in err and key in err
    assert "\n" not in err.strip()
    assert not (workdir / "out.ics").exists()
    assert client.calls == []


def test_missing_rotation_file_exits_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result, _ = run([])
    assert result.exit_code == EXIT_CONFIG and "rotation.yaml: file not found" in result.output


def test_apply_without_publish_is_a_usage_error(workdir):
    result, _ = run(["--apply"])
    assert result.exit_code == EXIT_CONFIG and "--apply" in result.output


def test_publish_is_a_dry_run_by_default_then_one_edit(workdir):
    client = FakePhriction({"core_platform_team/": ("CPT", "= Core Platform Team =\n\nhello\n")})
    app = App(now_override=NOW, env={})
    app.set_client(client)
    result, _ = run(["--publish", "Core Platform Team"], app)
    assert result.exit_code == 0
    assert "dry run: would update wiki page core_platform_team/" in result.output
    assert "+= Current Clinic Duty Rotation =" in result.output
    assert client.writes == []
    for _ in range(2):
        result, _ = run(["--publish", "Core Platform Team", "--apply", "--format", "json"], app)
        assert result.exit_code == 0
    assert json.loads(result.output)["publish"]["status"] == "unchanged"
    assert len(client.writes) == 1
    content = client.pages["core_platform_team/"][1]
    assert content.startswith("= Core Platform Team =\n\nhello\n\n= Current Clinic Duty Rotation =\n")
