"""Issue 13: one of each thing — one JSON encoder, one people type, the validated schedule used once,
report formats that come with their own template."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

import clinicbot.jobs.schedule as schedule_module
from clinicbot import model
from clinicbot.cli import _echo_json
from clinicbot.cli import checks as cli_checks
from clinicbot.config import validate_sections
from clinicbot.delivery.outbox import Recipient
from clinicbot.jobs import sections  # noqa: F401  (registers the section validators)
from clinicbot.jobs.schedule import Schedule, parse_schedule, schedule_of
from clinicbot.jobs.status import collect_status
from clinicbot.reports.common import person
from clinicbot.reports.digest import build_digest
from clinicbot.reports.render import render
from clinicbot.rotation import Member
from tests.test_reports import board_snapshot
from tests.test_scheduler import make_config

BERLIN_NINE = datetime(2026, 11, 22, 10, 0, tzinfo=timezone(timedelta(hours=1)))


def test_cli_json_output_writes_times_the_one_way(capsys):
    _echo_json({"at": BERLIN_NINE, "tags": ("a", "b")})
    assert json.loads(capsys.readouterr().out) == {"at": "2026-11-22T09:00:00Z", "tags": ["a", "b"]}
    # `check --format json` and `ledger --json` use the same encoder: no private copy that would
    # turn an unknown value into str() instead of failing where the value was made
    assert cli_checks.json_default is model.json_default
    assert not hasattr(cli_checks, "_json_default")
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        json.dumps({"x": object()}, default=cli_checks.json_default)


def test_people_are_one_type():
    alice = Member("alice", "Alice Adams", "alice@example.org", "<@U0ALICE>")
    assert isinstance(alice, model.Person) and alice.display == "Alice Adams (alice)"
    assert person(alice) == alice.to_dict() == {"username": "alice", "name": "Alice Adams",
                                                 "email": "alice@example.org", "chat": "<@U0ALICE>"}
    rec = Recipient("alice", "Alice Adams", "alice@example.org", "", "PHID-USER-alice")
    assert isinstance(rec, model.Person) and rec.phid == "PHID-USER-alice" and rec.chat_handle == "alice"
    assert person(model.Person("bob")) == {"username": "bob", "name": "bob", "email": "", "chat": ""}


def test_the_schedule_validated_at_load_is_the_one_used(tmp_path, monkeypatch):
    config = validate_sections(make_config(tmp_path, {"jobs": {"sync": {"minute": "*/30"}}}))
    typed = config.typed["schedule"]
    assert isinstance(typed, Schedule)

    def parse_again(config):
        raise AssertionError("parsed again although load_config kept the validated schedule")

    monkeypatch.setattr(schedule_module, "parse_schedule", parse_again)
    assert schedule_of(config) is typed
    monkeypatch.undo()
    # `status` reads the kept one too: a schedule kept for another zone shows through
    config.typed["schedule"] = parse_schedule(make_config(tmp_path, {"timezone": "Asia/Tokyo"}))
    assert collect_status(config, datetime(2026, 11, 24, 11, 5, tzinfo=timezone.utc)).timezone == "Asia/Tokyo"
    bare = make_config(tmp_path, {"jobs": {"sync": {"minute": "*/30"}}})  # not through load_config
    assert schedule_of(bare) == parse_schedule(bare)


def test_a_format_with_a_template_of_its_own_renders_and_others_are_refused(tmp_path):
    data = build_digest(board_snapshot(), team="Core", findings=[])
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "digest.pager.j2").write_text("PAGE {{ r.team }}\n")
    assert render(data, "pager", templates_dir=tmp_path) == "PAGE Core\n"
    for bad in ("sms", "../digest", "PAGER"):
        with pytest.raises(ValueError, match=f"unknown format '{bad}'.*term, md"):
            render(data, bad, templates_dir=tmp_path)
    assert render(data, "md") == render(data, "md", templates_dir=tmp_path)  # known formats as before
