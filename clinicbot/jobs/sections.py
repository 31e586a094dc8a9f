"""Registers the validator of every structured config section with :mod:`clinicbot.config`.

The validators live with the code that knows what is valid (the check registry and its plugins,
the delivery targets, the JOBS table); config is the bottom layer and cannot import them, so
they are registered here, once, and ``clinicbot.jobs`` imports this module: whatever runs a job
(the CLI, the scheduler, a test through ``App``) loads configs that are validated whole, at load.
"""

from __future__ import annotations

from typing import Any

from clinicbot.checks import load_checks_and_settings
from clinicbot.checks.hours import holidays_section
from clinicbot.config import Config, register_section
from clinicbot.delivery.senders import validate_delivery
from clinicbot.jobs.report_lists import reports_section
from clinicbot.jobs.schedule import parse_schedule


def _checks(config: Config) -> Any:
    return load_checks_and_settings(config.section("checks"), error=config.error)


def _delivery(config: Config) -> dict[str, Any]:
    section = config.section("delivery")
    validate_delivery(section, config.error)
    return section


register_section("checks", _checks)
register_section("delivery", _delivery)
register_section("reports", reports_section)  # digest/agenda subsections + report_settings
register_section("schedule", parse_schedule)  # schedule.sync included (SyncSettings.from_config)
register_section("holidays", holidays_section)  # public holidays for business hours (checks/hours.py)
