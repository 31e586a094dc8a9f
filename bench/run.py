"""clinicbot benchmarks against the sandbox (30 ms latency per call): sync, naive baseline, metrics.

    python bench/run.py            # the full run (~5 min on 2 cores): prints the table,
                                   # writes bench/results/latest.json and docs/bench.md
    python bench/run.py --quick    # small sizes, a smoke test of the bench itself (~1 min)

The sandbox runs in this process; every measured operation runs in a fresh worker process
(bench/worker.py), so its CPU time and peak RSS are its own, not the sandbox's.

Rows:
* cold sync — an empty cache, N tasks with histories (the batch history method);
* warm sync — the same cache after 1 % of the tasks changed (comments, moves, priorities);
* naive baseline — what a bot without cache or batching does *every* run: list the task ids,
  then fetch each task and each history one by one, sequentially. Measured on a sample of
  tasks and extrapolated linearly to N (it is sequential and per task, so it is linear);
* transaction.search only — a server without maniphest.gettasktransactions: histories one task
  per call, bounded concurrency (4) against sequential;
* 100,000 tasks — cold sync peak memory, then metrics over the cached data (CPU).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clinicbot.demo import write_sandbox_config  # noqa: E402
from clinicbot.sandbox import Sandbox, generate_scenario  # noqa: E402
from clinicbot.sync import minimal_calls  # noqa: E402

LATENCY = 0.03

FULL = {"n": 10_000, "ts_n": 1_000, "naive_sample": 200, "big_n": 100_000, "change": 0.01}
QUICK = {"n": 1_000, "ts_n": 150, "naive_sample": 40, "big_n": 5_000, "change": 0.01}


def worker(op: str, **args: Any) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "worker.py"), json.dumps({"op": op, **args})],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench worker {op} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def start_sandbox(size: int, *, batch: bool = True, latency: float = LATENCY) -> tuple[Sandbox, float]:
    # The scenario's history ends an hour ago, so the first warm sync's overlap window (10 min
    # before the cold sync) holds only the changes the bench makes.
    t0 = time.perf_counter()
    scenario = generate_scenario(datetime.now(timezone.utc) - timedelta(hours=1), size=size)
    sb = Sandbox(scenario=scenario, latency=latency)
    if not batch:
        sb.store.features["gettasktransactions"] = False
    sb.start()
    return sb, time.perf_counter() - t0


def config_for(sb: Sandbox, workdir: Path, name: str) -> Path:
    return write_sandbox_config(workdir / name / "clinicbot.yaml", sb.url, sb.token)


def change_tasks(sb: Sandbox, config: Path, fraction: float, seed: int = 7) -> int:
    """Change ``fraction`` of the boards' tasks the way people do: comments, moves, priorities."""
    from clinicbot.config import load_config
    from clinicbot.sync import load_cached

    cached = load_cached(load_config(config))
    tasks = sorted(cached.data.tasks.values(), key=lambda t: t.id)
    rng = random.Random(seed)
    chosen = rng.sample(tasks, max(1, round(len(tasks) * fraction)))
    boards = {b.phid: b for b in cached.data.boards}
    for i, task in enumerate(chosen):
        txs: list[tuple[str, Any]] = [("comment", f"bench change {i}")]
        if i % 3 == 1 and task.columns:
            board_phid, col = next(iter(task.columns.items()))
            others = [c.phid for c in boards[board_phid].columns if c.phid != col and not c.proxy_phid]
            if others:
                txs.append(("column", [rng.choice(others)]))
        elif i % 3 == 2:
            txs.append(("priority", rng.choice(["high", "normal", "low"])))
        sb.store.edit(task.id, "alice", txs, at=time.time())
    return len(chosen)


def row(name: str, n: int, calls: Any, wall: float | None, cpu: float | None, rss: float | None,
        note: str = "") -> dict[str, Any]:
    return {"scenario": name, "tasks": n, "calls": calls, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss,
            "note": note}


def run(sizes: dict[str, Any], workdir: Path) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    targets: list[dict[str, Any]] = []

    def target(what: str, measured: str, ok: bool | None) -> None:
        targets.append({"target": what, "measured": measured,
                        "result": "pending" if ok is None else ("pass" if ok else "FAIL")})
        print(f"  {'pending' if ok is None else ('pass' if ok else 'FAIL'):7} {what}: {measured}", flush=True)

    # -- 1. cold and warm sync, N tasks, batch history method ---------------------------------
    n = sizes["n"]
    print(f"sandbox: {n} tasks, {LATENCY * 1000:.0f} ms latency", flush=True)
    sb, setup = start_sandbox(n)
    try:
        cfg = config_for(sb, workdir, "main")
        cold = worker("sync", url=sb.url, token=sb.token, config=str(cfg))
        pages = cold["calls_by_method"].get("maniphest.search", 0)
        batches = cold["calls_by_method"].get("maniphest.gettasktransactions", 0)
        setup_calls = cold["calls"] - pages - batches
        ntasks = cold["tasks"]
        rows.append(row("cold sync (batch histories)", ntasks, cold["calls"], cold["wall"], cold["cpu"], cold["rss_mb"],
                        f"{pages} task pages + {batches} history batches + {setup_calls} board/lookup calls"))
        target(f"cold sync of {ntasks}: task pages ≤ ceil(N/100) and history batches ≤ ceil(N/100)",
               f"{pages} pages, {batches} batches (limit {math.ceil(ntasks / 100)} each)",
               pages <= math.ceil(ntasks / 100) and batches <= math.ceil(ntasks / 100))

        changed = change_tasks(sb, cfg, sizes["change"])
        warm = worker("sync", url=sb.url, token=sb.token, config=str(cfg))
        minimal = minimal_calls(changed)
        rows.append(row(f"warm sync after {changed} tasks changed", ntasks, warm["calls"], warm["wall"], warm["cpu"],
                        warm["rss_mb"], f"{warm['tasks_fetched']} tasks and {warm['histories_fetched']} histories "
                        f"re-read; minimal {minimal} calls"))
        target(f"warm run after 1% changed: calls ≤ 1.1 × minimal ({minimal})", f"{warm['calls']} calls",
               warm["calls"] <= 1.1 * minimal)
        speedup = cold["wall"] / warm["wall"]
        target("warm run ≥ 10× faster than cold", f"{speedup:.0f}× ({cold['wall']:.2f} s → {warm['wall']:.3f} s)",
               speedup >= 10)

        naive = worker("naive", url=sb.url, token=sb.token, config=str(cfg), sample=sizes["naive_sample"])
        nn = naive["tasks"]
        n_wall = naive["list_wall"] + nn * naive["per_task_wall"]
        n_cpu = naive["list_cpu"] + nn * naive["per_task_cpu"]
        n_calls = round(naive["list_calls"] + nn * naive["per_task_calls"])
        rows.append(row("naive baseline, every run (extrapolated)", nn, n_calls, n_wall, n_cpu, naive["rss_mb"],
                        f"measured on {naive['sample']} tasks: {naive['per_task_wall'] * 1000:.0f} ms and "
                        f"{naive['per_task_calls']:.1f} calls per task, sequential"))
        target("cold sync vs naive baseline (informative)",
               f"{n_calls / cold['calls']:.0f}× fewer calls, {n_wall / cold['wall']:.0f}× faster; "
               f"warm: {n_wall / warm['wall']:.0f}× faster", True)
    finally:
        sb.stop()

    # -- 2. transaction.search only: bounded concurrency vs sequential -------------------------
    ts_n = sizes["ts_n"]
    print(f"sandbox: {ts_n} tasks without maniphest.gettasktransactions", flush=True)
    sb, _ = start_sandbox(ts_n, batch=False)
    try:
        conc = worker("sync", url=sb.url, token=sb.token, config=str(config_for(sb, workdir, "ts4")), concurrency=4)
        seq = worker("sync", url=sb.url, token=sb.token, config=str(config_for(sb, workdir, "ts1")), concurrency=1)
        for label, r in (("cold sync, transaction.search, 4 at a time", conc),
                         ("cold sync, transaction.search, sequential", seq)):
            rows.append(row(label, r["tasks"], r["calls"], r["wall"], r["cpu"], r["rss_mb"],
                            f"{r['calls_by_method'].get('transaction.search', 0)} transaction.search calls"))
        ratio = seq["wall"] / conc["wall"]
        target("transaction.search only: concurrency 4 ≥ 3× faster than sequential",
               f"{ratio:.1f}× ({seq['wall']:.1f} s → {conc['wall']:.1f} s)", ratio >= 3)
    finally:
        sb.stop()

    # -- 3. the big board: memory of a cold sync, metrics CPU ----------------------------------
    big = sizes["big_n"]
    if big:
        print(f"sandbox: {big} tasks (generating takes a while)", flush=True)
        sb, gen = start_sandbox(big)
        try:
            cfg = config_for(sb, workdir, "big")
            r = worker("sync", url=sb.url, token=sb.token, config=str(cfg))
            rows.append(row("cold sync (batch histories)", r["tasks"], r["calls"], r["wall"], r["cpu"], r["rss_mb"],
                            f"sandbox generated in {gen:.0f} s"))
            target(f"peak RSS of a {r['tasks']}-task sync < 1 GB", f"{r['rss_mb']:.0f} MB", r["rss_mb"] < 1024)
        finally:
            sb.stop()
        m = worker("metrics", config=str(cfg))
        rows.append(row("load the cache (tasks + timelines)", m["tasks"], 0, m["load_wall"], m["load_cpu"], None,
                        f"{m['timelines']} timelines"))
        if m.get("pending"):
            rows.append(row("metrics", m["tasks"], 0, None, None, m["rss_mb"], "pending: clinicbot.metrics not present"))
            target(f"metrics over {m['tasks']} tasks < 5 s CPU", "pending", None)
        else:
            rows.append(row("metrics (compute_metrics)", m["tasks"], 0, m["wall"], m["cpu"], m["rss_mb"], "CPU only, no I/O"))
            target(f"metrics over {m['tasks']} tasks < 5 s CPU", f"{m['cpu']:.2f} s", m["cpu"] < 5)
    return {"rows": rows, "targets": targets}


def fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if v < 100 else f"{v:.0f}"
    return str(v)


def table(result: dict[str, Any]) -> str:
    lines = ["| scenario | tasks | Conduit calls | wall s | CPU s | peak RSS MB | note |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['scenario']} | {r['tasks']} | {fmt(r['calls'])} | {fmt(r['wall_s'], 3)} | "
                     f"{fmt(r['cpu_s'])} | {fmt(r['peak_rss_mb'], 0)} | {r['note']} |")
    lines += ["", "| target | measured | result |", "|---|---|---|"]
    for t in result["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | {t['result']} |")
    return "\n".join(lines)


DOC_HEAD = """# Benchmarks

Measured by `python bench/run.py` against the built-in sandbox with {latency} ms latency per Conduit
call (loopback). The sandbox runs in the bench process; every measured operation runs in its own
worker process, so CPU time and peak RSS (`VmHWM`) are the operation's own; the RSS includes the
Python interpreter and imports, about 35 MB. Re-run it after a change to `sync.py`, `history.py`,
`boards.py` or `metrics.py` and commit this file with the new table (`bench/results/latest.json`
has the same numbers, machine-readable).

"load the cache" is what a job pays to get `BoardData` and timelines for `build_snapshot` from the
cache (`sync.load_cached`) instead of from the server; the metrics row's RSS includes that
snapshot of 100,000 tasks with their timelines.

The naive baseline is what a bot without cache or batching does on *every* run: list the boards'
task ids, then fetch every task and every history one by one, sequentially. Fetching
10,000 tasks that way takes over ten minutes, so it is measured on a sample and extrapolated
linearly (it is sequential and per task). "Minimal" calls for a change of k tasks is one
`maniphest.search` page and one history batch per 100 changed tasks.

"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test of the bench)")
    parser.add_argument("--no-big", action="store_true", help="skip the 100,000-task runs")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/bench.md")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    args = parser.parse_args()
    sizes = dict(QUICK if args.quick else FULL)
    if args.no_big:
        sizes["big_n"] = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="clinicbot-bench-") as tmp:
        result = run(sizes, Path(tmp))
    result["meta"] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "latency_ms": LATENCY * 1000,
        "sizes": sizes,
        "quick": args.quick,
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU(s)",
        "bench_seconds": round(time.perf_counter() - started, 1),
    }
    text = table(result)
    print()
    print(text)
    print(f"\nbench took {result['meta']['bench_seconds']:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    if not args.no_docs and not args.quick:
        meta = result["meta"]
        doc = DOC_HEAD.format(latency=int(LATENCY * 1000))
        doc += (f"Latest run: {meta['date']}, {meta['machine']}, Python {meta['python']}, "
                f"{meta['bench_seconds']:.0f} s in all.\n\n{text}\n")
        (ROOT / "docs").mkdir(exist_ok=True)
        (ROOT / "docs" / "bench.md").write_text(doc)
    if any(t["result"] == "FAIL" for t in result["targets"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
