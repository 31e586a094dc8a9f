"""The metrics report as plain data (the metrics plus the stored history and the SLAs), and the
charts of its HTML page (``svg.py``; ``render.py`` hands them to the template as ready Markup)."""

from __future__ import annotations

from datetime import date, datetime, timezone, tzinfo
from typing import Any, Callable, Mapping, Sequence
from zoneinfo import ZoneInfo

from markupsafe import Markup

from clinicbot.metrics import Metrics
from clinicbot.svg import Series, bar_chart, hbar_chart, line_chart

# Response-time charts need this many days of history before a line means anything: on a first
# run there is one point, and the chart says "not enough data yet" instead of a lone dot.
MIN_HISTORY_POINTS = 2


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


# --------------------------------------------------------------------------------------------
# Charts


def local_day(value: str | datetime, tz_name: str) -> date:
    """An ISO time (or datetime) -> its date in the team's timezone."""
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.astimezone(ZoneInfo(tz_name)).date() if tz_name and tz_name != "UTC" else at.astimezone(timezone.utc).date()


def daily_history(history: Sequence[Mapping[str, Any]], tz_name: str, limit: int) -> dict[date, Mapping[str, Any]]:
    """One history record per local day (that day's last), the newest ``limit`` days, oldest first."""
    days: dict[date, Mapping[str, Any]] = {}
    for rec in sorted(history, key=lambda r: datetime.fromisoformat(r["now"])):
        days[local_day(rec["now"], tz_name)] = rec
    return {d: days[d] for d in sorted(days)[-limit:]}


# (chart key, title, history key, SLA key): the response-time trends, one line each for median and p90.
RESPONSE_CHARTS = (
    ("incoming_response", "Incoming tasks: time to first team response", "incoming_response", None),
    ("unbreak_response", "Unbreak Now!: time to first team response", "unbreak_response", "unbreak_now"),
    ("review_response", "Outside review requests: time to first team response", "review_response", "review"),
)


def metrics_charts(data: Mapping[str, Any], *, history_points: int = 60,
                   hours: Callable[[Any], str] = lambda h: f"{h}h") -> dict[str, Markup]:
    """The page's charts. Dated series are drawn on a real time axis (daily records and weekly
    reconstructions side by side); counts get whole-number ticks; ``hours`` formats the SLA label."""
    tz_name = str(data.get("timezone") or "UTC")
    history = list(data.get("history") or [])
    if not any(h.get("now") == data["now"] for h in history):
        history.append({k: data[k] for k in ("now", "backlog", *(c[2] for c in RESPONSE_CHARTS)) if k in data})
    daily = daily_history(history, tz_name, history_points)

    # Backlog: what was recorded (daily), plus the reconstruction from created/closed dates at each
    # week's end (weekly), which covers the weeks before clinicbot started recording.
    recon = {local_day(w["end"], tz_name): w["backlog_at_end"] for w in data["weekly"]}
    days = sorted(set(daily) | set(recon))
    backlog = line_chart(
        "Open tasks (backlog)", [d.strftime("%m-%d") for d in days],
        [Series("recorded (daily)", [daily[d]["backlog"] if d in daily else None for d in days], connect=True),
         Series("reconstructed (week ends)", [recon.get(d) for d in days], connect=True)],
        times=days, y_label="tasks", counts=True)
    weeks = data["weekly"]
    created = bar_chart("Created vs resolved per week", [w["week"][5:] for w in weeks],
                        [Series("created", [w["created"] for w in weeks]),
                         Series("resolved", [w["resolved"] for w in weeks])], y_label="tasks", counts=True)
    charts = {"backlog": backlog, "created_resolved": created}
    days = list(daily)
    for key, title, hist_key, sla_key in RESPONSE_CHARTS:
        stats = [rec.get(hist_key) or {} for rec in daily.values()]
        series = [Series("median", [s.get("median") for s in stats]), Series("p90", [s.get("p90") for s in stats])]
        sla = (data.get("sla_hours") or {}).get(sla_key) if sla_key else None
        if sla is not None:
            series.append(Series(f"SLA {hours(sla)}", [float(sla)] * len(days), dashed=True))
        charts[key] = line_chart(title, [d.strftime("%m-%d") for d in days], series, times=days, y_label="hours",
                                 min_points=MIN_HISTORY_POINTS)
    cols = data["per_column"]
    charts["per_column"] = hbar_chart("Open tasks per column", [f"{c['board']} / {c['column']}" for c in cols],
                                      [c["open"] for c in cols])
    return charts
