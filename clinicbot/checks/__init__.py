"""Checks: pure functions of a Snapshot that say what seems off, as :class:`Finding` objects.

Typical use (what ``clinicbot check`` does)::

    checks, settings = load_checks_and_settings(config.section("checks"), error=config.error)
    team = TeamSettings.from_config(config, rotation)
    make_context = context_factory(snapshot, settings, team=team, rotation=rotation)
    result = run_checks([c for c in checks if settings[c.slug].enabled], make_context)
    result.findings, result.failures

Delivery (comments, chat, email, repetition, escalation) is not done here: the handler side
reads ``settings[slug].handlers`` / ``.repetition_seconds`` / ``.escalation``.

The built-in checks are listed once, in ``registry.BUILTIN_CHECK_CLASSES``; their classes live in
the family modules (``triage``, ``reviews``, ``urgent``, ``workload``, ``notices``) and are not
re-exported here, so adding one touches no bookkeeping in this file. A "task sits in a column
too long" check is a :class:`ColumnDwellCheck` declaration (see ``checks/dwell.py``).
"""

from clinicbot.checks.base import SEVERITIES, Check, CheckContext, CheckFunction, Finding
from clinicbot.checks.dwell import ColumnDwellCheck
from clinicbot.checks.hours import BusinessHours
from clinicbot.checks import registry as _registry
from clinicbot.checks.registry import (
    BUILTIN_CHECK_CLASSES,
    BUILTIN_SLUGS,
    ENTRY_POINT_GROUP,
    CheckFailure,
    FunctionCheck,
    RunResult,
    as_check,
    builtin_checks,
    context_factory,
    import_object,
    load_checks,
    load_checks_and_settings,
    plugin_checks,
    run_checks,
)
from clinicbot.checks.settings import (
    DEFAULT_HANDLERS,
    HANDLERS,
    CheckSettings,
    TeamSettings,
    merged_thresholds,
    parse_check_settings,
)

__all__ = [
    # the interface
    "Check",
    "CheckContext",
    "CheckFunction",
    "Finding",
    "SEVERITIES",
    # registry and running: everything checks/registry.py exports
    *_registry.__all__,
    # settings and time
    "CheckSettings",
    "TeamSettings",
    "HANDLERS",
    "DEFAULT_HANDLERS",
    "parse_check_settings",
    "merged_thresholds",
    "BusinessHours",
    # declaring checks
    "ColumnDwellCheck",
]
