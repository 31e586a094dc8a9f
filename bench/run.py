"""clinicbot's bench: every command timed as cron runs it, at 1k, 10k and 100k tasks (issue 12).

    python3 bench/run.py --label before                  # 1k, 10k and 100k (about 15 minutes)
    python3 bench/run.py --label after --sizes 1k,10k    # a quicker run
    python3 bench/table.py                               # only regenerate the tables from the result files

For each size a strict sandbox (``clinicbot.sandbox``, 30 ms latency per call) runs in a process of
its own (bench/sandbox_host.py). Each command is a fresh process of the ``clinicbot`` console script,
stdout and stderr not a terminal and no TERM/COLUMNS, as cron starts it, so process start-up is
included. In order: ``clinicbot --help``; ``sync`` cold (empty state); ``sync`` warm (nothing
changed); ``check``, ``digest``, ``agenda``, ``metrics`` warm (each also does its own sync part);
``sync`` after 1 % of the tasks changed; the fair naive peer (bench/naive.py).

Recorded per command: wall time, CPU and peak RSS of that process alone (``os.wait4``: its own
rusage, ``ru_maxrss``), the Conduit calls by method (the sandbox's request counters before/after),
the bytes and lines of stdout, whether stdout holds a table (box-drawing characters). A command
that outlives ``--timeout`` is killed and recorded as such. The results go to
bench/results/<label>.json; then bench/table.py rewrites the tables in docs/bench.md and the README
(before and after side by side when both files exist). The bench never fails a test: it only measures.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import table  # noqa: E402  (bench/table.py: no clinicbot import)

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LATENCY = 0.03
CHANGE = 0.01
CRON_DROP = ("TERM", "COLUMNS", "LINES", "FORCE_COLOR", "CLICOLOR_FORCE", "CLINICBOT_NOW", "CLINICBOT_CONFIG")


def parse_sizes(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        out.append(int(float(part[:-1]) * 1000) if part.endswith("k") else int(part))
    return out


def clinicbot_argv() -> list[str]:
    script = shutil.which("clinicbot")
    return [script] if script else [sys.executable, "-m", "clinicbot.cli"]


def cron_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CRON_DROP}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


class Host:
    """bench/sandbox_host.py: the sandbox in its own process, driven over stdin/stdout."""

    def __init__(self, size: int, workdir: Path, latency: float):
        self.proc = subprocess.Popen([sys.executable, str(BENCH / "sandbox_host.py"), "--size", str(size),
                                      "--latency", str(latency), "--workdir", str(workdir)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        self.info = self._read()
        self.workdir = workdir

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"bench: the sandbox host exited ({self.proc.wait()})")
        return json.loads(line)

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def requests(self) -> dict[str, int]:
        return self.ask("stats")["requests"]

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def timed(argv: list[str], cwd: Path, timeout: float, stdout: IO[bytes], stderr: IO[bytes]) -> dict[str, Any]:
    """Run ``argv`` to the end (or kill it at ``timeout``): wall, and its own CPU and peak RSS (wait4 rusage)."""
    killed = threading.Event()
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=cron_env(), stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)

    def kill() -> None:
        killed.set()
        proc.kill()

    timer = threading.Timer(timeout, kill)
    timer.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": None if killed.is_set() else round(wall, 3), "killed": killed.is_set(), "timeout_s": timeout,
            "exit": proc.returncode, "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "rss_mb": round(usage.ru_maxrss / 1024, 1)}


def measure(host: Host, name: str, argv: list[str], timeout: float) -> dict[str, Any]:
    before = host.requests()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        result = timed(argv, host.workdir, timeout, out, err)
        out.seek(0)
        text = out.read()
        err.seek(0)
        errors = err.read().decode(errors="replace").strip().splitlines()
    after = host.requests()
    calls = {m: after.get(m, 0) - before.get(m, 0) for m in after if after.get(m, 0) != before.get(m, 0)}
    decoded = text.decode(errors="replace")
    result.update(argv=[Path(argv[0]).name, *argv[1:]], calls=sum(calls.values()), calls_by_method=calls,
                  stdout_bytes=len(text), stdout_lines=decoded.count("\n"),
                  table_chars=any(ch in table.BOX for ch in decoded), stderr_tail=errors[-3:])
    shown = table.wall_text(result)
    print(f"  {name:20} {shown:>20} s  cpu {result['cpu_s']:7.2f} s  rss {result['rss_mb']:6.0f} MB  "
          f"calls {result['calls']:5}  stdout {len(text):>9,} B  exit {result['exit']}", flush=True)
    return result


def naive(host: Host, tasks_hint: int, sample: int, timeout: float) -> dict[str, Any]:
    chosen = 0 if tasks_hint <= 1000 else sample
    before = host.requests()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        run = timed([sys.executable, str(BENCH / "naive.py"), str(host.workdir), str(chosen)], host.workdir,
                    timeout, out, err)
        out.seek(0)
        lines = out.read().decode().strip().splitlines()
    after = host.requests()
    calls = {m: after.get(m, 0) - before.get(m, 0) for m in after if after.get(m, 0) != before.get(m, 0)}
    if run["killed"] or not lines:
        return {**run, "calls": sum(calls.values()), "calls_by_method": calls, "extrapolated": False}
    peer = json.loads(lines[-1])
    rest = peer["tasks"] - peer["sampled"]
    per_calls = calls.get("transaction.search", 0) / max(1, peer["sampled"])
    result = {"tasks": peer["tasks"], "sampled": peer["sampled"], "extrapolated": rest > 0, "killed": False,
              "timeout_s": timeout, "rss_mb": run["rss_mb"],
              "wall_s": round(run["wall_s"] + rest * peer["per_task_wall_s"], 1),
              "cpu_s": round(run["cpu_s"] + rest * peer["per_task_cpu_s"], 2),
              "calls": round(sum(calls.values()) + rest * per_calls), "calls_by_method": calls,
              "measured_wall_s": run["wall_s"], "per_task_wall_s": round(peer["per_task_wall_s"], 4)}
    print(f"  {'naive peer':20} {result['wall_s']:>20} s  ({'extrapolated from ' + str(peer['sampled']) + ' tasks' if rest else 'all tasks'}, "
          f"{result['calls']:,} calls)", flush=True)
    return result


def bench_size(size: int, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    host = Host(size, workdir, args.latency)
    print(f"{size} tasks: sandbox ready in {host.info['generate_s']} s ({host.info['tasks']} tasks in the store)",
          flush=True)
    cli = clinicbot_argv()
    cfg = ["--config", host.info["config"]]
    out: dict[str, Any] = {"tasks": host.info["tasks"], "generate_s": host.info["generate_s"], "commands": {}}
    cmds = out["commands"]
    try:
        cmds["--help"] = measure(host, "--help", [*cli, "--help"], args.timeout)
        cmds["sync (cold)"] = measure(host, "sync (cold)", [*cli, *cfg, "sync"], args.timeout)
        cmds["sync (warm)"] = measure(host, "sync (warm)", [*cli, *cfg, "sync"], args.timeout)
        for job in table.JOBS:
            cmds[job] = measure(host, job, [*cli, *cfg, job], args.timeout)
        out["changed"] = host.ask(f"change {CHANGE}")["changed"]
        cmds["sync (1% changed)"] = measure(host, "sync (1% changed)", [*cli, *cfg, "sync"], args.timeout)
        if not args.no_naive:
            out["naive"] = naive(host, host.info["tasks"], args.naive_sample, args.timeout)
    finally:
        host.close()
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1k,10k,100k", help="comma-separated task counts (default 1k,10k,100k)")
    parser.add_argument("--label", choices=table.LABELS, default="after",
                        help="before or after the performance fixes (bench/results/<label>.json)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds before a command is killed (180)")
    parser.add_argument("--latency", type=float, default=LATENCY, help="sandbox latency per call in seconds (0.03)")
    parser.add_argument("--naive-sample", type=int, default=200,
                        help="tasks whose histories the naive peer reads above 1k tasks (then extrapolated)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive peer")
    parser.add_argument("--no-docs", action="store_true", help="only write the result file, not the tables")
    args = parser.parse_args()
    started = time.perf_counter()
    load_start = list(os.getloadavg())
    result: dict[str, Any] = {"meta": {
        "label": args.label, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(), "latency_ms": args.latency * 1000, "timeout_s": args.timeout,
        "python": platform.python_version(), "machine": f"{platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPU(s)", "cpus": os.cpu_count() or 1, "loadavg_start": load_start,
        "command": [Path(a).name for a in clinicbot_argv()]}, "sizes": {}}
    # Cron starts clinicbot from an installed package, whose modules are compiled once. Here the tree
    # may have stale bytecode, and with PYTHONDONTWRITEBYTECODE set every changed module would be
    # compiled again in every measured process: compile them first, as an install does.
    compileall.compile_dir(str(ROOT / "clinicbot"), quiet=1)
    print(f"bench ({args.label}): load average {load_start}", flush=True)
    for size in parse_sizes(args.sizes):
        with tempfile.TemporaryDirectory(prefix="clinicbot-bench-") as tmp:
            result["sizes"][str(size)] = bench_size(size, Path(tmp), args)
    result["meta"]["loadavg_end"] = list(os.getloadavg())
    result["meta"]["bench_s"] = round(time.perf_counter() - started, 1)
    # The bench process's own peak: a floor under every child's ru_maxrss (Linux carries it over a fork).
    result["meta"]["bench_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    path = table.RESULTS / f"{args.label}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {path.relative_to(ROOT)} ({result['meta']['bench_s']:.0f} s)")
    for t in table.targets(result):
        print(f"  {table.ok_text(t['ok']).strip('*'):5} {t['target']}: {t['measured']}")
    if not args.no_docs:
        results = table.load_results()
        table.write_docs(results)
        table.write_details(results)
        print(f"rewrote the tables in {table.DOC.relative_to(ROOT)} and {table.README.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
