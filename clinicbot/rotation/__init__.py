"""rotation.yaml: who is on clinic duty at any moment, and what changes next.

The file is read with ``yaml.compose`` (not ``safe_load``) so every value keeps its line
number: errors and warnings name ``file:line`` and the key. Everything after loading is a
pure function of the parsed :class:`Rotation` and an aware datetime handed in by the caller.

Model (see docs/rotation.md for the user-facing description):

* A *duty day* D runs from the handoff time on local date D to the handoff time on D+1, in
  the team's timezone. Every date in the file means a duty day; ``to`` dates are inclusive.
  Handoff instants are always built from a local date + the handoff time and only then
  converted to UTC, so a DST change never shifts the handoff hour (no "+24 h in UTC").
* Planned duty = the generated ``cycle`` plus the hand-written ``shifts`` (additive).
  ``overrides`` then hand a member's duty in a range to someone else (file order), and
  ``unavailable`` ranges cut members off duty *without* a replacement, so the gap shows up.
* Internally every instant is UTC: Python compares datetimes that share one ZoneInfo object
  by wall clock, which is wrong across a DST fold.

The package: ``types`` (the parsed file and the query results), ``parse`` (loading and the
load-time checks), ``plan`` (cycle + shifts -> overrides -> unavailability), ``query`` (who is on
duty, changes, gaps, notices, validation, the server check), ``export`` (calendar, wiki table).
Everything public is importable from ``clinicbot.rotation``.
"""


from __future__ import annotations

from clinicbot.rotation.parse import load_rotation, parse_rotation
from clinicbot.rotation.query import (
    changes_between,
    check_members_on_server,
    coverage_gaps,
    notices,
    on_duty,
    on_duty_for_event,
    shifts_between,
    upcoming_changes,
    validate,
)
from clinicbot.rotation.types import (
    DEFAULT_HORIZON,
    Change,
    Cycle,
    ExplicitShift,
    Gap,
    Member,
    Notice,
    Override,
    Rotation,
    RotationWarning,
    Shift,
    Unavailability,
)


__all__ = [
    "DEFAULT_HORIZON", "Change", "Cycle", "ExplicitShift", "Gap", "Member", "Notice", "Override", "Rotation",
    "RotationWarning", "Shift", "Unavailability", "changes_between", "check_members_on_server",
    "coverage_gaps", "load_rotation", "notices", "on_duty", "on_duty_for_event", "parse_rotation", "shifts_between",
    "upcoming_changes", "validate",
]
