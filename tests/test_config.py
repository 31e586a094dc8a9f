"""Config loading: every bad value names the file and the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from clinicbot.config import SETTINGS, load_config, parse_config
from clinicbot.errors import ConfigError
from conftest import TEST_TOKEN

GOOD = {
    "phabricator": {"url": "https://phab.example.org"},
    "boards": [{"project": "Core Platform Team", "columns": {"inbox": "Inbox", "done": ["Done", "Archive"]}}],
}


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "clinicbot.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_good_config_fills_defaults(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.url == "https://phab.example.org/"
    assert cfg.get("max_writes_per_run") == 20 and cfg.get("apply") is False
    assert cfg.state_dir == tmp_path / "state"
    assert cfg.boards[0].columns == {"inbox": ("Inbox",), "done": ("Done", "Archive")}


@pytest.mark.parametrize("mutate, key, words", [
    (lambda d: d.update(bogus=1), "bogus", "unknown key"),
    (lambda d: d["phabricator"].update(url="phab.example.org"), "phabricator.url", "http"),
    (lambda d: d["phabricator"].update(timeot=3), "phabricator.timeot", "unknown key"),
    (lambda d: d["phabricator"].update(timeout="soon"), "phabricator.timeout", "number"),
    (lambda d: d["phabricator"].update(timeout=-1), "phabricator.timeout", "greater than 0"),
    (lambda d: d.update(max_writes_per_run=True), "max_writes_per_run", "number"),
    (lambda d: d.update(apply="yes"), "apply", "true or false"),
    (lambda d: d.pop("boards"), "boards", "missing"),
    (lambda d: d["boards"][0].pop("project"), "boards[0].project", "missing"),
    (lambda d: d["boards"][0]["columns"].update(inboxx="Inbox"), "boards[0].columns.inboxx", "unknown column role"),
    (lambda d: d["boards"][0]["columns"].update(inbox=3), "boards[0].columns.inbox", "column name"),
    (lambda d: d["team"].update(members="alice"), "team.members", "list"),
])
def test_bad_values_name_file_and_key(tmp_path, mutate, key, words):
    data = json.loads(json.dumps(GOOD))
    data["team"] = {}
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert str(path) in msg and f"'{key}'" in msg and words in msg
    assert "\n" not in msg


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "phabricator:\n  url: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"{path}:" in str(info.value) and "invalid YAML" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")


def test_token_sources_in_order(tmp_path):
    arcrc = tmp_path / "arcrc"
    arcrc.write_text(json.dumps({"hosts": {"https://phab.example.org/api/": {"token": "cli-fromarcrc"}}}))
    data = json.loads(json.dumps(GOOD))
    data["phabricator"]["arcrc"] = str(arcrc)
    cfg = parse_config(data, tmp_path / "c.yaml")
    assert cfg.token({}).reveal() == "cli-fromarcrc"
    (tmp_path / "tok").write_text(TEST_TOKEN + "\n")
    data["phabricator"]["token_file"] = "tok"
    cfg = parse_config(data, tmp_path / "c.yaml")
    assert cfg.token({}).reveal() == TEST_TOKEN
    assert cfg.token({"CLINICBOT_CONDUIT_TOKEN": "api-fromenv"}).reveal() == "api-fromenv"


def test_no_token_anywhere_says_where_it_looked(tmp_path):
    data = json.loads(json.dumps(GOOD))
    data["phabricator"]["arcrc"] = str(tmp_path / "missing-arcrc")
    cfg = parse_config(data, tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="CLINICBOT_CONDUIT_TOKEN") as info:
        cfg.token({})
    assert "phabricator.token_env" in str(info.value)


def test_every_setting_is_documented_in_the_readme():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    missing = [s.name for s in SETTINGS if f"`{s.name}`" not in readme]
    assert not missing, f"README lacks settings: {missing}"


@pytest.mark.parametrize("section, key", [
    ({"checks": {"untriaged": {"max_hours": "soon"}}}, "checks.untriaged"),
    ({"checks": {"no-such-check": {}}}, "checks.no-such-check"),
    ({"delivery": {"email": {"port": "smtp"}}}, "delivery.email.port"),
    ({"delivery": {"sms": {}}}, "delivery.sms"),
    ({"reports": {"window_days": "a month"}}, "reports.window_days"),
    ({"schedule": {"jobs": {"digest": "every morning"}}}, "schedule.jobs.digest"),
])
def test_every_section_is_validated_with_file_and_key(tmp_path, section, key):
    from clinicbot.jobs.doctor import validate_sections

    data = json.loads(json.dumps(GOOD))
    data.update(section)
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        validate_sections(load_config(path))
    assert str(path) in str(info.value) and key in str(info.value), str(info.value)
    assert "\n" not in str(info.value)


# -- every section is validated once, at load, whatever the command ------------------------------

TYPOS = {  # one typo per structured section, and a bad value in the scalar ones
    "checks": {"checks": {"untriaged": {"max_hours": "soon"}}},
    "delivery": {"delivery": {"chat": {"webhok_env": "HOOK"}}},
    "reports": {"reports": {"window_dayz": 30}},
    "schedule": {"schedule": {"jobs": {"digest": "every morning"}}},
    "schedule.sync": {"schedule": {"sync": {"concurency": 2}}},
    "team": {"team": {"timezone": "Mars/Olympus"}},
    "boards": {"boards": [{"project": "X", "columns": {"inbx": "Inbox"}}]},
    "rotation": {"rotation": "no-such-rotation.yaml"},
}
KEYS = {"checks": "checks.untriaged", "delivery": "delivery.chat.webhok_env", "reports": "reports.window_dayz",
        "schedule": "schedule.jobs.digest", "schedule.sync": "schedule.sync.concurency", "team": "team.timezone",
        "boards": "boards[0].columns.inbx", "rotation": "rotation"}
# Commands that do not use the section they are given (board reads no delivery, digest no checks...).
COMMANDS = [["board"], ["digest", "--to", "chat"], ["rotation", "--format", "json"], ["status"]]


@pytest.mark.parametrize("section", sorted(TYPOS))
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_typo_in_any_section_is_refused_by_every_command(tmp_path, section, command):
    from click.testing import CliRunner

    from clinicbot.cli import cli
    from clinicbot.jobs.context import App

    data = json.loads(json.dumps(GOOD))
    data.update(TYPOS[section])
    path = write(tmp_path, data)
    (tmp_path / "rotation.yaml").write_text("name: x\n")  # never read: the config is refused first
    result = CliRunner().invoke(cli, ["--config", str(path), "--now", "2026-11-22T09:00:00Z", *command],
                                obj=App(env={"CLINICBOT_CONDUIT_TOKEN": "api-REDACTED"}))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and str(path) in lines[0] and KEYS[section] in lines[0], result.output
    assert "Traceback" not in result.output


def test_load_config_runs_every_registered_validator_once_and_keeps_its_result(tmp_path):
    import clinicbot.jobs  # noqa: F401  (registers the sections)
    from clinicbot.config import SECTION_VALIDATORS, SECTIONS
    from clinicbot.delivery.targets import ReportSettings

    assert sorted(SECTION_VALIDATORS) == sorted(s for s in SECTIONS if s != "boards")
    data = json.loads(json.dumps(GOOD))
    data["reports"] = {"window_days": 9}
    cfg = load_config(write(tmp_path, data))
    assert isinstance(cfg.typed["reports"], ReportSettings) and cfg.typed["reports"].window_days == 9
    assert set(cfg.typed) == set(SECTION_VALIDATORS)


def test_register_section_refuses_an_unknown_section():
    from clinicbot.config import register_section

    with pytest.raises(ValueError):
        register_section("delivry", lambda config: None)
