"""The bench's sandbox, in a process of its own: serves Conduit, counts requests, changes tasks.

    python bench/sandbox_host.py --size 10000 --latency 0.03 --workdir DIR

Generates a scenario of ``size`` tasks, starts the strict sandbox (``clinicbot.sandbox``) on
loopback, writes ``DIR/clinicbot.yaml`` (the token in a 0600 file beside it, never in the YAML
or on stdout), prints one JSON line ``{"url", "config", "tasks", "generate_s"}``, then answers
one command per stdin line with one JSON line:

* ``stats``        -> ``{"requests": {method: count}}`` (cumulative; the bench takes differences)
* ``change F``     -> ``{"changed": k}``: a fraction F of the watched tasks get a comment (some a
                      priority change too), as people do between two cron runs
* ``quit``         -> stops the sandbox and exits

Why a separate process: the bench process that starts the measured commands must stay small.
Linux carries the parent's peak RSS into a forked child's ``ru_maxrss``, so a 100,000-task
sandbox living in the bench process would be counted as every command's own memory. Only
``clinicbot.sandbox`` is imported; clinicbot itself is driven through its CLI by bench/run.py.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clinicbot.sandbox import Sandbox, generate_scenario  # noqa: E402

# The generated sandbox team's boards and the role of each column (the same boards
# `clinicbot demo` watches; written here so the bench needs nothing but the CLI and the sandbox).
BOARDS: list[dict[str, Any]] = [
    {"project": "Core Platform Team",
     "columns": {"inbox": "Inbox", "triage_meeting_inbox": "Triage Meeting Inbox", "ready": "Ready",
                 "doing": "Doing", "blocked": "Blocked Externally", "waiting_for_review": "Waiting for Review",
                 "waiting_for_deployment": "Waiting for Deployment", "done": "Done"}},
    {"project": "Clinic Duty Team",
     "columns": {"inbox": "Inbox", "ready": "Ready", "doing": "Doing", "waiting_for_review": "Waiting for Review",
                 "done": "Done"}},
    {"project": "CPT External Code Reviews",
     "columns": {"review_needed": "Review Needed", "review_in_progress": "In Progress", "done": "Review Completed",
                 "discussing": "Discussing"}},
]

ROTATION = ROOT / "templates" / "examples" / "rotation.yaml"


def write_config(workdir: Path, url: str, token: str) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    token_path = workdir / "clinicbot.token"
    fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    config: dict[str, Any] = {
        "phabricator": {"url": url, "token_file": token_path.name},
        "team": {"name": "Core Platform Team", "ignored_users": ["phab-automation"]},
        "boards": BOARDS,
        "state_dir": "state",
        "apply": False,
        "max_writes_per_run": 20,
    }
    if ROTATION.exists():
        (workdir / "rotation.yaml").write_text(ROTATION.read_text())
        config["rotation"] = "rotation.yaml"
    path = workdir / "clinicbot.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def change_tasks(sb: Sandbox, fraction: float, seed: int = 7) -> int:
    """Comment on ``fraction`` of the open tasks on the watched boards; every third also changes priority."""
    store = sb.store
    watched = {p.phid for p in store.projects.values() if p.name in {b["project"] for b in BOARDS}}
    with store.lock:
        candidates = sorted(t.id for t in store.tasks.values() if watched.intersection(t.columns))
    if not candidates:
        return 0
    rng = random.Random(seed)
    chosen = rng.sample(candidates, max(1, round(len(candidates) * fraction)))
    now = time.time()
    for i, task_id in enumerate(chosen):
        txs: list[tuple[str, Any]] = [("comment", f"bench change {i}")]
        if i % 3 == 2:
            txs.append(("priority", rng.choice(["high", "normal", "low"])))
        store.edit(task_id, "alice", txs, at=now)
    return len(chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.03)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()
    t0 = time.perf_counter()
    # The history ends an hour ago: the first warm sync's overlap window holds no generated change.
    scenario = generate_scenario(datetime.now(timezone.utc) - timedelta(hours=1), size=args.size)
    sb = Sandbox(scenario=scenario, latency=args.latency)
    sb.start()
    generate_s = time.perf_counter() - t0
    config = write_config(args.workdir, sb.url, sb.token)
    print(json.dumps({"url": sb.url, "config": str(config), "tasks": len(sb.store.tasks),
                      "generate_s": round(generate_s, 1)}), flush=True)
    try:
        for line in sys.stdin:
            cmd = line.split()
            if not cmd:
                continue
            if cmd[0] == "stats":
                with sb.stats._lock:
                    answer: dict[str, Any] = {"requests": dict(sb.stats.requests)}
            elif cmd[0] == "change":
                answer = {"changed": change_tasks(sb, float(cmd[1]))}
            elif cmd[0] == "quit":
                break
            else:
                answer = {"error": f"unknown command {cmd[0]!r}"}
            print(json.dumps(answer), flush=True)
    finally:
        sb.stop()


if __name__ == "__main__":
    main()
