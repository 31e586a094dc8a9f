"""Holidays (issue 14, point 10): business-hours thresholds skip the public holidays of a configured
country and region (the `holidays` package) and the unavailability listed in the rotation file.
Fixed dates only (Christmas 2026 in Germany, Epiphany 2026 in Bavaria)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from checkdata import SnapshotBuilder, at, run_check
from clinicbot.checks.hours import BusinessHours, HolidayRegion, age, parse_holidays
from clinicbot.checks.settings import TeamSettings
from clinicbot.checks.triage import UntriagedCheck
from clinicbot.cli import cli
from clinicbot.config import load_config, parse_config
from clinicbot.errors import ConfigError
from clinicbot.jobs.context import App
from clinicbot.rotation import parse_rotation

H = timedelta(hours=1)
BERLIN = "Europe/Berlin"
BAVARIA = HolidayRegion("DE", "BY")


def hours(tz: str = BERLIN, **kw) -> BusinessHours:
    return BusinessHours(tz, "09:00", "17:00", **kw)


def test_christmas_day_is_not_working_time():
    # Thu 24 Dec 2026 09:00 -> Mon 28 Dec 10:00 in Berlin: Thursday 8 h, Friday 25th (Christmas Day)
    # and the weekend (26th, Second Day of Christmas, is a Saturday) free, Monday 1 h.
    start, end = at("2026-12-24 09:00", BERLIN), at("2026-12-28 10:00", BERLIN)
    assert hours(region=BAVARIA).elapsed(start, end) == 9 * H
    assert hours().elapsed(start, end) == 17 * H  # without holidays: Friday counts
    assert not hours(region=BAVARIA).is_working(at("2026-12-25 11:00", BERLIN))
    assert hours().is_working(at("2026-12-25 11:00", BERLIN))
    assert BAVARIA.name_of(at("2026-12-25 11:00").date()) == "Christmas Day"


def test_the_region_decides_regional_holidays():
    # Tue 6 Jan 2026, Epiphany: a public holiday in Bavaria, not in Berlin.
    day = (at("2026-01-06 08:00", BERLIN), at("2026-01-06 18:00", BERLIN))
    assert hours(region=BAVARIA).elapsed(*day) == timedelta(0)
    assert hours(region=HolidayRegion("DE", "BE")).elapsed(*day) == 8 * H
    assert hours(region=HolidayRegion("DE")).elapsed(*day) == 8 * H  # the country alone: national holidays


ROTATION = """\
timezone: Europe/Berlin
handoff: "09:00"
members:
  - {username: alice}
  - {username: bob}
shifts:
  - {from: 2026-11-01, to: 2027-01-31, members: [alice, bob]}
unavailable:
  - {members: [alice, bob], from: 2026-11-30, to: 2026-11-30, reason: offsite}
  - {member: alice, from: 2026-12-01, to: 2026-12-02, reason: vacation}
"""


def test_unavailability_the_whole_team_away_and_one_person_away():
    rot = parse_rotation(ROTATION)
    bh = BusinessHours.parse(BERLIN, "09:00-17:00", ("mon", "tue", "wed", "thu", "fri"), rotation=rot)
    mon, wed_end = at("2026-11-30 09:00", BERLIN), at("2026-12-02 17:00", BERLIN)
    # Monday 30 Nov everybody is at the offsite: the team's clock stands still; Tue and Wed count.
    assert bh.elapsed(mon, wed_end) == 16 * H
    assert not bh.is_working(at("2026-11-30 10:00", BERLIN)) and bh.is_working(at("2026-12-01 10:00", BERLIN))
    # alice's own wait (an owner's idle time) also skips her vacation (Tue 1 and Wed 2 Dec).
    assert bh.elapsed(mon, wed_end, person="alice") == timedelta(0)
    assert bh.elapsed(mon, wed_end, person="bob") == 16 * H  # bob: only the offsite
    assert bh.elapsed(mon, at("2026-12-03 10:00", BERLIN), person="alice") == 1 * H

    class Ctx:
        business_hours, now = bh, wed_end

    assert age(Ctx(), mon) == 16 * H and age(Ctx(), mon, person="alice") == timedelta(0)


def test_an_untriaged_threshold_skips_christmas_end_to_end():
    """`untriaged` with `business_hours: true` and a 4-hour threshold: a task filed on Christmas Eve at
    16:00 has waited 2 working hours on Monday 28 Dec at 10:00 (Christmas Day is free): no finding;
    without the holiday calendar it would be 10 hours (Friday counted) and fire."""
    sb = SnapshotBuilder(now=at("2026-12-28 10:00", BERLIN))
    inbox = sb.column("Team", "inbox")
    sb.task(1, created=at("2026-12-24 16:00", BERLIN), columns=[inbox])
    snap = sb.build()
    assert run_check(UntriagedCheck(), snap, hours=4, business_hours=hours(region=BAVARIA)) == []
    [finding] = run_check(UntriagedCheck(), snap, hours=4, business_hours=hours())
    assert finding.task_id == 1


# -- the config: `holidays:` validated at load ---------------------------------------------------


def write_config(tmp_path: Path, holidays) -> Path:
    raw = {"phabricator": {"url": "http://127.0.0.1:1/"}, "team": {"timezone": BERLIN},
           "boards": [{"project": "Core", "columns": {"inbox": "Inbox"}}]}
    if holidays is not None:
        raw["holidays"] = holidays
    path = tmp_path / "clinicbot.yaml"
    path.write_text(json.dumps(raw))
    return path


def test_the_holidays_section_reaches_the_checks_business_hours(tmp_path):
    config = load_config(write_config(tmp_path, {"country": "de", "subdivision": "by"}))
    assert config.typed["holidays"] == BAVARIA
    team = TeamSettings.from_config(config, parse_rotation(ROTATION))
    bh = team.business_hours
    assert bh.region == BAVARIA and bh.members == ("alice", "bob") and len(bh.away) == 3
    assert bh.elapsed(at("2026-12-24 09:00", BERLIN), at("2026-12-28 10:00", BERLIN)) == 9 * H
    # No section: no holidays (and a config built by hand is read the same way).
    assert TeamSettings.from_config(load_config(write_config(tmp_path, None))).business_hours.region is None
    hand = parse_config({"phabricator": {"url": "http://x/"}, "boards": [{"project": "Core", "columns": {}}],
                         "holidays": {"country": "DE"}}, None)
    assert TeamSettings.from_config(hand).business_hours.region == HolidayRegion("DE")


@pytest.mark.parametrize("section, key, words", [
    ({"country": "XX"}, "holidays.country", "unknown country 'XX'"),
    ({"country": "DE", "subdivision": "ZZ"}, "holidays.subdivision", "unknown region 'ZZ' of DE; one of BB, BE, BW, BY"),
    ({"country": "DE", "region": "BY"}, "holidays.region", "unknown key; known keys: country, subdivision"),
    ({"subdivision": "BY"}, "holidays.country", "ISO 3166 code"),
    ({"country": "DE", "subdivision": 7}, "holidays.subdivision", "must be a region code"),
])
def test_a_bad_holidays_section_is_one_line_naming_the_key(tmp_path, section, key, words):
    path = write_config(tmp_path, section)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == key and words in str(caught.value)
    result = CliRunner().invoke(cli, ["--config", str(path), "status"], obj=App(env={}))
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert key in line and words in line and str(path) in line


def test_parse_holidays_accepts_a_country_alone_and_nothing():
    def error(key, message):
        return ConfigError("f", key, message)

    assert parse_holidays({}, error) is None
    assert parse_holidays({"country": "US", "subdivision": "CA"}, error) == HolidayRegion("US", "CA")
    # 4 July 2026 is a Saturday; the observed holiday is Friday the 3rd.
    us = hours("America/Los_Angeles", region=HolidayRegion("US", "CA"))
    assert us.elapsed(at("2026-07-03 08:00", "America/Los_Angeles"), at("2026-07-03 18:00", "America/Los_Angeles")) \
        == timedelta(0)



def test_an_owners_own_time_away_does_not_age_their_work_in_progress():
    """`stale-in-progress` in business hours, 2 working days: two tasks in Doing, last touched at the
    Monday offsite. By Thursday evening bob's has waited Tue-Thu (3 working days: fires); alice was on
    vacation Tue and Wed, so hers has waited only Thursday (1 working day: no finding)."""
    from checkdata import ALICE, BOB
    from clinicbot.checks.workload import StaleInProgressCheck

    rot = parse_rotation(ROTATION)
    bh = BusinessHours.parse(BERLIN, "09:00-17:00", ("mon", "tue", "wed", "thu", "fri"), rotation=rot)
    sb = SnapshotBuilder(now=at("2026-12-03 17:00", BERLIN))
    doing = sb.column("Team", "doing")
    sb.task(1, created=at("2026-11-30 09:00", BERLIN), owner=ALICE, columns=[doing])
    sb.task(2, created=at("2026-11-30 09:00", BERLIN), owner=BOB, columns=[doing])
    found = run_check(StaleInProgressCheck(), sb.build(), days=2, business_hours=bh)
    assert [f.task_id for f in found] == [2]
