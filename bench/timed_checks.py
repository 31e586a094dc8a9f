"""Timed checks: the speed targets that used to be wall-time assertions in tests/.

    python3 bench/timed_checks.py               # every check (the 100k scenario takes about a minute)
    python3 bench/timed_checks.py --size 10000  # a smaller scenario for the generation/paging checks

The test-suite asserts behaviour and counts (calls, bytes, pages), never how many seconds something
took: a loaded machine must not fail a test. The seconds live here. Each check prints its figure next
to its target; the exit status is 1 when a target was missed, 0 otherwise. Loopback only.

Checks (and the tests they came from):

* ``sandbox call``: a ``conduit.ping`` against the sandbox with no latency configured, median of 20,
  under 0.15 s (tests/test_sandbox.py::test_latency_is_added_to_every_call keeps the lower bound: a
  configured latency is added to every call).
* ``generate``: ``generate_scenario(size=100_000)`` under 60 s
  (tests/test_sandbox_scenario.py::test_hundred_thousand_tasks keeps the counts).
* ``paging``: three first pages and one ``after`` page of open tasks (100 each) from that scenario's
  sandbox, under 10 s in total (same test).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clinicbot.sandbox import Sandbox, generate_scenario  # noqa: E402

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)


@dataclass
class Result:
    name: str
    seconds: float
    target: float  # the check passes when seconds < target

    @property
    def ok(self) -> bool:
        return self.seconds < self.target

    def line(self) -> str:
        verdict = "ok" if self.ok else "MISSED"
        return f"{self.name:<14} {self.seconds:8.3f} s   target < {self.target:g} s   {verdict}"


def sandbox_call() -> Result:
    with Sandbox(scenario=generate_scenario(NOW, size=40)) as sb:
        session = requests.Session()
        data = {"params": json.dumps({"__conduit__": {"token": sb.token}}), "output": "json", "__conduit__": "1"}
        session.post(f"{sb.url}api/conduit.ping", data=data, timeout=10).raise_for_status()  # warm up
        times = []
        for _ in range(20):
            started = time.monotonic()
            session.post(f"{sb.url}api/conduit.ping", data=data, timeout=10).raise_for_status()
            times.append(time.monotonic() - started)
    return Result("sandbox call", statistics.median(times), 0.15)


def generate_and_page(size: int) -> list[Result]:
    started = time.monotonic()
    big = generate_scenario(NOW, size=size)
    generated = Result("generate", time.monotonic() - started, 60.0)
    assert len(big.tasks) == size
    with Sandbox(scenario=big) as sb:
        def search(**extra: object) -> dict:
            params = {"__conduit__": {"token": sb.token}, "constraints": {"statuses": ["open"]}, "limit": 100,
                      **extra}
            return json.loads(sb.answer("maniphest.search", [("params", json.dumps(params))]))["result"]

        started = time.monotonic()
        for _ in range(3):
            page = search()
        nxt = search(after=page["cursor"]["after"])
        paged = Result("paging", time.monotonic() - started, 10.0)
    assert len(nxt["data"]) == 100
    return [generated, paged]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000, help="tasks in the generation/paging scenario")
    args = parser.parse_args(argv)
    results = [sandbox_call(), *generate_and_page(args.size)]
    for result in results:
        print(result.line())
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
