"""Custom checks for the tests: given to clinicbot by dotted path (`path: custom_checks_example:…`)."""

from __future__ import annotations

from clinicbot.checks.base import CheckContext, Finding


def old_open_tasks(ctx: CheckContext) -> list[Finding]:
    """Open tasks created more than 100 days ago."""
    return [Finding("old-open-task", t.phid, t.id, "info", f"{t.monogram} is over 100 days old")
            for t in ctx.snapshot.tasks.values() if t.is_open and (ctx.now - t.created).days > 100]


def explode(ctx: CheckContext) -> list[Finding]:
    raise RuntimeError("the custom check broke")
