"""BusinessHours: only working time counts, in the team's timezone, DST-correct."""

from __future__ import annotations

from datetime import timedelta

import pytest

from checkdata import at
from clinicbot.checks.hours import BusinessHours, parse_weekday, validate_hhmm, validate_timezone

H = timedelta(hours=1)
UTC_9_5 = BusinessHours("UTC", "09:00", "17:00", ("mon", "tue", "wed", "thu", "fri"))


def test_within_one_day():
    assert UTC_9_5.elapsed(at("2024-05-06 10:00"), at("2024-05-06 12:30")) == 2.5 * H


def test_time_outside_the_window_does_not_count():
    # Monday 07:00 -> Monday 20:00: only 09:00-17:00 counts
    assert UTC_9_5.elapsed(at("2024-05-06 07:00"), at("2024-05-06 20:00")) == 8 * H


def test_friday_evening_to_monday_morning_is_half_an_hour():
    assert UTC_9_5.elapsed(at("2024-05-10 18:00"), at("2024-05-13 09:30")) == 0.5 * H


def test_a_whole_week_is_forty_hours_and_a_year_is_fifty_two_weeks():
    assert UTC_9_5.elapsed(at("2024-05-06 00:00"), at("2024-05-13 00:00")) == 40 * H
    assert UTC_9_5.elapsed(at("2023-01-02 00:00"), at("2024-01-01 00:00")) == 52 * 40 * H


def test_end_before_start_is_zero():
    assert UTC_9_5.elapsed(at("2024-05-07 12:00"), at("2024-05-06 12:00")) == timedelta(0)
    assert UTC_9_5.elapsed(at("2024-05-06 12:00"), at("2024-05-06 12:00")) == timedelta(0)


def test_hours_are_local_to_the_team():
    berlin = BusinessHours("Europe/Berlin", "09:00", "17:00")
    # 07:00Z is 09:00 in Berlin in May (CEST, UTC+2): the whole local working day is 07:00Z-15:00Z
    assert berlin.elapsed(at("2024-05-06 06:00"), at("2024-05-06 16:00")) == 8 * H
    assert berlin.elapsed(at("2024-05-06 15:00"), at("2024-05-06 16:00")) == timedelta(0)
    assert berlin.is_working(at("2024-05-06 07:00")) and not berlin.is_working(at("2024-05-06 15:00"))


def test_working_days_are_eight_hours_on_both_sides_of_a_dst_change():
    berlin = BusinessHours("Europe/Berlin", "09:00", "17:00")
    # Fri 29 March (CET) and Mon 1 April (CEST): 8 + 8 working hours, the DST weekend is free
    start = at("2024-03-29 09:00", "Europe/Berlin")
    end = at("2024-04-01 17:00", "Europe/Berlin")
    assert berlin.elapsed(start, end) == 16 * H


def test_a_window_spanning_the_spring_forward_gap_is_an_hour_shorter():
    # 01:00-05:00 local on Sunday 31 March 2024: clocks jump 02:00 -> 03:00, so 3 real hours
    night = BusinessHours("Europe/Berlin", "01:00", "05:00", ("sun",))
    assert night.elapsed(at("2024-03-30 12:00"), at("2024-04-01 12:00")) == 3 * H
    # ... and the fall-back night (27 October 2024) is an hour longer
    assert night.elapsed(at("2024-10-26 12:00"), at("2024-10-28 12:00")) == 5 * H


def test_partial_first_and_last_days_across_many_days():
    # Tue 16:00 -> Thu 10:00: 1h Tue + 8h Wed + 1h Thu
    assert UTC_9_5.elapsed(at("2024-05-07 16:00"), at("2024-05-09 10:00")) == 10 * H


def test_parse_the_config_spelling():
    bh = BusinessHours.parse("Europe/Berlin", "08:30-12:00", ["Mon", "wednesday"])
    assert bh.day_length == 3.5 * H
    assert bh.days == frozenset({0, 2})
    assert getattr(bh.tz, "key") == "Europe/Berlin"


def test_end_must_follow_start():
    with pytest.raises(ValueError):
        BusinessHours("UTC", "17:00", "09:00")


def test_validators():
    assert validate_hhmm("15:00") is None and validate_hhmm("25:00")
    assert validate_timezone("Europe/Berlin") is None and validate_timezone("Mars/Olympus")
    assert parse_weekday("Thursday") == 3 and parse_weekday(0) == 0
