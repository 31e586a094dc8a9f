"""The campaign's table of broken configs, rotation files and arguments (issue 11 point 10, part b).

Every case: exit 2, exactly one line on stderr naming the file and key (or the argument), no
traceback, and nothing written (the directory holding config, rotation, state and outputs is
byte-for-byte and mtime-for-mtime unchanged). No server is needed: every case is refused before
clinicbot would call one (the URL points at a closed port, so a case that got that far would fail
with a different message, not pass).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner

from clinicbot.jobs.context import App
from clinicbot.cli import cli

NOW = "2026-11-24T10:00:00+00:00"

CONFIG = """\
phabricator:
  url: http://127.0.0.1:9/
  token_env: CLINICBOT_BAD_INPUT_TOKEN
  timeout: 5
team:
  name: Core Platform Team
boards:
  - project: Core Platform Team
    columns:
      inbox: Triage Inbox
      doing: In Progress
state_dir: state
rotation: rotation.yaml
"""

ROTATION = """\
timezone: UTC
handoff: "09:00"
members:
  - {username: carol, name: Carol Chen}
  - {username: dave, name: Dave Davis}
shifts:
  - {from: 2026-11-01, to: 2027-01-31, members: [carol, dave]}
"""


@dataclass
class Case:
    name: str
    args: list[str]
    expect: list[str]  # each must appear in the one stderr line (the file, the key or argument, the gist)
    config: str = CONFIG
    rotation: str | None = ROTATION
    config_bytes: bytes | None = None
    rotation_bytes: bytes | None = None
    setup: Callable[[Path], None] | None = None
    extra: dict[str, str] = field(default_factory=dict)


def cfg(old: str, new: str) -> str:
    assert old in CONFIG, old
    return CONFIG.replace(old, new, 1)


def rot(old: str, new: str) -> str:
    assert old in ROTATION, old
    return ROTATION.replace(old, new, 1)


def plus(text: str) -> str:
    return CONFIG + text


def a_file(name: str) -> Callable[[Path], None]:
    return lambda d: (d / name).write_text("not a directory\n")


def a_dir(name: str) -> Callable[[Path], None]:
    return lambda d: (d / name).mkdir()


CHECK = ["check"]
LEDGER = ["ledger"]
DIGEST = ["digest"]
ROT = ["rotation"]
FUTURE = "2026-12-24"

CASES = [
    # -- the config file: reading and YAML -----------------------------------------------------------
    Case("config-not-utf8", LEDGER, ["clinicbot.yaml:2", "not UTF-8"],
         config_bytes=b"phabricator:\n  url: http://127.0.0.1:9/ # caf\xe9\n"),
    Case("config-latin1-team-name", LEDGER, ["clinicbot.yaml:6", "not UTF-8"],
         config_bytes=CONFIG.replace("Core Platform Team", "\xc9quipe").encode("latin-1")),
    Case("config-dup-top-level", LEDGER, ["clinicbot.yaml:", "'team'", "twice"], config=plus("team:\n  name: B\n")),
    Case("config-dup-nested", LEDGER, ["clinicbot.yaml:5", "'timeout'", "twice"],
         config=cfg("  timeout: 5\n", "  timeout: 5\n  timeout: 7\n")),
    Case("config-dup-column-role", LEDGER, ["clinicbot.yaml:12", "'inbox'", "twice"],
         config=cfg("      doing: In Progress\n", "      doing: In Progress\n      inbox: Other\n")),
    Case("config-dup-check-setting", CHECK, ["clinicbot.yaml:", "'repetition_seconds'", "twice"],
         config=plus("checks:\n  untriaged:\n    repetition_seconds: 60\n    repetition_seconds: 90\n")),
    Case("config-dup-state-dir", LEDGER, ["clinicbot.yaml:", "'state_dir'", "twice"], config=plus("state_dir: other\n")),
    Case("config-yaml-syntax", LEDGER, ["clinicbot.yaml:", "invalid YAML"], config=plus("team: [unclosed\n")),
    Case("config-yaml-tab", LEDGER, ["clinicbot.yaml:", "invalid YAML"], config=cfg("  timeout: 5", "\ttimeout: 5")),
    Case("config-is-a-list", LEDGER, ["clinicbot.yaml", "YAML mapping"], config="- a\n- b\n"),
    Case("config-missing", ["--config", "{dir}/nope.yaml", "ledger"], ["nope.yaml", "file not found"]),
    # -- settings ---------------------------------------------------------------------------------------------
    Case("unknown-top-level", LEDGER, ["clinicbot.yaml", "'colour'", "unknown key"], config=plus("colour: red\n")),
    Case("unknown-phabricator-key", LEDGER, ["'phabricator.tiemout'", "unknown key"],
         config=cfg("  timeout: 5", "  tiemout: 5")),
    Case("url-missing", LEDGER, ["'phabricator.url'", "missing"], config=cfg("  url: http://127.0.0.1:9/\n", "")),
    Case("url-not-http", LEDGER, ["'phabricator.url'", "http://"], config=cfg("http://127.0.0.1:9/", "ftp://x/")),
    Case("timeout-negative", LEDGER, ["'phabricator.timeout'", "greater than 0"], config=cfg("timeout: 5", "timeout: -1")),
    Case("timeout-text", LEDGER, ["'phabricator.timeout'", "a number"], config=cfg("timeout: 5", "timeout: soon")),
    Case("timeout-bool", LEDGER, ["'phabricator.timeout'", "a number"], config=cfg("timeout: 5", "timeout: true")),
    Case("retries-negative", LEDGER, ["'phabricator.retries'", "0 or more"], config=cfg("timeout: 5", "retries: -1")),
    Case("retries-fraction", LEDGER, ["'phabricator.retries'", "whole number"], config=cfg("timeout: 5", "retries: 1.5")),
    Case("settle-zero", LEDGER, ["'phabricator.settle_seconds'", "greater than 0"],
         config=cfg("timeout: 5", "settle_seconds: 0")),
    Case("phabricator-not-mapping", LEDGER, ["'phabricator'", "mapping"],
         config="phabricator: http://x/\n" + CONFIG.split("team:", 1)[1].join(["team:", ""])),
    Case("team-not-mapping", LEDGER, ["'team'", "mapping"], config=cfg("team:\n  name: Core Platform Team\n", "team: x\n")),
    Case("timezone-unknown", LEDGER, ["'team.timezone'", "unknown timezone"], config=cfg("  name: Core", "  timezone: Mars/Base\n  name: Core")),
    Case("business-hours", LEDGER, ["'team.business_hours'", "range of hours"],
         config=cfg("  name: Core", "  business_hours: 17-09\n  name: Core")),
    Case("business-days", LEDGER, ["'team.business_days'", "weekday"],
         config=cfg("  name: Core", "  business_days: [mon, funday]\n  name: Core")),
    Case("meeting-weekday", LEDGER, ["'team.meeting_weekday'", "weekday"],
         config=cfg("  name: Core", "  meeting_weekday: someday\n  name: Core")),
    Case("meeting-time", LEDGER, ["'team.meeting_time'", "HH:MM"], config=cfg("  name: Core", "  meeting_time: '25:00'\n  name: Core")),
    Case("members-not-list", LEDGER, ["'team.members'", "a list"], config=cfg("  name: Core", "  members: alice\n  name: Core")),
    Case("members-ints", LEDGER, ["'team.members'", "list of strings"], config=cfg("  name: Core", "  members: [1, 2]\n  name: Core")),
    Case("apply-text", LEDGER, ["'apply'", "true or false"], config=plus("apply: yes please\n")),
    Case("cap-negative", LEDGER, ["'max_writes_per_run'", "0 or more"], config=plus("max_writes_per_run: -5\n")),
    Case("state-dir-number", LEDGER, ["'state_dir'", "a string"], config=cfg("state_dir: state", "state_dir: 12")),
    Case("boards-missing", LEDGER, ["'boards'", "missing"],
         config=cfg("boards:\n  - project: Core Platform Team\n    columns:\n      inbox: Triage Inbox\n"
                    "      doing: In Progress\n", "")),
    Case("boards-empty", LEDGER, ["'boards'", "non-empty list"], config=cfg("boards:\n  - project: Core Platform Team\n"
         "    columns:\n      inbox: Triage Inbox\n      doing: In Progress\n", "boards: []\n")),
    Case("board-not-mapping", LEDGER, ["'boards[0]'", "mapping"], config=cfg("  - project: Core Platform Team\n    columns:\n"
         "      inbox: Triage Inbox\n      doing: In Progress\n", "  - Core Platform Team\n")),
    Case("board-project-missing", LEDGER, ["'boards[0].project'", "missing"],
         config=cfg("  - project: Core Platform Team\n    columns:", "  - columns:")),
    Case("board-unknown-key", LEDGER, ["'boards[0].colour'", "unknown key"], config=cfg("    columns:", "    colour: red\n    columns:")),
    Case("board-unknown-role", LEDGER, ["'boards[0].columns.working'", "unknown column role"],
         config=cfg("      doing: In Progress", "      working: In Progress")),
    Case("board-role-empty", LEDGER, ["'boards[0].columns.doing'", "column name"],
         config=cfg("      doing: In Progress", "      doing: []")),
    # -- paths the config names --------------------------------------------------------------------------
    Case("templates-dir-missing", LEDGER, ["'templates_dir'", "not a directory"], config=plus("templates_dir: no-such-dir\n")),
    Case("templates-dir-is-file", LEDGER, ["'templates_dir'", "not a directory"], config=plus("templates_dir: tpl\n"),
         setup=a_file("tpl")),
    Case("rotation-path-missing", LEDGER, ["'rotation'", "does not exist"], config=cfg("rotation: rotation.yaml", "rotation: rota.yaml")),
    Case("rotation-path-is-dir", LEDGER, ["'rotation'", "is not a file"], config=cfg("rotation: rotation.yaml", "rotation: rotadir"),
         setup=a_dir("rotadir")),
    Case("rotation-path-missing-check", CHECK, ["'rotation'", "does not exist"],
         config=cfg("rotation: rotation.yaml", "rotation: rota.yaml")),
    # -- sections validated by their owners ---------------------------------------------------------------------
    Case("checks-unknown-slug", CHECK, ["clinicbot.yaml", "checks.no-such-check"], config=plus("checks:\n  no-such-check: {}\n")),
    Case("checks-unknown-setting", CHECK, ["clinicbot.yaml", "checks.untriaged.colour"],
         config=plus("checks:\n  untriaged:\n    colour: red\n")),
    Case("checks-bad-handler", CHECK, ["clinicbot.yaml", "checks.untriaged.handlers"],
         config=plus("checks:\n  untriaged:\n    handlers: [carrier-pigeon]\n")),
    Case("checks-not-mapping", CHECK, ["clinicbot.yaml", "'checks'"], config=plus("checks: [untriaged]\n")),
    Case("delivery-unknown-section", CHECK, ["clinicbot.yaml", "'delivery.fax'", "unknown key"], config=plus("delivery:\n  fax: {}\n")),
    Case("delivery-chat-timeout", CHECK, ["clinicbot.yaml", "'delivery.chat.timeout'", "a number"],
         config=plus("delivery:\n  chat:\n    timeout: soon\n")),
    Case("delivery-email-port", CHECK, ["clinicbot.yaml", "'delivery.email.port'"],
         config=plus("delivery:\n  email:\n    port: smtp\n")),
    Case("reports-unknown-key", DIGEST, ["clinicbot.yaml", "'reports.colour'", "unknown key"], config=plus("reports:\n  colour: red\n")),
    Case("reports-window-zero", DIGEST, ["clinicbot.yaml", "'reports.window_days'"], config=plus("reports:\n  window_days: 0\n")),
    Case("reports-digest-to", DIGEST, ["clinicbot.yaml", "'reports.digest_to'", "delivery target"],
         config=plus("reports:\n  digest_to: [pigeon]\n")),
    Case("reports-sla-key", DIGEST, ["clinicbot.yaml", "'reports.sla_hours.lunch'"], config=plus("reports:\n  sla_hours: {lunch: 1}\n")),
    Case("reports-email-to", DIGEST, ["clinicbot.yaml", "'reports.email_to'", "email addresses"],
         config=plus("reports:\n  email_to: [nobody]\n")),
    Case("reports-metrics-output", DIGEST, ["clinicbot.yaml", "'reports.metrics_output'"],
         config=plus("reports:\n  metrics_output: ''\n")),
    # -- the rotation file -------------------------------------------------------------------------------------------
    Case("rotation-not-utf8", ROT, ["rotation.yaml:4", "not UTF-8"],
         rotation_bytes=ROTATION.replace("Carol Chen", "Zo\xeb").encode("latin-1")),
    Case("rotation-dup-top", ROT, ["rotation.yaml:", "'timezone'", "twice"], rotation=ROTATION + "timezone: Europe/Berlin\n"),
    Case("rotation-dup-member-key", ROT, ["rotation.yaml:4", "username", "twice"],
         rotation=rot("{username: carol, name: Carol Chen}", "{username: carol, username: dave}")),
    Case("rotation-dup-shift-key", ROT, ["rotation.yaml:7", ".to'", "twice"],
         rotation=rot("to: 2027-01-31,", "to: 2027-01-31, to: 2027-02-28,")),
    Case("rotation-yaml-syntax", ROT, ["rotation.yaml:", "invalid YAML"], rotation=ROTATION + "members: [unclosed\n"),
    Case("rotation-unknown-key", ROT, ["rotation.yaml:", "'colour'", "unknown key"], rotation=ROTATION + "colour: red\n"),
    Case("rotation-timezone", ROT, ["rotation.yaml:1", "'timezone'"], rotation=rot("timezone: UTC", "timezone: Mars/Base")),
    Case("rotation-handoff", ROT, ["rotation.yaml:2", "'handoff'"], rotation=rot('handoff: "09:00"', 'handoff: "9 o\'clock"')),
    Case("rotation-members-mapping", ROT, ["rotation.yaml:", "'members'"],
         rotation=rot("members:\n  - {username: carol, name: Carol Chen}\n  - {username: dave, name: Dave Davis}\n",
                      "members: {carol: 1}\n")),
    Case("rotation-shift-backwards", ROT, ["rotation.yaml:7", "ends before it starts"],
         rotation=rot("{from: 2026-11-01, to: 2027-01-31", "{from: 2027-01-31, to: 2026-11-01")),
    Case("rotation-shift-stranger", ROT, ["rotation.yaml:7", "mallory"], rotation=rot("members: [carol, dave]}", "members: [mallory]}")),
    Case("rotation-is-list", ROT, ["rotation.yaml", "mapping"], rotation="- carol\n- dave\n"),
    Case("rotation-option-missing", ["rotation", "--rotation", "{dir}/gone.yaml"], ["gone.yaml", "file not found"]),
    # -- arguments ----------------------------------------------------------------------------------------
    Case("metrics-output-under-a-file", ["metrics", "--output", "{dir}/plain/site"], ["--output", "plain", "not a directory"],
         setup=a_file("plain")),
    Case("metrics-output-is-a-file", ["metrics", "--output", "{dir}/plain"], ["--output", "plain", "not a directory"],
         setup=a_file("plain")),
    Case("digest-to-file-under-a-file", ["digest", "--to", "file:{dir}/plain/d.md"], ["--to file:", "plain", "not a directory"],
         setup=a_file("plain")),
    Case("digest-to-file-is-a-dir", ["digest", "--to", "file:{dir}/out"], ["--to file:", "is a directory"], setup=a_dir("out")),
    Case("agenda-to-file-under-a-file", ["agenda", "--to", "file:{dir}/plain/a.md"], ["--to file:", "not a directory"],
         setup=a_file("plain")),
    Case("ical-under-a-file", ["rotation", "--ical", "{dir}/plain/duty.ics"], ["--ical", "plain", "not a directory"],
         setup=a_file("plain")),
    Case("ical-is-a-dir", ["rotation", "--ical", "{dir}/out"], ["--ical", "is a directory"], setup=a_dir("out")),
    Case("to-unknown-target", ["digest", "--to", "pigeon"], ["--to", "not a delivery target"]),
    Case("to-task-not-a-task", ["digest", "--to", "task:abc"], ["--to", "not a delivery target"]),
    Case("snooze-unknown-slug", ["ledger", "--snooze", "no-such-check", "--until", FUTURE], ["--snooze", "no-such-check", "neither"]),
    Case("snooze-not-a-task", ["ledger", "--snooze", "T12x", "--until", FUTURE], ["--snooze", "T12x"]),
    Case("snooze-past", ["ledger", "--snooze", "untriaged", "--until", "2026-01-01"], ["--until", "not in the future"]),
    Case("snooze-bad-date", ["ledger", "--snooze", "untriaged", "--until", "next week"], ["--until"]),
    Case("snooze-without-until", ["ledger", "--snooze", "untriaged"], ["--until", "needs --until"]),
    Case("until-without-snooze", ["ledger", "--until", FUTURE], ["--snooze"]),
    Case("unsnooze-not-snoozed", ["ledger", "--unsnooze", "untriaged"], ["--unsnooze", "not snoozed"]),
    Case("handled-garbage", ["ledger", "--handled", "garbage"], ["--handled", "unknown key 'garbage'"]),
    Case("handled-unknown-check", ["ledger", "--handled", "no-such-check:T1"], ["--handled", "unknown key"]),
    Case("handled-bad-task", ["ledger", "--handled", "untriaged:12"], ["--handled", "unknown key"]),
    Case("check-only-unknown", ["check", "--only", "no-such-check"], ["--only", "unknown check"]),
    Case("now-garbage", ["--now", "yesterday-ish", "ledger"], ["--now"]),
    Case("digest-since-garbage", ["digest", "--since", "a while ago"], ["--since"]),
]

IDS = [c.name for c in CASES]
assert len(set(IDS)) == len(IDS)


def tree(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Everything under root: path -> (mode, mtime_ns, content)."""
    out: dict[str, tuple[int, int, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_mode, st.st_mtime_ns, p.read_bytes() if p.is_file() else b"")
    return out


def prepare(case: Case, d: Path) -> Path:
    config = d / "clinicbot.yaml"
    if case.config_bytes is not None:
        config.write_bytes(case.config_bytes)
    else:
        config.write_text(case.config)
    if case.rotation_bytes is not None:
        (d / "rotation.yaml").write_bytes(case.rotation_bytes)
    elif case.rotation is not None:
        (d / "rotation.yaml").write_text(case.rotation)
    if case.setup:
        case.setup(d)
    return config


def invoke(case: Case, d: Path, config: Path):
    args = [a.replace("{dir}", str(d)) for a in case.args]
    if "--config" not in args:
        args = ["--config", str(config), *([] if "--now" in args else ["--now", NOW]), *args]
    app = App(env={"CLINICBOT_BAD_INPUT_TOKEN": "api-REDACTED", **case.extra})
    return CliRunner().invoke(cli, args, obj=app)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bad_input_is_one_line_exit_2_and_nothing_written(case: Case, tmp_path: Path):
    config = prepare(case, tmp_path)
    before = tree(tmp_path)
    result = invoke(case, tmp_path, config)
    assert isinstance(result.exception, SystemExit) or result.exception is None, repr(result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.stdout)
    assert "Traceback" not in result.stderr + result.stdout
    assert len(lines) == 1, lines
    line = lines[0].replace(str(tmp_path) + os.sep, "")
    for want in case.expect:
        assert want in line, (want, line)
    assert tree(tmp_path) == before  # nothing written: no state dir, no ledger record, no output file


def test_the_table_is_the_campaigns_size():
    # The docs quote these figures (README "Hardening"): keep them honest.
    assert len(CASES) >= 60
    kinds = {"config": 0, "rotation": 0, "argument": 0}
    for c in CASES:
        if c.rotation is not ROTATION or c.rotation_bytes is not None or c.args[:1] == ["rotation"] and "--ical" not in c.args:
            kinds["rotation"] += 1
        elif c.config is not CONFIG or c.config_bytes is not None or "--config" in c.args:
            kinds["config"] += 1
        else:
            kinds["argument"] += 1
    assert all(n >= 10 for n in kinds.values()), kinds


def test_a_handled_key_of_an_existing_record_or_a_finding_shape_is_accepted(tmp_path: Path):
    # The other side of handled-garbage: a well-formed key of a known check is still accepted
    # (someone saw it in a dry run and dealt with it), and writes exactly that record.
    case = Case("ok", ["ledger", "--handled", "untriaged:T12", "--format", "json"], [])
    config = prepare(case, tmp_path)
    result = invoke(case, tmp_path, config)
    assert result.exit_code == 0, result.stderr
    assert re.search(r'"key": "untriaged:T12"', result.stdout)
    case = Case("ok", ["ledger", "--snooze", "t12", "--until", FUTURE], [])
    result = invoke(case, tmp_path, config)
    assert result.exit_code == 0 and "snoozed T12" in result.stdout
    result = invoke(Case("ok", ["ledger", "--unsnooze", "T12"], []), tmp_path, config)
    assert result.exit_code == 0, result.stderr


def _unused() -> datetime:  # keeps the import honest for type checkers
    return datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_a_directory_given_as_the_config_is_one_line(tmp_path: Path):
    """click's own check printed three lines of usage; load_config names the directory instead."""
    result = CliRunner().invoke(cli, ["--config", str(tmp_path), "board"], obj=App(env={}))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.stderr
    assert "is a directory" in lines[0] and "Traceback" not in result.stderr
