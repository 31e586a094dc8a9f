"""The digest's and the agenda's scale settings and finding lists (``reports.digest``, ``reports.agenda``).

::

    reports:
      digest:
        max_rows: 20                 # rows per section, then "and N more" (0: every row)
        section_max_rows: {inbox: 50, untag-candidate: 10}
        lists: [discussing-answered, review-migration, untag-candidate]
      agenda:
        max_rows: 20                 # rows per list section (the meeting's own items are never cut)
        lists: [untag-candidate]

``lists`` names checks whose *current* findings become a section each: the report job runs those
checks (their settings, thresholds and exemptions as ``clinicbot check`` applies them; a listed
check runs even when ``checks.<slug>.enabled`` is false, as with ``check --only``) over the
snapshot it loaded anyway, and :func:`clinicbot.reports.finding_lists.finding_section` lists
them. Nothing is handled: no comment, no ledger record. A slug that is no check (yet) is skipped
with a warning, not refused: checks come from plugins and custom paths too.

The two subsections are validated at load with the rest of ``reports:`` (:func:`reports_section`,
registered by ``jobs/sections.py``); the other ``reports:`` keys stay
``delivery.targets.report_settings``'s.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Mapping

from clinicbot.config import Config
from clinicbot.delivery.targets import ReportSettings, report_settings
from clinicbot.reports import DIGEST_SECTIONS

if TYPE_CHECKING:  # the report modules load when a report is built, not with every config
    from clinicbot.reports.common import RowCaps
    from clinicbot.reports.finding_lists import Listed

log = logging.getLogger(__name__)

SUBSECTIONS = ("digest", "agenda")
DEFAULT_LISTS = {"digest": ("discussing-answered", "review-migration", "untag-candidate"),
                 "agenda": ("untag-candidate",)}
DEFAULT_MAX_ROWS = 20
# Headings for the lists the clinic-duty process asks for, when the check declares no ``title``.
HEADINGS = {
    "discussing-answered": "Answered in Discussing: remove from the board",
    "review-migration": "Review tasks to move to the external review board",
    "untag-candidate": "Untag candidates: old tasks with no real activity",
}
_SLUG = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_KEYS = ("max_rows", "section_max_rows", "lists")




@dataclass(frozen=True)
class ListSettings:
    """One report's ``reports.<digest|agenda>`` subsection."""

    lists: tuple[str, ...] = ()
    max_rows: int = DEFAULT_MAX_ROWS
    section_max_rows: Mapping[str, int] = field(default_factory=dict)

    @property
    def caps(self) -> "RowCaps":
        from clinicbot.reports.common import RowCaps

        return RowCaps(self.max_rows, self.section_max_rows)


def _count(config: Config, where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise config.error(where, f"must be a whole number of rows, 0 or more (0: no cap), not {value!r}")
    return value


def list_settings(config: Config, kind: str) -> ListSettings:
    """``reports.<kind>`` validated; an unknown key or a bad value is a ConfigError naming it."""
    base = f"reports.{kind}"
    raw = config.section("reports").get(kind)
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise config.error(base, f"must be a mapping with {', '.join(_KEYS)}, not {type(raw).__name__}")
    for key in raw:
        if key not in _KEYS:
            raise config.error(f"{base}.{key}", f"unknown key; known keys under {base}: {', '.join(_KEYS)}")
    lists = raw.get("lists", DEFAULT_LISTS[kind])
    if lists is None:
        lists = ()
    if isinstance(lists, str) or not isinstance(lists, (list, tuple)):
        raise config.error(f"{base}.lists", f"must be a list of check slugs such as [untag-candidate], not {lists!r}")
    for slug in lists:
        if not isinstance(slug, str) or not _SLUG.fullmatch(slug):
            raise config.error(f"{base}.lists", f"{slug!r} is not a check slug (lowercase, like untag-candidate)")
    if len(set(lists)) != len(lists):
        twice = sorted({s for s in lists if list(lists).count(s) > 1})
        raise config.error(f"{base}.lists", f"lists {', '.join(twice)} twice; name each check once")
    default = _count(config, f"{base}.max_rows", raw.get("max_rows", DEFAULT_MAX_ROWS))
    per = raw.get("section_max_rows") or {}
    if not isinstance(per, Mapping):
        raise config.error(f"{base}.section_max_rows", "must map a section (or a listed check's slug) to a number of rows")
    sections = (DIGEST_SECTIONS if kind == "digest" else ()) + tuple(lists)
    for key, value in per.items():
        if key not in sections:
            raise config.error(f"{base}.section_max_rows.{key}",
                               f"not a section of the {kind}; sections: {', '.join(sections) or '(none: list a check first)'}")
        _count(config, f"{base}.section_max_rows.{key}", value)
    return ListSettings(tuple(lists), default, dict(per))


def reports_section(config: Config) -> ReportSettings:
    """The ``reports:`` validator: ``digest`` and ``agenda`` here, every other key by
    :func:`~clinicbot.delivery.targets.report_settings` (whose settings it returns)."""
    for kind in SUBSECTIONS:
        list_settings(config, kind)
    rest = {k: v for k, v in config.section("reports").items() if k not in SUBSECTIONS}
    return report_settings(replace(config, raw={**config.raw, "reports": rest}), validated_elsewhere=SUBSECTIONS)


# --------------------------------------------------------------------------------------------
# Running the listed checks


def heading(check: Any) -> str:
    """The section's heading: the check's ``title`` (a custom check's function may carry one, like its
    ``description``), the process's name for it (:data:`HEADINGS`), else its slug."""
    title = getattr(check, "title", None) or getattr(getattr(check, "function", None), "title", None)
    if isinstance(title, str) and title.strip():
        return title.strip()
    return HEADINGS.get(check.slug) or check.slug.replace("-", " ").replace("_", " ").capitalize()


def listed_findings(config: Config, snapshot: Any, rotation: Any,
                    slugs: tuple[str, ...]) -> tuple[list["Listed"], list[str]]:
    """Run the listed checks over ``snapshot``: (one :class:`Listed` per known slug, in order;
    the slugs that are no check, each logged as a warning)."""
    if not slugs:
        return [], []
    from clinicbot.checks import TeamSettings, context_factory, load_checks_and_settings, run_checks
    from clinicbot.reports.finding_lists import Listed

    checks, settings = config.typed.get("checks") or load_checks_and_settings(config.section("checks"),
                                                                              error=config.error)
    by_slug = {c.slug: c for c in checks}
    skipped = [s for s in slugs if s not in by_slug]
    for slug in skipped:
        log.warning("%s: reports lists %r, which is no check (known: %s); that section is skipped",
                    config.path or "<config>", slug, ", ".join(sorted(by_slug)))
    chosen = [by_slug[s] for s in slugs if s in by_slug]
    team = TeamSettings.from_config(config, rotation)
    result = run_checks(chosen, context_factory(snapshot, settings, team=team, rotation=rotation))
    errors = {f.slug: f.error for f in result.failures}
    listed = [Listed(c.slug, heading(c), str(getattr(c, "description", "") or ""),
                     tuple(f for f in result.findings if f.slug == c.slug), errors.get(c.slug)) for c in chosen]
    return listed, skipped


__all__ = ["ListSettings", "list_settings", "reports_section", "listed_findings", "heading", "DEFAULT_LISTS",
           "HEADINGS"]
