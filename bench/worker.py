"""One measured operation, in its own process so CPU time and peak RSS are its own (not the sandbox's).

Called by bench/run.py as ``python bench/worker.py '<json>'``; prints one JSON object.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the
    parent across fork+exec, so a worker started by a bench holding a 100,000-task sandbox would
    report the sandbox's memory as its own."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def client_for(args: dict[str, Any]) -> Any:
    from clinicbot.conduit import ConduitClient

    return ConduitClient(args["url"], args["token"], timeout=120)


def do_sync(args: dict[str, Any]) -> dict[str, Any]:
    from clinicbot.config import load_config
    from clinicbot.sync import SyncSettings, sync

    config = load_config(args["config"])
    client = client_for(args)
    settings = SyncSettings(concurrency=int(args.get("concurrency", 4)))
    t0, c0 = time.perf_counter(), cpu()
    result = sync(client, config, full=bool(args.get("full")), now=datetime.now(timezone.utc), settings=settings)
    wall, used = time.perf_counter() - t0, cpu() - c0
    return {"wall": wall, "cpu": used, "rss_mb": peak_rss_mb(), "calls": result.calls,
            "calls_by_method": result.calls_by_method, "mode": result.mode, "tasks": result.tasks_total,
            "tasks_fetched": result.tasks_fetched, "histories_fetched": result.histories_fetched}


def do_naive(args: dict[str, Any]) -> dict[str, Any]:
    """The naive bot: list the boards' task ids, then fetch every task and every history one by
    one, sequentially, every run. Measured on ``sample`` tasks; run.py extrapolates to all."""
    from clinicbot.boards import TASK_ATTACHMENTS
    from clinicbot.config import load_config
    from clinicbot.sync import fetch_structure

    config = load_config(args["config"])
    client = client_for(args)
    t0, c0 = time.perf_counter(), cpu()
    structure = fetch_structure(client, config)
    ids = [item["id"] for item in client.search("maniphest.search",
                                                 constraints={"columnPHIDs": structure.column_phids()})]
    list_wall, list_cpu, list_calls = time.perf_counter() - t0, cpu() - c0, client.stats.total
    sample = ids[: int(args["sample"])]
    t1, c1 = time.perf_counter(), cpu()
    for task_id in sample:
        item = client.call("maniphest.search", constraints={"ids": [task_id]}, attachments=TASK_ATTACHMENTS)
        phid = item["data"][0]["phid"]
        list(client.search("transaction.search", objectIdentifier=phid))
    per_wall = (time.perf_counter() - t1) / max(1, len(sample))
    per_cpu = (cpu() - c1) / max(1, len(sample))
    per_calls = (client.stats.total - list_calls) / max(1, len(sample))
    return {"tasks": len(ids), "sample": len(sample), "list_wall": list_wall, "list_cpu": list_cpu,
            "list_calls": list_calls, "per_task_wall": per_wall, "per_task_cpu": per_cpu,
            "per_task_calls": per_calls, "rss_mb": peak_rss_mb()}


def do_metrics(args: dict[str, Any]) -> dict[str, Any]:
    """Metrics over the cached boards: load the cache (timed apart), then compute_metrics (CPU)."""
    from clinicbot.config import load_config
    from clinicbot.model import Snapshot
    from clinicbot.sync import load_cached

    config = load_config(args["config"])
    t0, c0 = time.perf_counter(), cpu()
    cached = load_cached(config)
    load_wall, load_cpu = time.perf_counter() - t0, cpu() - c0
    out: dict[str, Any] = {"tasks": len(cached.data.tasks), "timelines": len(cached.timelines),
                           "load_wall": load_wall, "load_cpu": load_cpu}
    try:
        from clinicbot.metrics import compute_metrics
    except ImportError:
        out["pending"] = True
        out["rss_mb"] = peak_rss_mb()
        return out
    snapshot = Snapshot(now=datetime.now(timezone.utc), boards={b.phid: b for b in cached.data.boards},
                        tasks=cached.data.tasks, timelines=cached.timelines, statuses=cached.data.statuses,
                        priorities=cached.data.priorities,
                        team_project_phids=frozenset(b.phid for b in cached.data.boards))
    t1, c1 = time.perf_counter(), cpu()
    compute_metrics(snapshot)
    out.update(wall=time.perf_counter() - t1, cpu=cpu() - c1, rss_mb=peak_rss_mb())
    return out


def main() -> None:
    args = json.loads(sys.argv[1])
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    result = {"sync": do_sync, "naive": do_naive, "metrics": do_metrics}[args["op"]](args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
