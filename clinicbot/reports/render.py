"""Turn a report's data (``reports.build_*``) into text for one medium, through ``templates/reports/``.

Formats: ``term`` (rich console markup), ``md``, ``remarkup``, ``html`` (a whole page,
autoescaped) and ``json`` (the data itself, no template: it *is* the contract). Delivery
adds two media of its own: ``chat`` (Slack-compatible) and ``text`` (plain email bodies).
Template names are ``reports/<kind>.<format>.j2``; a deployment's ``templates_dir`` can
replace any of them, and any other format that has a template there can be rendered (a new
delivery target brings its own template format).

The metrics page gets its charts (``metrics_page.metrics_charts``, drawn by ``svg.py``) as ready
``Markup``: the SVG builder escapes every label, so the autoescaping template can embed them as they are.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from clinicbot import escape
from clinicbot.reports.common import display_name, format_hours

FORMATS = ("term", "md", "remarkup", "html", "json")
MEDIA = FORMATS + ("chat", "text")
_FORMAT_NAME = re.compile(r"[a-z][a-z0-9_-]*")  # a format brought by its own template (a delivery target's)
EXTENSIONS = {"term": "txt", "md": "md", "remarkup": "remarkup", "html": "html", "json": "json", "chat": "txt",
              "text": "txt"}


def _local(tz_name: str):
    tz = ZoneInfo(tz_name) if tz_name and tz_name != "UTC" else None

    def local(value: Any, fmt: str = "%a %Y-%m-%d %H:%M") -> str:
        """ISO string -> the team's local time (the zone is named once in each report's header)."""
        if value is None:
            return "n/a"
        at = datetime.fromisoformat(value) if isinstance(value, str) else value
        return (at.astimezone(tz) if tz else at).strftime(fmt)

    return local


def who(value: Any, people: Mapping[str, str] | None = None) -> str:
    """A person as reports show them: ``Carol Chen (@carol)``, or ``carol`` when no other name is
    known (never ``carol (carol)``). ``value``: a person dict (``reports.common.person``) or a
    username, looked up in ``people`` (the report's ``people`` map); None -> "unknown". Templates
    escape the result for their medium, which breaks the ``@`` (no ping)."""
    if isinstance(value, Mapping):
        return display_name(str(value.get("username") or ""), str(value.get("name") or "")) or "unknown"
    if not value:
        return "unknown"
    return (people or {}).get(str(value)) or display_name(str(value))


def _templates(templates_dir: str | Path | None, tz_name: str) -> Any:
    from clinicbot.reports.templating import Templates

    t = Templates(templates_dir)
    t.env.filters.update(hours=format_hours, local=_local(tz_name), who=who)
    return t


def render(data: Mapping[str, Any], fmt: str, *, templates_dir: str | Path | None = None,
           history_points: int = 60) -> str:
    """The report in one medium. ``data`` is what ``reports.build_*`` returned."""
    if fmt == "json":
        # The data as built, minus control characters and bidi overrides (task text is data).
        return json.dumps(escape.scrub(data), indent=2, ensure_ascii=False) + "\n"
    templates = _templates(templates_dir, str(data.get("timezone") or "UTC"))
    name = f"reports/{data['kind']}.{fmt}.j2"
    if fmt not in MEDIA and not (_FORMAT_NAME.fullmatch(fmt) and templates.exists(name)):
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(MEDIA)}, or a format with a template "
                         f"reports/<kind>.<format>.j2")
    context: dict[str, Any] = {"r": data}
    if data["kind"] == "metrics" and fmt == "html":
        from clinicbot.reports.metrics_page import metrics_charts

        context["charts"] = metrics_charts(data, history_points=history_points, hours=format_hours)
    return templates.render(name, **context)


def task_url(data: Mapping[str, Any], monogram: str) -> str:
    base = str(data.get("base_url") or "")
    return f"{base.rstrip('/')}/{monogram}" if base else ""
