"""Finding-list sections: a check's current findings listed in the digest (or the agenda).

Some checks find things the engineers on duty act on from a list rather than from a comment:
tasks in Discussing the team has answered ("remove them from the board"), review tasks to move
to the external review board, old tasks to untag. ``reports.digest.lists`` and
``reports.agenda.lists`` name them; the report job runs those checks over the snapshot it already
loaded (``clinicbot/jobs/report_lists.py``) and :func:`finding_section` turns each one's findings
into a section: a heading from the check, one row per task (a task on two boards is one row
naming both; several findings about one task are one row with each detail), the section's cap
and "and N more". Pure: findings are duck-typed (``slug``, ``task_phid``, ``task_id``,
``severity``, ``summary``, ``facts``), reports do not import the checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from clinicbot.model import Snapshot, Task
from clinicbot.reports.common import cap_rows, restate_ages, task_row

SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Listed:
    """A listed check's current findings, as the report job computed them (``error``: the check
    failed, one line)."""

    slug: str
    title: str
    description: str = ""
    findings: Sequence[Any] = field(default_factory=tuple)
    error: str | None = None


def places(snapshot: Snapshot, task: Task) -> list[dict[str, str]]:
    """Every watched board the task sits on and its column there, in the config's board order."""
    out = []
    for board in snapshot.boards.values():
        col = board.column(task.columns.get(board.phid, "")) if board.phid in task.columns else None
        if col is not None:
            out.append({"board": board.name, "column": col.name})
    return out


def detail(summary: str, task: Task | None, title: str) -> str:
    """The summary without the leading "T12 <title>" the row shows already, ages restated; the
    title, wherever it appears, is kept as it is (task text is data)."""
    text = summary
    if task is not None:
        prefix = f"{task.monogram} {task.title}"
        if text.startswith(prefix):
            text = text[len(prefix):].lstrip(" :,-—")
    return restate_ages(text, keep=[title])


def _row(snapshot: Snapshot, finding: Any) -> tuple[str, dict[str, Any], Task | None]:
    facts: Mapping[str, Any] = getattr(finding, "facts", None) or {}
    task = snapshot.tasks.get(finding.task_phid) if finding.task_phid else None
    if task is not None:
        row = {**task_row(snapshot, task), "places": places(snapshot, task)}
    else:  # not a task finding (or a task the snapshot lacks): what the finding says
        task_id = finding.task_id
        row = {"task": f"T{task_id}" if task_id is not None else None, "id": task_id,
               "title": str(facts.get("title") or ""), "places": []}
    row["boards"] = [p["board"] for p in row["places"]]  # one place per board: a task has one column on a board
    key = finding.task_phid or (f"T{finding.task_id}" if finding.task_id is not None else finding.summary)
    return key, row, task


def finding_section(snapshot: Snapshot, *, slug: str, title: str, description: str = "",
                    findings: Sequence[Any] = (), limit: int = 0, base_url: str = "",
                    error: str | None = None) -> dict[str, Any]:
    """One section: ``{slug, title, description, rows, total, more, error}``.

    Rows: most severe first, then oldest task first. ``error`` (the check failed: one line) gives
    an empty section that says so, rather than "nothing to do"."""
    rows: dict[str, dict[str, Any]] = {}
    for f in findings:
        key, row, task = _row(snapshot, f)
        row = rows.setdefault(key, {**row, "severity": f.severity, "findings": []})
        if SEVERITY_RANK.get(f.severity, 3) < SEVERITY_RANK.get(row["severity"], 3):
            row["severity"] = f.severity
        row["findings"].append({"summary": f.summary, "detail": detail(f.summary, task, row["title"]),
                                "severity": f.severity, "facts": dict(getattr(f, "facts", None) or {})})
    ordered = sorted(rows.values(), key=lambda r: (SEVERITY_RANK.get(r["severity"], 3), r.get("created") or "",
                                                   r["id"] if r["id"] is not None else 0))
    shown, more = cap_rows(ordered, limit, base_url)
    return {"slug": slug, "title": title, "description": description, "rows": shown, "total": len(ordered),
            "more": more, "error": error}


def list_sections(snapshot: Snapshot, listed: Sequence[Listed], caps: Any, base_url: str) -> list[dict[str, Any]]:
    """Every listed check's section, in the order the config lists them; ``caps``: a
    :class:`~clinicbot.reports.common.RowCaps` (the section's key is the check's slug)."""
    return [finding_section(snapshot, slug=x.slug, title=x.title, description=x.description, findings=x.findings,
                            limit=caps.limit(x.slug), base_url=base_url, error=x.error) for x in listed]


__all__ = ["Listed", "finding_section", "list_sections", "places", "detail", "SEVERITY_RANK"]
