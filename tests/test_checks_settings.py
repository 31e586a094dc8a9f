"""The checks: section: thresholds validated per check, handler keys by type, errors name checks.<slug>.<key>."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinicbot.checks.registry import builtin_checks
from clinicbot.checks.settings import (
    DEFAULT_HANDLERS,
    CheckSettings,
    TeamSettings,
    merged_thresholds,
    parse_check_settings,
)
from clinicbot.checks.triage import TriageMeetingLeftoversCheck
from clinicbot.config import parse_config
from clinicbot.errors import ConfigError

BUILTINS = builtin_checks()


def parse(section):
    return parse_check_settings(section, BUILTINS)


def error_of(section) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(section)
    return info.value


def test_defaults_for_every_check_when_nothing_is_configured():
    settings = parse(None)
    assert set(settings) == {c.slug for c in BUILTINS}
    s = settings["untriaged"]
    assert s == CheckSettings(slug="untriaged", enabled=True, thresholds={"hours": 48}, handlers=("console",),
                              repetition_seconds=None, escalation=(), business_hours=False, path=None)
    assert DEFAULT_HANDLERS == ("console",)
    assert settings["cookie-licking"].thresholds["max_claimed"] == 5


def test_a_full_entry():
    s = parse({"untriaged": {
        "hours": 24, "business_hours": True, "handlers": ["comment", "chat"], "repetition_seconds": 86400,
        "escalation": [{"after_repetitions": 2, "handlers": ["email"]}, {"after_seconds": 0, "handlers": []}],
    }})["untriaged"]
    assert s.thresholds == {"hours": 24} and s.business_hours is True
    assert s.handlers == ("comment", "chat") and s.repetition_seconds == 86400
    assert s.escalation == ({"after_repetitions": 2, "handlers": ["email"]}, {"after_seconds": 0, "handlers": []})


def test_shorthand_and_empty_entries():
    settings = parse({"rotation-notice": False, "untriaged": None, "unprioritised": {"enabled": False}})
    assert settings["rotation-notice"].enabled is False and settings["unprioritised"].enabled is False
    assert settings["untriaged"].enabled is True


def test_fractional_thresholds_are_fine():
    assert parse({"review-needed": {"days": 1.5}})["review-needed"].thresholds["days"] == 1.5


@pytest.mark.parametrize("section, key", [
    ({"untriaged": {"hourz": 3}}, "checks.untriaged.hourz"),
    ({"untriaged": {"hours": "two"}}, "checks.untriaged.hours"),
    ({"untriaged": {"hours": True}}, "checks.untriaged.hours"),
    ({"untriaged": {"hours": -1}}, "checks.untriaged.hours"),
    ({"cookie-licking": {"max_claimed": 2.5}}, "checks.cookie-licking.max_claimed"),
    ({"cookie-licking": {"idle_excluded_roles": ["doing", "limbo"]}}, "checks.cookie-licking.idle_excluded_roles"),
    ({"cookie-licking": {"idle_excluded_roles": "doing"}}, "checks.cookie-licking.idle_excluded_roles"),
    ({"triage-meeting-leftovers": {"meeting_time": "25:00"}}, "checks.triage-meeting-leftovers.meeting_time"),
    ({"triage-meeting-leftovers": {"meeting_weekday": "someday"}}, "checks.triage-meeting-leftovers.meeting_weekday"),
    ({"triage-meeting-leftovers": {"timezone": "Mars/Olympus"}}, "checks.triage-meeting-leftovers.timezone"),
    ({"triage-meeting-leftovers": {"grace_hours": 200}}, "checks.triage-meeting-leftovers.grace_hours"),
    ({"rotation-notice": {"days": 2.5}}, "checks.rotation-notice.days"),
    ({"untriaged": {"enabled": "yes"}}, "checks.untriaged.enabled"),
    ({"untriaged": {"business_hours": 1}}, "checks.untriaged.business_hours"),
    ({"untriaged": {"handlers": "chat"}}, "checks.untriaged.handlers"),
    ({"untriaged": {"handlers": ["chat", "pager"]}}, "checks.untriaged.handlers"),
    ({"untriaged": {"repetition_seconds": -5}}, "checks.untriaged.repetition_seconds"),
    ({"untriaged": {"repetition_seconds": "1h"}}, "checks.untriaged.repetition_seconds"),
    ({"untriaged": {"repetition_seconds": 1.5}}, "checks.untriaged.repetition_seconds"),
    ({"untriaged": {"escalation": {"after_seconds": 5}}}, "checks.untriaged.escalation"),
    ({"untriaged": {"escalation": ["email"]}}, "checks.untriaged.escalation[0]"),
    ({"untriaged": {"escalation": [{"handlers": ["email"]}]}}, "checks.untriaged.escalation[0]"),
    ({"untriaged": {"escalation": [{"after_seconds": 1, "after_repetitions": 1, "handlers": []}]}},
     "checks.untriaged.escalation[0]"),
    ({"untriaged": {"escalation": [{"after_repetitions": 2, "handlers": ["email"]}, {"after_seconds": 60}]}},
     "checks.untriaged.escalation[1].handlers"),
    ({"untriaged": {"escalation": [{"after_repetitions": 0, "handlers": ["email"]}]}},
     "checks.untriaged.escalation[0].after_repetitions"),
    ({"untriaged": {"escalation": [{"after_seconds": "soon", "handlers": ["email"]}]}},
     "checks.untriaged.escalation[0].after_seconds"),
    ({"untriaged": {"escalation": [{"after_seconds": 5, "handlers": ["fax"]}]}},
     "checks.untriaged.escalation[0].handlers"),
    ({"untriaged": {"escalation": [{"after_seconds": 5, "handlers": [], "to": "x"}]}},
     "checks.untriaged.escalation[0].to"),
    ({"untriaged": {"path": "x.y:z"}}, "checks.untriaged.path"),
    ({"untriaged": 48}, "checks.untriaged"),
])
def test_errors_name_the_key(section, key):
    assert error_of(section).key == key


def test_unknown_slug_lists_the_known_ones():
    err = error_of({"untriagd": {}})
    assert err.key == "checks.untriagd"
    for c in BUILTINS:
        assert c.slug in err.message


def test_unknown_key_lists_the_checks_keys():
    err = error_of({"untriaged": {"days": 2}})
    assert "hours" in err.message and "handlers" in err.message


def test_section_must_be_a_mapping():
    with pytest.raises(ConfigError) as info:
        parse_check_settings(["untriaged"], BUILTINS)
    assert info.value.key == "checks"


def test_errors_name_the_config_file_through_config_error():
    config = parse_config({"phabricator": {"url": "https://phab.example.org/"}, "boards": [{"project": "Team"}],
                           "checks": {"untriaged": {"hours": "x"}}}, Path("/etc/clinicbot.yaml"))
    with pytest.raises(ConfigError) as info:
        parse_check_settings(config.section("checks"), BUILTINS, error=config.error)
    assert info.value.file == "/etc/clinicbot.yaml" and info.value.key == "checks.untriaged.hours"
    assert str(info.value).startswith("/etc/clinicbot.yaml, key 'checks.untriaged.hours':")


def test_team_values_fill_thresholds_left_at_none():
    check = TriageMeetingLeftoversCheck()
    team = TeamSettings(timezone="Europe/Berlin", meeting_weekday="tue", meeting_time="10:30")
    s = parse({"triage-meeting-leftovers": {"meeting_time": "16:00", "timezone": None}})["triage-meeting-leftovers"]
    merged = merged_thresholds(check, s, team)
    assert merged == {"meeting_weekday": "tue", "meeting_time": "16:00", "timezone": "Europe/Berlin", "grace_hours": 2}


def test_team_settings_from_config_and_rotation():
    config = parse_config({"phabricator": {"url": "https://phab.example.org/"}, "boards": [{"project": "Team"}],
                           "team": {"business_hours": "08:00-16:00", "meeting_weekday": "wed"}}, None)

    class Rot:
        tz_name = "Europe/Berlin"

    team = TeamSettings.from_config(config, Rot())
    assert team.timezone == "Europe/Berlin" and team.meeting_weekday == "wed" and team.meeting_time == "15:00"
    assert team.business_hours.day_length.total_seconds() == 8 * 3600
    assert TeamSettings.from_config(config).timezone == "UTC"
