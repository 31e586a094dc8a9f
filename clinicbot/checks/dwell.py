"""Column dwell: "a task has sat in a column of role X for N hours/days" as a declaration.

A dwell check is a subclass of :class:`ColumnDwellCheck` declared in its class statement; its
docstring is its description::

    class DiscussingStaleCheck(ColumnDwellCheck, slug="discussing-stale", roles=("discussing",),
                               threshold=14, severity="warning", unanswered=True):
        '''A task in a discussing column has waited `days` for the team's first answer.'''

The keywords (each may also be a class attribute; ``description`` too, instead of the docstring):
``slug``; ``roles``, the column roles it watches; ``unit``, the threshold's key and unit (``"days"``,
the default, or ``"hours"``); ``threshold``, its default (the config may override it:
``checks.<slug>.days``; default 7); ``severity`` (default ``"info"``); ``unanswered``, only while no
team member has answered since the task entered (default false); ``summary``, the one-line pattern
(a default fits each of ``unanswered`` true and false).

Everything else is shared and behaves like every other column check (docs/checks.md):

- a task on several boards gets one finding, about the placement it has waited in longest
  (``other_places`` lists the rest); closed tasks never fire;
- the clock starts when the task entered the column (``approximate`` when the history cannot
  tell exactly, and the summary's ``{about}`` then says "about ");
- ``business_hours: true`` in the check's config counts working time (``ctx.business_hours``);
  ``handlers``, ``repetition_seconds`` and ``escalation`` are config, as for any check;
- with ``unanswered``, a placement counts only while nobody on the team (not the author, not a
  bot) has responded since the task entered it, and a task without history is skipped (we
  cannot tell whether someone answered, so we do not claim nobody did);
- the comment template is ``templates/checks/<slug>.remarkup.j2`` when there is one, else the
  default template (which shows the summary).

``summary`` is a ``str.format`` pattern with the fields ``task`` (T123), ``title``, ``where``
("Board: Column"), ``age`` ("52 hours", "9 working days") and ``about`` ("about " or "").
Task text is substituted as data: braces in a title are not format fields.

The declaration is checked when the class is defined, so a mistake fails at import with a
message naming the class and the attribute.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar, Mapping

from clinicbot.checks._common import (
    age_facts,
    column_facts,
    describe_age,
    oldest_placement,
    other_places,
    placements,
    response_exclusions,
    responders,
    setting,
    task_finding,
    where,
)
from clinicbot.checks.base import SEVERITIES, CheckContext, Finding
from clinicbot.checks.hours import days_threshold
from clinicbot.model import COLUMN_ROLES, Column, Snapshot, Task

UNITS = ("hours", "days")
SUMMARY_FIELDS = ("task", "title", "where", "age", "about")
UNANSWERED_SUMMARY = "{task} {title} has waited {about}{age} in {where} without a response from the team"


class ColumnDwellCheck:
    """Base of the declared dwell checks; see the module docstring. Not a check by itself."""

    slug: ClassVar[str] = ""
    description: ClassVar[str] = ""
    roles: ClassVar[tuple[str, ...]] = ()
    unit: ClassVar[str] = "days"
    threshold: ClassVar[float] = 7
    severity: ClassVar[str] = "info"
    unanswered: ClassVar[bool] = False
    summary: ClassVar[str] = "{task} {title} has been in {where} for {about}{age}"
    defaults: ClassVar[Mapping[str, Any]] = {}

    def __init_subclass__(cls, **declared: Any) -> None:
        fields = ("slug", "description", "roles", "unit", "threshold", "severity", "unanswered", "summary")
        unknown = sorted(set(declared) - set(fields))
        if unknown:
            raise TypeError(f"column dwell check {cls.__name__}: unknown declaration {', '.join(unknown)} "
                            f"(known: {', '.join(fields)})")
        super().__init_subclass__()
        for name, value in declared.items():
            setattr(cls, name, value)
        if "description" not in cls.__dict__ and cls.__dict__.get("__doc__"):
            cls.description = " ".join(cls.__doc__.split())
        if cls.unanswered and cls.summary == ColumnDwellCheck.summary:
            cls.summary = UNANSWERED_SUMMARY
        _validate(cls)
        cls.defaults = {cls.unit: cls.threshold}

    def limit(self, ctx: CheckContext, value: float) -> timedelta:
        if self.unit == "hours":
            return timedelta(hours=value)
        return days_threshold(ctx, value)

    def waiting(self, snapshot: Snapshot, entries: list[tuple[Task, Column]]) -> list[tuple[Task, Column]]:
        """The placements whose clock runs: all of them, or (``unanswered``) those nobody on the
        team has answered since the task entered the column."""
        if not self.unanswered:
            return entries
        task = entries[0][0]
        timeline = snapshot.timelines.get(task.phid)
        if timeline is None:
            return []
        exclude = response_exclusions(snapshot, task)
        who = responders(snapshot)
        waiting = []
        for _, column in entries:
            since, _approximate = snapshot.entered_column(task, column)
            if timeline.first_response(since, exclude=exclude, responders=who) is None:
                waiting.append((task, column))
        return waiting

    def run(self, ctx: CheckContext) -> list[Finding]:
        snapshot = ctx.snapshot
        value = setting(ctx, self.unit, self.threshold)
        limit = self.limit(ctx, value)
        findings = []
        for entries in placements(snapshot, self.roles).values():
            waiting = self.waiting(snapshot, entries)
            if not waiting:
                continue
            task, column, since, approximate, waited = oldest_placement(ctx, waiting)
            if waited < limit:
                continue
            summary = self.summary.format(
                task=task.monogram,
                title=task.title,
                where=where(snapshot, column),
                age=describe_age(ctx, waited, self.unit),
                about="about " if approximate else "",
            )
            findings.append(task_finding(
                self.slug, snapshot, task, severity=self.severity, summary=summary,
                **column_facts(snapshot, column),
                **age_facts(ctx, since, waited, **{f"threshold_{self.unit}": value}),
                approximate=approximate,
                other_places=other_places(snapshot, entries, column),
            ))
        return findings


def _validate(cls: type[ColumnDwellCheck]) -> None:
    name = cls.__name__

    def bad(attr: str, message: str) -> TypeError:
        return TypeError(f"column dwell check {name}: {attr} {message}")

    if not isinstance(cls.slug, str) or not cls.slug.strip():
        raise bad("slug", "must be a non-empty string like 'discussing-stale'")
    if not isinstance(cls.description, str) or not cls.description.strip():
        raise bad("description", "must say in one sentence when the check fires")
    if isinstance(cls.roles, str) or not cls.roles or not all(r in COLUMN_ROLES for r in cls.roles):
        raise bad("roles", f"must be a non-empty tuple of column roles ({', '.join(COLUMN_ROLES)}), not {cls.roles!r}")
    if cls.unit not in UNITS:
        raise bad("unit", f"must be one of {', '.join(UNITS)}, not {cls.unit!r}")
    if isinstance(cls.threshold, bool) or not isinstance(cls.threshold, (int, float)) or cls.threshold < 0:
        raise bad("threshold", f"must be a number of {cls.unit}, 0 or more, not {cls.threshold!r}")
    if cls.severity not in SEVERITIES:
        raise bad("severity", f"must be one of {', '.join(SEVERITIES)}, not {cls.severity!r}")
    try:
        cls.summary.format(**{f: "" for f in SUMMARY_FIELDS})
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise bad("summary", f"must be a format pattern using only {{{'}, {'.join(SUMMARY_FIELDS)}}}: {exc!r}") from None


__all__ = ["ColumnDwellCheck", "SUMMARY_FIELDS", "UNANSWERED_SUMMARY", "UNITS"]
