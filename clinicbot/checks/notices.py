"""``rotation-notice``: someone goes on or off duty within ``days``.

One finding per notice; the rotation module names each notice with a stable key (who, which
shift, on/off), which becomes the finding's subject, so the ledger announces each change once
(or as often as the deployment's repetition setting says) however often the check runs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Callable, Mapping

from clinicbot.checks._common import iso, setting
from clinicbot.checks.base import CheckContext, Finding
from clinicbot.checks.hours import as_zone

NoticesFunction = Callable[..., list[Any]]


def rotation_zone_name(rotation: Any) -> str | None:
    """The rotation's IANA timezone name (``Rotation.tz_name``; ``timezone`` in other shapes)."""
    for attr in ("tz_name", "timezone", "tz"):
        value: Any = getattr(rotation, attr, None)
        if isinstance(value, str):
            if value:
                return value
            continue
        key = getattr(value, "key", None)  # a ZoneInfo
        if isinstance(key, str) and key:
            return key
    return None


def _zone(rotation: Any) -> Any:
    try:
        return as_zone(rotation_zone_name(rotation))
    except (ValueError, KeyError):  # rotation.yaml validated its timezone already; be lenient
        return as_zone(None)


class RotationNoticeCheck:
    slug = "rotation-notice"
    description = "Someone rotates on or off duty within `days` (one reminder per change)."
    defaults: Mapping[str, Any] = {"days": 7}
    setting_types: Mapping[str, Any] = {"days": int}

    def __init__(self, notices: NoticesFunction | None = None) -> None:
        # Tests (and other rotation sources) can hand in their own notices(); by default the
        # rotation module's, imported late so checks load even where it is not needed.
        self._notices = notices

    def _notices_fn(self) -> NoticesFunction:
        if self._notices is not None:
            return self._notices
        from clinicbot.rotation import notices

        return notices

    def run(self, ctx: CheckContext) -> list[Finding]:
        if ctx.rotation is None:
            return []
        days = setting(ctx, "days", 7)
        tz = _zone(ctx.rotation)
        tz_name = getattr(tz, "key", "UTC")
        findings = []
        for notice in self._notices_fn()(ctx.rotation, ctx.now, days=days):
            member = notice.member
            username = getattr(member, "username", "") or ""
            name = getattr(member, "name", "") or username
            local = notice.at.astimezone(tz)
            when = f"{local:%a %Y-%m-%d %H:%M} ({tz_name})"
            going = "goes on duty" if notice.kind == "on" else "goes off duty"
            until = max(timedelta(0), notice.at - ctx.now)
            findings.append(Finding(
                slug=self.slug,
                task_phid=None,
                task_id=None,
                severity="info",
                summary=f"{name} ({username}) {going} on {when}" if name != username else f"{username} {going} on {when}",
                facts={
                    "notice_key": notice.key,
                    "kind": notice.kind,
                    "at": iso(notice.at),
                    "at_local": when,
                    "timezone": tz_name,
                    "who": username,
                    "username": username,
                    "name": name,
                    "email": getattr(member, "email", "") or "",
                    "chat": getattr(member, "chat", "") or "",
                    "in_hours": round(until.total_seconds() / 3600, 1),
                    "in_days": round(until / timedelta(days=1), 1),
                    "threshold_days": days,
                    # the rotation's own wording ("alice rotates ON clinic duty ...; on duty with: bob")
                    "message": getattr(notice, "message", "") or "",
                },
                subject=str(notice.key),
            ))
        findings.sort(key=lambda f: (f.facts["at"], f.subject))
        return findings


__all__ = ["RotationNoticeCheck"]
