"""Old servers send column moves as `type: null`: entry times come from clinicbot's own sightings,
kept in the state directory by the sync, and output says they are approximate."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from rich.console import Console

from clinicbot.jobs.context import App
from clinicbot.cli import cli
from clinicbot.config import load_config
from clinicbot.jobs.demo import write_sandbox_config
from clinicbot.sandbox import Sandbox, generate_scenario
from clinicbot.jobs.context import load_snapshot


@pytest.fixture
def old_server(tmp_path):
    # The scenario is dated relative to the real clock: sightings are taken with it.
    real_now = datetime.now(timezone.utc).replace(microsecond=0)
    sb = Sandbox(scenario=generate_scenario(real_now, size=120))
    # Column moves are readable neither from transaction.search (type null) nor from the legacy
    # batch method (absent): the legacy method carries raw core:columns even on old servers.
    sb.store.features["structured_column_transactions"] = False
    sb.store.features["gettasktransactions"] = False
    sb.start()
    config = write_sandbox_config(tmp_path / "clinicbot.yaml", sb.url, sb.token)
    yield sb, config, real_now
    sb.stop()


def test_entry_times_fall_back_to_first_sighting_and_are_marked_approximate(old_server):
    sb, config_path, real_now = old_server
    app = App(config_path=config_path, env={})
    first = load_snapshot(app)  # the first sync records where every task was seen
    app.close()
    assert first.timelines and not any(tl.moves() for tl in first.timelines.values())
    inbox = [(t, c) for t, c in first.tasks_with_role("inbox")]
    assert inbox
    for task, column in inbox:
        at, approximate = first.entered_column(task, column)
        # The move cannot be later than the task's last modification: the sighting is dated
        # there, so ages are lower bounds, never overstated.
        assert approximate and at == task.modified

    later = real_now + timedelta(days=3)
    app = App(config_path=config_path, env={}, now_override=later, console=Console(width=200))
    result = CliRunner().invoke(cli, ["--config", str(config_path), "--now", later.isoformat(), "check",
                                      "--only", "untriaged", "--format", "json"], obj=app)
    assert result.exit_code == 1, result.output
    findings = json.loads(result.stdout)["findings"]
    assert findings and all(f["facts"]["approximate"] for f in findings)
    assert all("about " in f["summary"] for f in findings)
    by_id = {t.id: t for t in first.tasks.values()}
    for f in findings:
        expected = (later - by_id[f["facts"]["task_id"]].modified).total_seconds() / 3600
        assert f["facts"]["age_hours"] == pytest.approx(expected, abs=0.1)
    assert load_config(config_path).state_dir.joinpath("cache.sqlite").exists()


def test_the_legacy_batch_method_still_carries_column_moves(old_server):
    sb, config_path, _ = old_server
    sb.store.features["gettasktransactions"] = True
    app = App(config_path=config_path, env={})
    snapshot = load_snapshot(app)
    app.close()
    assert sum(len(tl.moves()) for tl in snapshot.timelines.values()) > 10
    assert not all(snapshot.entered_column(t, c)[1] for t, c in snapshot.tasks_with_role("inbox"))
