"""`clinicbot status`: is the bot healthy? Each job's last run and next run, the recent runs, the cache, serve.

Every run that posts or changes state is in the run history (:mod:`clinicbot.jobs.runlog`):
``serve``'s jobs, ``serve --once``, ``sync`` and the applied one-shot commands (``check --apply``,
``digest --apply``, ...). A job's "last run" is its latest, whoever started it; the recent runs
list them all with how they were started (serve, once, manual) and their writes.

Everything comes from the state directory (the run history and cache metadata in
``cache.sqlite``, opened read-only) and the config's schedule: status makes no Conduit call and
takes no lock, so it works while ``serve`` runs, and from a monitoring probe.

Healthy means: no enabled job's last run failed, and no job that has run before has missed a
run it should have finished by now (its latest scheduled time before ``now - grace``). Jobs that
never ran are shown but not held against the bot: under cron, a job may simply not be installed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from rich.console import Console
from rich.table import Table

from clinicbot.config import Config
from clinicbot.errors import StateError
from clinicbot.jobs.schedule import JOBS, schedule_of
from clinicbot.state.cache import CacheStore, cache_path
from clinicbot.state.runs import alive


@dataclass
class JobStatus:
    name: str
    schedule: str
    enabled: bool
    available: bool
    last_started: datetime | None = None
    last_outcome: str | None = None  # ok / failed / running / interrupted / skipped
    duration: float | None = None
    calls: int | None = None
    attempts: int | None = None
    writes: int | None = None
    trigger: str | None = None  # serve / once / manual
    detail: str = ""
    next_run: datetime | None = None
    overdue_since: datetime | None = None  # a scheduled run that should have happened but did not


@dataclass
class StatusReport:
    now: datetime
    timezone: str
    jobs: list[JobStatus]
    serve: dict[str, Any] | None  # {"pid", "since", "running"} of the latest serve process
    cache: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    recent: list[dict[str, Any]] = field(default_factory=list)  # the latest runs, newest first

    @property
    def healthy(self) -> bool:
        return not self.problems


def _dt(epoch: float | int | None) -> datetime | None:
    return datetime.fromtimestamp(float(epoch), tz=timezone.utc) if epoch is not None else None


def collect_status(config: Config, now: datetime, recent: int = 10) -> StatusReport:
    schedule = schedule_of(config)
    tz = schedule.timezone
    runs: dict[str, dict[str, Any]] = {}
    latest: list[dict[str, Any]] = []
    cache: dict[str, Any] = {"path": str(cache_path(config)), "exists": cache_path(config).exists()}
    if cache["exists"]:
        try:
            with CacheStore(cache_path(config), readonly=True) as store:
                runs = store.last_runs()
                latest = store.recent_runs(recent)
                hw = store.get("high_water")
                last = store.get("last_reconcile")
                info = json.loads(store.get("last_sync") or "{}")
                cache.update(tasks=store.task_count(), synced_at=_dt(int(hw)) if hw else None,
                             reconciled_at=_dt(int(last)) if last else None, last_mode=info.get("mode"))
        except Exception as exc:  # sqlite3 errors included: status must still answer
            raise StateError(str(cache_path(config)), f"cannot read the run history: {exc}") from None
    report = StatusReport(now=now, timezone=getattr(tz, "key", str(tz)), jobs=[], serve=None, cache=cache,
                          recent=[_recent(row) for row in latest])

    serve = runs.get("serve")
    if serve:
        running = serve["outcome"] == "running" and alive(serve["pid"])
        report.serve = {"pid": serve["pid"], "since": _dt(serve["started"]), "running": running,
                        "stopped_at": _dt(serve["finished"])}

    for name, plan in schedule.jobs.items():
        js = JobStatus(name=name, schedule=plan.describe(), enabled=plan.enabled, available=name in JOBS)
        row = runs.get(name)
        if row:
            js.last_started = _dt(row["started"])
            js.last_outcome = _outcome(row)
            js.duration = row["duration"]
            js.calls = row["calls"]
            js.attempts = row["attempts"]
            js.writes = row["writes"]
            js.trigger = row["trigger"]
            js.detail = row["detail"] or ""
        if plan.enabled:
            js.next_run = schedule.next_run(name, now.astimezone(tz))
            if row:
                due = schedule.previous_run(name, now.astimezone(tz) - timedelta(seconds=plan.grace),
                                             lookback=timedelta(days=8))
                if due is not None and js.last_started is not None and js.last_started < due:
                    js.overdue_since = due
                    report.problems.append(f"{name}: missed its run of {due.astimezone(tz):%a %Y-%m-%d %H:%M}")
            if js.last_outcome in ("failed", "interrupted", "partial"):
                report.problems.append(f"{name}: last run {js.last_outcome}" + (f" ({js.detail})" if js.detail else ""))
        report.jobs.append(js)
    return report


def _outcome(row: dict[str, Any]) -> str:
    """A run's outcome; 'running' by a process that is gone is 'interrupted'."""
    return "interrupted" if row["outcome"] == "running" and not alive(row["pid"]) else str(row["outcome"])


def _recent(row: dict[str, Any]) -> dict[str, Any]:
    return {"job": row["job"], "command": row["command"] or row["job"], "trigger": row["trigger"] or "serve",
            "started": _dt(row["started"]), "finished": _dt(row["finished"]), "outcome": _outcome(row),
            "duration": row["duration"], "calls": row["calls"], "writes": row["writes"], "detail": row["detail"] or ""}


def _num(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:.1f}{unit}" if isinstance(value, float) else f"{value}{unit}"


def _fmt(at: datetime | None, tz: Any) -> str:
    return at.astimezone(tz).strftime("%a %d %b %H:%M") if at else "—"


def render_status(report: StatusReport, console: Console) -> None:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(report.timezone) if report.timezone not in ("UTC", "utc") else timezone.utc
    if report.serve and report.serve["running"]:
        console.print(f"serve: running, pid {report.serve['pid']}, since {_fmt(report.serve['since'], tz)}",
                      markup=False, highlight=False)
    elif report.serve:
        console.print(f"serve: not running (last stopped {_fmt(report.serve['stopped_at'], tz)})",
                      markup=False, highlight=False)
    else:
        console.print("serve: never started here (one-shot runs are shown below)", markup=False, highlight=False)
    table = Table(title=f"jobs (times in {report.timezone})", title_justify="left")
    for col in ("job", "schedule", "last run", "by", "outcome", "duration", "calls", "writes", "next run"):
        table.add_column(col, no_wrap=True, overflow="ellipsis")
    for j in report.jobs:
        outcome = j.last_outcome or ("never run" if j.available else "unavailable")
        if j.overdue_since:
            outcome += ", missed"
        if not j.enabled:
            outcome = "disabled"
        table.add_row(j.name, j.schedule, _fmt(j.last_started, tz), (j.trigger or "serve") if j.last_started else "—",
                      outcome, _num(j.duration, " s"), _num(j.calls), _num(j.writes), _fmt(j.next_run, tz))
    console.print(table)
    if report.recent:
        runs = Table(title=f"recent runs (newest first, times in {report.timezone})", title_justify="left")
        for col in ("started", "run", "by", "outcome", "duration", "calls", "writes"):
            runs.add_column(col, no_wrap=col != "run", overflow="fold")
        for r in report.recent:
            runs.add_row(_fmt(r["started"], tz), r["command"], r["trigger"], r["outcome"], _num(r["duration"], " s"),
                         _num(r["calls"]), _num(r["writes"]))
        console.print(runs)
    c = report.cache
    if c.get("exists"):
        console.print(f"cache: {c.get('tasks', 0)} tasks, synced up to {_fmt(c.get('synced_at'), tz)} "
                      f"(last {c.get('last_mode') or '—'}), reconciled {_fmt(c.get('reconciled_at'), tz)}; {c['path']}",
                      markup=False, highlight=False)
    else:
        console.print(f"cache: none yet ({c['path']}); `clinicbot sync` creates it", markup=False, highlight=False)
    for problem in report.problems:
        console.print(f"problem: {problem}", markup=False, highlight=False)
    console.print("status: healthy" if report.healthy else f"status: {len(report.problems)} problem(s)",
                  markup=False, highlight=False)


def status_json(report: StatusReport) -> dict[str, Any]:
    def conv(v: Any) -> Any:
        if isinstance(v, datetime):
            return v.isoformat()
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v

    data: dict[str, Any] = conv({"now": report.now, "timezone": report.timezone, "healthy": report.healthy,
                                 "problems": report.problems, "serve": report.serve, "cache": report.cache,
                                 "jobs": [asdict(j) for j in report.jobs], "recent_runs": report.recent})
    return data
