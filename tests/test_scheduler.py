"""serve's scheduler under a fake clock: which jobs run when, through a day, a suspend, a failure."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import apscheduler.executors.base
import apscheduler.schedulers.base
import pytest
from apscheduler.executors.debug import DebugExecutor
from apscheduler.schedulers.base import BaseScheduler

from clinicbot.jobs.context import App
from clinicbot.config import parse_config
from clinicbot.errors import ConfigError
from clinicbot.jobs.schedule import JOBS, crontab, parse_schedule
from clinicbot.scheduler import JobRunner, add_jobs, catch_up
from clinicbot.state.cache import CacheStore, cache_path

BERLIN = ZoneInfo("Europe/Berlin")
MONDAY = datetime(2026, 11, 23, 0, 0, tzinfo=BERLIN)


def make_config(tmp_path: Path, schedule: dict | None = None, team: dict | None = None):
    raw = {
        "phabricator": {"url": "http://127.0.0.1:1/"},
        "team": {"timezone": "Europe/Berlin", **(team or {})},
        "boards": [{"project": "Core Platform Team", "columns": {"inbox": "Inbox"}}],
        "state_dir": "state",
    }
    if schedule is not None:
        raw["schedule"] = schedule
    return parse_config(raw, tmp_path / "clinicbot.yaml")


class FakeClock:
    def __init__(self, start: datetime):
        self.at = start

    def now(self) -> datetime:
        return self.at


class ManualScheduler(BaseScheduler):
    """The base scheduler without a thread: the test calls _process_jobs() like the main loop would."""

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait)

    def wakeup(self) -> None:
        pass


@pytest.fixture
def clock(monkeypatch):
    clock = FakeClock(MONDAY)

    class FakeDatetime(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[override]
            return clock.at.astimezone(tz) if tz else clock.at.replace(tzinfo=None)

    # APScheduler 3 reads the time in exactly these two places (job processing, misfire check).
    monkeypatch.setattr(apscheduler.schedulers.base, "datetime", FakeDatetime)
    monkeypatch.setattr(apscheduler.executors.base, "datetime", FakeDatetime)
    return clock


SCHEDULE = {
    "timezone": "Europe/Berlin",
    "jobs": {
        "sync": {"minute": "*/30"},
        "checks": "0 9-16 * * 1-5",
        "digest": "0 9 * * mon-fri",
        "agenda": "0 15 * * 3",  # cron's 3 = Wednesday (APScheduler's own 3 would be Thursday)
        "metrics": {"cron": "0 7 * * *", "misfire_grace_seconds": 3600},
        "rotation": False,
    },
}


class Harness:
    def __init__(self, tmp_path: Path, clock: FakeClock, fail: dict[str, set[datetime]] | None = None):
        self.clock = clock
        self.config = make_config(tmp_path, SCHEDULE)
        self.app = App(config_path=self.config.path)
        self.app.set_config(self.config)
        self.ran: list[tuple[str, datetime]] = []
        self.fail = fail or {}
        targets = {name: self._target(name) for name in JOBS}
        self.runner = JobRunner(self.app, apply=False, clock=clock.now, targets=targets)
        self.schedule = parse_schedule(self.config)
        self.scheduler = ManualScheduler(timezone=self.schedule.timezone, executors={"default": DebugExecutor()})
        add_jobs(self.scheduler, self.schedule, self.runner)
        self.scheduler.start()

    def _target(self, name: str):
        def job(app, *, apply):
            at = self.clock.now().astimezone(BERLIN)
            self.ran.append((name, at))
            if at in self.fail.get(name, set()):
                raise RuntimeError(f"{name} exploded")
        return job

    def run_until(self, end: datetime) -> None:
        """What the scheduler's main loop does: process due jobs, sleep until the next one."""
        while True:
            wait = self.scheduler._process_jobs()
            nxt = self.clock.at + timedelta(seconds=wait if wait is not None else 3600)
            if nxt >= end:  # end is exclusive
                self.clock.at = end
                return
            self.clock.at = max(nxt, self.clock.at + timedelta(microseconds=1))

    def times(self, name: str) -> list[str]:
        return [at.strftime("%a %H:%M") for n, at in self.ran if n == name]


def test_a_day_of_jobs_in_the_team_timezone(tmp_path, clock):
    h = Harness(tmp_path, clock)
    h.run_until(MONDAY + timedelta(days=3))  # Mon, Tue, Wed
    assert h.times("metrics") == ["Mon 07:00", "Tue 07:00", "Wed 07:00"]
    assert h.times("digest") == ["Mon 09:00", "Tue 09:00", "Wed 09:00"]
    assert h.times("checks")[:8] == [f"Mon {h:02d}:00" for h in range(9, 17)]
    assert len(h.times("checks")) == 24
    assert h.times("agenda") == ["Wed 15:00"]
    assert len(h.times("sync")) == 3 * 48
    assert "rotation" not in {n for n, _ in h.ran}
    # Every run is in the run history, with its outcome.
    with CacheStore(cache_path(h.config)) as store:
        last = store.last_runs()
    assert last["digest"]["outcome"] == "ok"
    assert datetime.fromtimestamp(last["digest"]["started"], BERLIN).strftime("%a %H:%M") == "Wed 09:00"


def test_a_suspended_laptop_runs_a_missed_job_once_and_skips_what_is_too_late(tmp_path, clock):
    h = Harness(tmp_path, clock)
    h.run_until(MONDAY + timedelta(hours=6, minutes=50))  # Monday 06:50, then the lid closes
    before = len(h.ran)
    clock.at = MONDAY + timedelta(hours=13, minutes=20)  # opened at 13:20
    h.scheduler._process_jobs()
    woke = [(n, at.strftime("%H:%M")) for n, at in h.ran[before:]]
    # checks missed 09:00..13:00 and sync missed 14 half-hours: each runs once, now.
    assert sorted(woke) == [("checks", "13:20"), ("digest", "13:20"), ("sync", "13:20")]
    # metrics (07:00) is more than its one-hour grace late: skipped, not run late.
    assert h.times("metrics") == []
    h.run_until(MONDAY + timedelta(hours=15, minutes=1))
    assert h.times("checks") == ["Mon 13:20", "Mon 14:00", "Mon 15:00"]


def test_a_failing_job_is_recorded_and_the_others_still_run(tmp_path, clock):
    nine = MONDAY + timedelta(hours=9)
    h = Harness(tmp_path, clock, fail={"checks": {nine}, "digest": {nine}})
    h.run_until(MONDAY + timedelta(hours=9, minutes=1))
    with CacheStore(cache_path(h.config)) as store:
        last = store.last_runs()
    assert last["checks"]["outcome"] == "failed" and "exploded" in last["checks"]["detail"]
    assert last["digest"]["outcome"] == "failed"
    assert last["sync"]["outcome"] == "ok"
    assert "Mon 09:00" in h.times("sync")
    h.run_until(MONDAY + timedelta(hours=10, minutes=1))
    assert h.times("checks") == ["Mon 09:00", "Mon 10:00"]
    with CacheStore(cache_path(h.config)) as store:
        assert store.last_runs()["checks"]["outcome"] == "ok"


def test_a_restart_runs_the_job_missed_while_down_once(tmp_path, clock):
    h = Harness(tmp_path, clock)
    h.run_until(MONDAY + timedelta(hours=8))
    assert h.times("digest") == []
    # Process down from 08:00 to 09:40. The new process knows the digest ran before (history).
    with CacheStore(cache_path(h.config)) as store:
        store.run_started("digest", (MONDAY - timedelta(days=3)).timestamp())
        last = {job: row["started"] for job, row in store.last_runs().items()}
    clock.at = MONDAY + timedelta(hours=9, minutes=40)
    h2 = Harness(tmp_path, clock)
    due = catch_up(h2.scheduler, h2.schedule, last, clock.at)
    assert "digest" in due and "checks" not in due  # checks never ran: a new job is not caught up
    h2.scheduler._process_jobs()
    assert h2.times("digest") == ["Mon 09:40"]


def test_default_schedule_follows_team_settings(tmp_path):
    config = make_config(tmp_path, team={"business_hours": "08:30-16:30", "business_days": ["mon", "tue"],
                                         "meeting_weekday": "mon", "meeting_time": "14:00"})
    s = parse_schedule(config)
    assert s.timezone == BERLIN
    assert dict(s.jobs["checks"].fields) == {"minute": "30", "hour": "8-15", "day_of_week": "mon,tue"}
    assert dict(s.jobs["digest"].fields) == {"minute": "30", "hour": "8", "day_of_week": "mon,tue"}
    assert s.jobs["agenda"].fields["day_of_week"] == "sun"  # the day before a Monday meeting
    nxt = s.next_run("agenda", datetime(2026, 11, 23, tzinfo=timezone.utc))
    assert nxt.astimezone(BERLIN).strftime("%a %H:%M") == "Sun 14:00"
    text = crontab(s, "clinicbot")
    assert "30 8-15 * * mon,tue clinicbot serve --once checks" in text
    assert "CRON_TZ=Europe/Berlin" in text


@pytest.mark.parametrize("jobs, key", [
    ({"bogus": "0 9 * * *"}, "schedule.jobs.bogus"),
    ({"digest": "0 9 * *"}, "schedule.jobs.digest"),
    ({"digest": "0 25 * * *"}, "schedule.jobs.digest"),
    ({"digest": {"minute": "0", "hour": "9", "when": "now"}}, "schedule.jobs.digest.when"),
    ({"digest": "0 9 * * 8"}, "schedule.jobs.digest"),
    ({"digest": 9}, "schedule.jobs.digest"),
])
def test_schedule_errors_name_the_key(tmp_path, jobs, key):
    with pytest.raises(ConfigError) as err:
        parse_schedule(make_config(tmp_path, {"jobs": jobs}))
    assert f"key '{key}'" in str(err.value)


def test_sync_settings_are_validated(tmp_path):
    with pytest.raises(ConfigError, match="schedule.sync.concurrency"):
        parse_schedule(make_config(tmp_path, {"sync": {"concurrency": 0}}))
    with pytest.raises(ConfigError, match="schedule.sync.overlap"):
        parse_schedule(make_config(tmp_path, {"sync": {"overlap": 5}}))
    s = parse_schedule(make_config(tmp_path, {"sync": {"overlap_seconds": 120, "reconcile_hours": 6}}))
    assert s.sync.overlap == 120 and s.sync.reconcile_hours == 6


def test_jobs_are_the_functions_the_commands_call_and_job_results_are_judged(monkeypatch):
    from clinicbot.jobs import check, reports, schedule, sync
    from clinicbot.jobs.runlog import judge

    assert JOBS["checks"] is check.run_check_job and JOBS["sync"] is sync.sync_job
    assert (JOBS["digest"], JOBS["agenda"], JOBS["metrics"]) == (reports.digest_job, reports.agenda_job,
                                                                 reports.metrics_job)
    calls = []
    monkeypatch.setattr(schedule, "run_check_job", lambda app, **kw: calls.append((app, kw)) or 0)
    assert JOBS["rotation"]("app", apply=True) == 0
    assert calls == [("app", {"apply": True, "only": "rotation-notice"})]

    class Checked:  # like runner.CheckRunResult
        def __init__(self, exit_code, failures=()):
            self.exit_code, self.findings, self.failures = exit_code, [object()], list(failures)

    assert judge(None) == ("ok", 0, "")
    assert judge(0)[0] == "ok"
    assert judge(1)[:2] == ("failed", 1)  # a report job: a delivery failed
    assert judge(Checked(1))[0] == "ok"  # findings fired: the job did its work
    assert judge(Checked(1, failures=["boom"]))[0] == "partial"
    assert judge(Checked(4))[:2] == ("failed", 4)  # the write cap


def test_a_job_error_becomes_the_same_line_and_exit_code_as_at_the_cli_boundary(tmp_path):
    """One mapping (errors.error_exit) for the CLI and the scheduler: a damaged cache database in a
    job is one line naming the fix and exit 2, not a traceback; an OSError keeps its hint."""
    import sqlite3

    from clinicbot.errors import EXIT_CONFIG, error_exit

    config = make_config(tmp_path)
    app = App(config_path=config.path)
    app.set_config(config)

    def broken_db(app, *, apply):
        raise sqlite3.DatabaseError("database disk image is malformed")

    def unwritable(app, *, apply):
        raise PermissionError(13, "Permission denied", str(tmp_path / "out.html"))

    runner = JobRunner(app, apply=False, targets={"sync": broken_db, "digest": unwritable}, record=False)
    outcome = runner.run("sync")
    assert (outcome.outcome, outcome.exit_code) == ("failed", EXIT_CONFIG)
    assert outcome.detail == error_exit(sqlite3.DatabaseError("database disk image is malformed"))[0]
    assert "`clinicbot sync --full` rebuilds it" in outcome.detail
    outcome = runner.run("digest")
    assert (outcome.outcome, outcome.exit_code) == ("failed", EXIT_CONFIG)
    assert outcome.detail.startswith(f"{tmp_path / 'out.html'}: Permission denied; check that path")
