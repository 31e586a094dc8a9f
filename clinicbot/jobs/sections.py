"""Registers the validator of every structured config section with :mod:`clinicbot.config`.

The validators live with the code that knows what is valid (the check registry and its plugins,
the delivery targets, the JOBS table); config is the bottom layer and cannot import them, so
they are registered here, once, and ``clinicbot.jobs`` imports this module: whatever runs a job
(the CLI, the scheduler, a test through ``App``) loads configs that are validated whole, at load.

Registered by name (``"module:function"``): importing this module imports none of the owners
(start-up is most of a cron run). :func:`clinicbot.config.load_config` imports an owner when the
file gives its section; a section the file does not give gets its defaults when a job asks.
"""

from __future__ import annotations

from typing import Any

from clinicbot.config import Config, register_section


def checks_section(config: Config) -> Any:
    """The ``checks:`` validator: the enabled checks and the team settings (check registry)."""
    from clinicbot.checks import load_checks_and_settings

    return load_checks_and_settings(config.section("checks"), error=config.error)


def delivery_section(config: Config) -> dict[str, Any]:
    """The ``delivery:`` validator (delivery/senders.py knows the targets and their keys)."""
    from clinicbot.delivery.senders import validate_delivery

    section = config.section("delivery")
    validate_delivery(section, config.error)
    return section


SECTION_OWNERS = {
    "checks": "clinicbot.jobs.sections:checks_section",
    "delivery": "clinicbot.jobs.sections:delivery_section",
    "reports": "clinicbot.jobs.report_lists:reports_section",  # digest/agenda subsections + report_settings
    "schedule": "clinicbot.jobs.schedule:parse_schedule",  # schedule.sync included (SyncSettings.from_config)
    "holidays": "clinicbot.checks.hours:holidays_section",  # public holidays for business hours
}

for _name, _owner in SECTION_OWNERS.items():
    register_section(_name, _owner)
