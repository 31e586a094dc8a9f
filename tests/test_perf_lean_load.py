"""Jobs load only what they read (issue 12, item 1): the checks get open tasks, metrics the open
tasks plus those closed or modified since the oldest time a metric counts, and timelines are
parsed when first read. Each lean load must give the same findings and figures as the full one.
Counted, never timed."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from clinicbot.checks import TeamSettings, context_factory, load_checks_and_settings, run_checks
from clinicbot.jobs.context import App, load_snapshot
from clinicbot.jobs.demo import write_sandbox_config
from clinicbot.metrics import compute_metrics, counted_since
from clinicbot.phab.boards import parse_task
from clinicbot.phab.conduit import ConduitClient
from clinicbot.sandbox import Sandbox, generate_scenario
from clinicbot.state.cache_rows import LazyTimelines, dump_task, task_loader
from clinicbot.sync import load_cached

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    sb = Sandbox(scenario=generate_scenario(NOW, size=400))
    sb.start()
    path = write_sandbox_config(tmp_path_factory.mktemp("lean") / "clinicbot.yaml", sb.url, sb.token)
    app = App(config_path=path, now_override=NOW)
    full = load_snapshot(app)  # syncs; everything
    yield sb, app, full
    app.close()
    sb.stop()


def findings(app: App, snapshot) -> list[tuple]:
    config = app.config()
    checks, settings = load_checks_and_settings(config.section("checks"), error=config.error)
    team = TeamSettings.from_config(config, app.rotation())
    chosen = [c for c in checks if settings[c.slug].enabled]
    result = run_checks(chosen, context_factory(snapshot, settings, team=team, rotation=app.rotation()))
    assert not result.failures
    return sorted((f.key, f.summary) for f in result.findings)


def test_check_snapshot_holds_open_tasks_only_and_finds_the_same(env):
    _, app, full = env
    lean = load_snapshot(app, open_only=True)
    closed = [t for t in full.tasks.values() if t.is_closed]
    assert closed and not any(t.is_closed for t in lean.tasks.values())
    assert set(lean.tasks) == {p for p, t in full.tasks.items() if not t.is_closed}
    assert set(lean.timelines) <= set(lean.tasks)
    got = findings(app, lean)
    assert got and got == findings(app, full)


def test_metrics_load_leaves_old_closed_tasks_out_and_counts_the_same(env):
    _, app, full = env
    tz = timezone.utc
    since = counted_since(NOW, window_days=14, weeks=3, tz=tz)
    assert since <= NOW - timedelta(days=14)
    lean = load_snapshot(app, closed_since=since)
    left_out = set(full.tasks) - set(lean.tasks)
    assert left_out, "the scenario has tasks closed before the window: the lean load must leave them out"
    assert all(full.tasks[p].is_closed and full.tasks[p].modified < since for p in left_out)
    for weeks, window in ((3, 14), (1, 30)):
        cut = counted_since(NOW, window_days=window, weeks=weeks, tz=tz)
        lean = load_snapshot(app, closed_since=cut)
        a = compute_metrics(lean, window_days=window, weeks=weeks, tz=tz).to_dict()
        b = compute_metrics(full, window_days=window, weeks=weeks, tz=tz).to_dict()
        assert a == b


def test_timelines_are_parsed_when_first_read(env):
    _, app, _ = env
    cached = load_cached(app.config(), open_only=True, now=NOW)
    timelines = cached.timelines
    assert isinstance(timelines, LazyTimelines) and len(timelines) > 10
    assert timelines.parsed() == 0
    phid = next(iter(timelines))
    first = timelines.get(phid)
    assert first is not None and first.task_phid == phid and timelines.parsed() == 1
    assert timelines[phid] is first and timelines.get("PHID-TASK-nothing") is None


def test_a_stored_task_row_loads_as_parse_task_gives_it(env):
    sb, app, _ = env
    client = ConduitClient(sb.url, sb.token)
    try:
        items = list(client.search("maniphest.search", constraints={"ids": sorted(sb.store.tasks)[:60]},
                                   attachments={"columns": True, "projects": True, "subscribers": True}))
    finally:
        client.close()
    structure = load_cached(app.config(), now=NOW).data
    statuses = {s.value: s for s in structure.statuses}
    load = task_loader(statuses)
    tasks = [parse_task(i, statuses) for i in items]
    assert any(t.is_closed for t in tasks) and any(t.closed_at is None for t in tasks)
    assert [load(dump_task(t)) for t in tasks] == tasks
    # Open or closed is decided on load, from the statuses as the server lists them now.
    first = tasks[0]
    flipped = {k: replace(v, closed=not v.closed) for k, v in statuses.items()}
    assert task_loader(flipped)(dump_task(first)).is_closed is not first.is_closed

