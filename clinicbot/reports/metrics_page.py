"""The metrics report as plain data: the metrics plus the stored history and the SLAs."""

from __future__ import annotations

from datetime import timezone, tzinfo
from typing import Any, Mapping, Sequence

from clinicbot.metrics import Metrics

def build_metrics_report(
    metrics: Metrics,
    *,
    team: str,
    history: Sequence[Mapping[str, Any]] = (),
    sla_hours: Mapping[str, float] | None = None,
    tz: tzinfo = timezone.utc,
    base_url: str = "",
) -> dict[str, Any]:
    """The metrics plus what the page draws from: the stored history and the SLAs."""
    data = metrics.to_dict()
    sla = dict(sla_hours or {})
    for key, stat in (("unbreak_now", data["unbreak_response"]), ("review", data["review_response"])):
        limit = sla.get(key)
        stat["sla_hours"] = limit
        stat["p90_within_sla"] = None if limit is None or stat["p90"] is None else stat["p90"] <= limit
    return {
        "kind": "metrics",
        "team": team,
        "date": metrics.now.astimezone(tz).date().isoformat(),
        "timezone": str(tz),
        "base_url": base_url,
        "sla_hours": sla,
        **data,
        "history": [dict(h) for h in history],
    }

