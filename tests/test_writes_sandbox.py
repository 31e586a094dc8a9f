"""The new writes end to end against the sandbox (issue 14 points 3, 4, 8): column moves, untags and
the per-run cap's most-urgent mode — dry run by default, within the cap, never twice."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from clinicbot.state.ledger import Ledger
from test_runner_sandbox import NOW, REPO, clock, make_config, run, run_json, sandbox, scenario  # noqa: F401 (fixtures)
from clinicbot.sandbox import Sandbox

OLD, NEW = "Core Platform Team", "CPT External Code Reviews"
MIGRATION = {"from_board": OLD, "to_board": NEW, "columns": {"Waiting for Review": "Review Needed"}}


def configure(path: Path, checks: dict[str, Any], **top: Any) -> Path:
    data = yaml.safe_load(path.read_text())
    data["checks"] = checks
    data.update(top)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def edits(sb: Sandbox) -> int:
    return sb.stats.requests["maniphest.edit"]


def placement(sb: Sandbox, task: str, board: str) -> str | None:
    t = sb.store.tasks[int(task[1:])]
    phid = next(p.phid for p in sb.store.projects.values() if p.name == board)
    col = t.columns.get(phid)
    return sb.store.columns[col].name if col else None


def tags(sb: Sandbox, task: str) -> set[str]:
    return {sb.store.projects[p].name for p in sb.store.tasks[int(task[1:])].projects}


# -- point 3: moves ---------------------------------------------------------------------------------


def test_move_is_a_dry_run_by_default_then_applied_once_and_never_twice(sandbox, tmp_path):
    config = configure(make_config(tmp_path, sandbox), {"review-migration": {**MIGRATION, "handlers": ["move"]}})
    code, data = run_json(config, "--only", "review-migration")
    moves = [a for a in data["actions"] if a["handler"] == "move"]
    assert code == 1 and moves and all(a["status"] == "planned" for a in moves)
    assert all(a["text"] == f"move to {NEW}: Review Needed" for a in moves)
    assert edits(sandbox) == 0  # a dry run writes nothing
    task = moves[0]["task"]
    assert placement(sandbox, task, NEW) is None and placement(sandbox, task, OLD) == "Waiting for Review"

    _, data = run_json(config, "--only", "review-migration", "--apply")
    posted = [a for a in data["actions"] if a["status"] == "posted"]
    assert len(posted) == len(moves) and edits(sandbox) == len(moves)
    for a in posted:
        assert placement(sandbox, a["task"], NEW) == "Review Needed" and NEW in tags(sandbox, a["task"])
    # second run: migrated tasks are no finding any more; nothing is planned, nothing written
    _, data = run_json(config, "--only", "review-migration", "--apply")
    assert data["findings"] == [] and data["actions"] == [] and edits(sandbox) == len(moves)
    assert set(data["cleared"]) == {f"review-migration:{a['task']}" for a in posted}


def uncertain_move(sb: Sandbox, tmp_path: Path, *, applied: bool) -> tuple[Path, str]:
    """A move whose maniphest.edit times out (the server applies it or not); returns (config, task)."""
    config = configure(make_config(tmp_path, sb, timeout=0.5), {"review-migration": {**MIGRATION, "handlers": ["move"]}})
    _, data = run_json(config, "--only", "review-migration")
    task = data["findings"][0]["task"]
    sb.faults.add(method="maniphest.edit", kind="timeout", times=1, apply=applied, delay=1.5 if applied else 1.0)
    _, data = run_json(config, "--only", "review-migration", "--task", task, "--apply")
    assert [(a["status"], "uncertain" in a["error"]) for a in data["actions"]] == [("failed", True)]
    return config, task


def test_an_uncertain_move_is_settled_by_reading_the_task_before_writing(sandbox, tmp_path):
    config, task = uncertain_move(sandbox, tmp_path, applied=True)
    assert placement(sandbox, task, NEW) == "Review Needed"  # the server did apply it
    searches = sandbox.stats.requests["maniphest.search"]
    _, data = run_json(config, "--only", "review-migration", "--task", task, "--apply")
    assert data["actions"] == [] and edits(sandbox) == 1
    assert sandbox.stats.requests["maniphest.search"] > searches  # it read the task back
    with Ledger.open(tmp_path / "state", readonly=True) as book:
        assert book.pending_intents() == []
        [intent] = [i for i in book.intents() if i["handler"] == "move"]
        assert intent["status"] == "found" and intent["state"]["kind"] == "column"


def test_a_move_that_never_applied_is_redone_once(sandbox, tmp_path):
    config, task = uncertain_move(sandbox, tmp_path, applied=False)
    assert placement(sandbox, task, NEW) is None
    _, data = run_json(config, "--only", "review-migration", "--task", task, "--apply")
    assert [a["status"] for a in data["actions"]] == ["posted"]
    assert placement(sandbox, task, NEW) == "Review Needed" and edits(sandbox) == 2


def test_killed_after_the_move_then_rerun_writes_nothing_more(sandbox, tmp_path):
    config = configure(make_config(tmp_path, sandbox), {"review-migration": {**MIGRATION, "handlers": ["move"]}})
    _, data = run_json(config, "--only", "review-migration")
    task = data["findings"][0]["task"]
    proc = subprocess.run([sys.executable, "-m", "clinicbot.cli", "--config", str(config), "--now", NOW.isoformat(),
                           "check", "--apply", "--only", "review-migration", "--task", task], capture_output=True,
                          text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(REPO), CLINICBOT_TEST_CRASH_AFTER_WRITE="1"))
    assert proc.returncode == 137, proc.stderr
    assert placement(sandbox, task, NEW) == "Review Needed" and edits(sandbox) == 1
    _, data = run_json(config, "--only", "review-migration", "--task", task, "--apply")
    assert data["actions"] == [] and edits(sandbox) == 1
    with Ledger.open(tmp_path / "state", readonly=True) as book:
        assert book.pending_intents() == []


# -- point 4: untags --------------------------------------------------------------------------------


UNTAG = {"untag-candidate": {"days": 20, "projects": ["Clinic Duty Team"], "handlers": ["untag"]}}


def test_untag_is_off_by_default_then_applied_once_and_never_twice(sandbox, tmp_path):
    config = configure(make_config(tmp_path, sandbox), {"untag-candidate": {"days": 20, "projects": ["Clinic Duty Team"]}})
    code, data = run_json(config, "--only", "untag-candidate")
    assert code == 1 and data["findings"]
    assert {a["handler"] for a in data["actions"]} == {"console"}  # the default handlers write nothing

    configure(config, UNTAG)
    _, data = run_json(config, "--only", "untag-candidate")
    planned = [a for a in data["actions"] if a["handler"] == "untag"]
    assert planned and all(a["status"] == "planned" for a in planned) and edits(sandbox) == 0
    _, data = run_json(config, "--only", "untag-candidate", "--apply")
    posted = [a for a in data["actions"] if a["status"] == "posted"]
    assert len(posted) == len(planned) and edits(sandbox) == len(planned)
    assert all("Clinic Duty Team" not in tags(sandbox, a["task"]) for a in posted)
    _, data = run_json(config, "--only", "untag-candidate", "--apply")
    assert [a for a in data["actions"] if a["handler"] == "untag"] == [] and edits(sandbox) == len(planned)
    # ... and not found again: the untagged tasks left the sync cache with the run that untagged them
    # (an incremental sync asks only for tasks on the watched boards, so it would never refresh them).
    assert not {f["task"] for f in data["findings"]} & {a["task"] for a in posted}


# -- point 8: the cap -------------------------------------------------------------------------------


def _cap_config(tmp_path: Path, sb: Sandbox, **top: Any) -> Path:
    # Comments from three checks of different severities; 3 writes allowed per run.
    checks = {slug: {"handlers": ["comment"]} for slug in ("unbreak-now", "untriaged", "waiting-for-review")}
    return configure(make_config(tmp_path, sb), checks, max_writes_per_run=3, **top)


def test_over_the_cap_aborts_by_default(sandbox, tmp_path):
    config = _cap_config(tmp_path, sandbox)
    code, _, err = run(config, "check", "--apply")
    assert code == 4 and "max_writes_per_run is 3" in err and edits(sandbox) == 0


def test_most_urgent_writes_the_n_most_urgent_and_the_rest_next_runs(sandbox, tmp_path):
    config = _cap_config(tmp_path, sandbox, on_cap="most-urgent")
    _, dry = run_json(config)
    wanted = [a for a in dry["actions"] if a["handler"] == "comment"]
    rank = {"critical": 0, "warning": 1, "info": 2}
    severity: dict[str, int] = {}  # task -> its most severe finding's rank
    for f in dry["findings"]:
        severity[f["task"]] = min(severity.get(f["task"], 3), rank[f["severity"]])
    kept = [a for a in wanted if a["status"] == "planned"]
    deferred = [a for a in wanted if a["status"] == "skipped" and "over the per-run cap" in a["reason"]]
    assert len(kept) == 3 and len(wanted) > 6 and len(deferred) == len(wanted) - 3 and edits(sandbox) == 0
    assert max(severity[a["task"]] for a in kept) <= min(severity[a["task"]] for a in deferred)

    written: list[str] = []
    for _ in range(-(-len(wanted) // 3)):
        code, data = run_json(config, "--apply")
        assert code == 1
        posted = [a for a in data["actions"] if a["status"] == "posted" and a["handler"] == "comment"]
        assert 0 < len(posted) <= 3
        written += [a["task"] for a in posted]
    assert sorted(written) == sorted(a["task"] for a in wanted)  # every one, each once
    assert written[:3] == [a["task"] for a in kept]  # the most urgent first
    assert edits(sandbox) == len(wanted)
    _, data = run_json(config, "--apply")
    assert [a for a in data["actions"] if a["handler"] == "comment" and a["status"] != "skipped"] == []
    assert edits(sandbox) == len(wanted)


def test_on_cap_is_validated_at_load(sandbox, tmp_path):
    config = _cap_config(tmp_path, sandbox, on_cap="some")
    code, _, err = run(config, "check")
    assert code == 2 and "on_cap" in err and "abort or most-urgent" in err and len(err.strip().splitlines()) == 1
