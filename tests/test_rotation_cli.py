"""`clinicbot rotation` through click's CliRunner, with an App object as the main CLI passes it."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from icalendar import Calendar

from clinicbot.jobs.context import App
from clinicbot.cli import cli
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
    # Through the main group, as `clinicbot rotation` runs: errors become exit codes at its one boundary.
    client = app._client
    result = CliRunner().invoke(cli, ["rotation", *args], obj=app, catch_exceptions=False)
    if client is not None:  # the group closes the App after each command; the next run reuses the fake
        app.set_client(client)
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
    assert "**Schedule from" in result.output and "┃" not in result.output


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
    assert "dry run: would edit wiki page core_platform_team/" in result.output
    assert "+= Current Clinic Duty Rotation =" in result.output
    assert client.writes == []
    for _ in range(2):
        result, _ = run(["--publish", "Core Platform Team", "--apply", "--format", "json"], app)
        assert result.exit_code == 0
    assert json.loads(result.output)["publish"]["status"] == "unchanged"
    assert len(client.writes) == 1
    content = client.pages["core_platform_team/"][1]
    assert content.startswith("= Core Platform Team =\n\nhello\n\n= Current Clinic Duty Rotation =\n")


def test_publish_on_a_fresh_wiki_creates_root_and_parent_first_and_the_dry_run_says_so(workdir):
    client = FakePhriction(fresh=True)
    app = App(now_override=NOW, env={})
    app.set_client(client)
    result, _ = run(["--publish", "clinic/rotation"], app)
    assert result.exit_code == 0, result.output
    assert ("dry run: would create wiki page clinic/rotation/" in result.output
            and "after creating its missing parent pages /, clinic/; 3 write(s)" in result.output)
    assert client.writes == []
    result, _ = run(["--publish", "clinic/rotation", "--apply", "--format", "json"], app)
    assert result.exit_code == 0, result.output
    publish = json.loads(result.output)["publish"]
    assert publish["status"] == "created" and publish["parent_pages"] == ["/", "clinic/"] and publish["writes"] == 3
    assert [p["slug"] for _, p in client.writes] == ["/", "clinic/", "clinic/rotation/"]


def test_publish_the_next_day_with_the_same_file_is_byte_identical_and_makes_no_edit(workdir):
    client = FakePhriction({"clinic/": ("Clinic", "= Clinic =\n")})
    texts = []
    for now in (NOW, NOW + timedelta(days=1), NOW + timedelta(days=30)):
        app = App(now_override=now, env={})
        app.set_client(client)
        wiki, _ = run(["--wiki"], app)
        texts.append(wiki.output)
        result, _ = run(["--publish", "clinic/rotation", "--apply", "--format", "json"], app)
        assert result.exit_code == 0, result.output
    assert texts[0] == texts[1] == texts[2]
    assert [m for m, _ in client.writes] == ["phriction.create"]  # the later days wrote nothing
    assert client.versions["clinic/rotation/"] == 1
    assert json.loads(result.output)["publish"]["status"] == "unchanged"
    # A changed fact (a new override) is published: one edit.
    text = (workdir / "rotation.yaml").read_text()
    (workdir / "rotation.yaml").write_text(text.replace(
        "unavailable:\n", "  - {from: 2027-01-18, to: 2027-01-24, replace: erin, with: alice}\nunavailable:\n", 1))
    app = App(now_override=NOW + timedelta(days=1), env={})
    app.set_client(client)
    result, _ = run(["--publish", "clinic/rotation", "--apply", "--format", "json"], app)
    assert json.loads(result.output)["publish"]["status"] == "edited"
    assert client.versions["clinic/rotation/"] == 2


# --------------------------------------------------------------------------------------------
# Against the sandbox Phorge, on a wiki where not even the root page exists


@pytest.fixture
def fresh_wiki(workdir):
    sandbox = pytest.importorskip("clinicbot.sandbox")
    from clinicbot.jobs.demo import write_sandbox_config

    sb = sandbox.Sandbox(scenario=sandbox.generate_scenario(NOW, size=30))
    sb.start()
    sb.store.documents.clear()  # a fresh wiki: no page at all, not even "/"
    sb.store.documents_by_phid.clear()
    config = write_sandbox_config(workdir / "clinicbot.yaml", sb.url, sb.token)
    yield sb, config
    sb.stop()


def cli_run(config, now, *args):
    from clinicbot.cli import cli

    return CliRunner().invoke(cli, ["--config", str(config), "--now", now.isoformat(), "rotation", *args],
                              catch_exceptions=False)


def test_sandbox_publish_twice_on_a_fresh_wiki_leaves_one_version(fresh_wiki):
    sb, config = fresh_wiki
    dry = cli_run(config, NOW, "--publish", "a/b")
    assert dry.exit_code == 0, dry.output
    assert "would create wiki page a/b/" in dry.output and "parent pages /, a/" in dry.output
    assert sb.store.documents == {}
    first = cli_run(config, NOW, "--publish", "a/b", "--apply")
    assert first.exit_code == 0, first.output
    second = cli_run(config, NOW + timedelta(days=1), "--publish", "a/b", "--apply")
    assert second.exit_code == 0, second.output
    assert "section already up to date, nothing written" in second.output
    docs = sb.store.documents
    assert sorted(docs) == ["/", "a/", "a/b/"]
    assert [len(docs[s].versions) for s in ("/", "a/", "a/b/")] == [1, 1, 1]
    assert docs["a/b/"].latest.content.startswith("= Current Clinic Duty Rotation =\n")


def test_sandbox_publish_respects_the_write_cap(fresh_wiki):
    import yaml

    sb, config = fresh_wiki
    data = yaml.safe_load(config.read_text())
    data["max_writes_per_run"] = 2
    config.write_text(yaml.safe_dump(data))
    for args in (("--publish", "a/b"), ("--publish", "a/b", "--apply")):
        result = cli_run(config, NOW, *args)
        assert result.exit_code == 4, result.output
        assert "wants 3 writes but max_writes_per_run is 2" in result.output
    assert sb.store.documents == {}
