"""The fair naive peer: what a bot without a cache does on every run, written plainly but not wastefully.

    python bench/naive.py CONFIG_DIR SAMPLE

One HTTP session (keep-alive), sequential: find the boards (one ``project.search`` per board),
list their tasks (``maniphest.search`` pages of 100, columns attached), then one
``transaction.search`` per task (more pages only for a task with over 100 transactions).
It only uses ``requests``, not clinicbot. Histories are read for the first ``SAMPLE`` tasks
(0 = all); bench/run.py extrapolates the rest linearly (sequential and per task, so linear).
Prints one JSON line: task count, tasks sampled, and the time and CPU the per-task part took.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import requests
import yaml


class Conduit:
    def __init__(self, url: str, token: str):
        self.url = url.rstrip("/") + "/api/"
        self.token = token
        self.session = requests.Session()

    def call(self, method: str, **params: Any) -> Any:
        params["__conduit__"] = {"token": self.token}
        data = {"params": json.dumps(params, separators=(",", ":")), "output": "json", "__conduit__": "1"}
        answer = self.session.post(self.url + method, data=data, timeout=120).json()
        if answer.get("error_code"):
            raise SystemExit(f"{method}: {answer['error_code']}: {answer.get('error_info')}")
        return answer["result"]

    def search(self, method: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        after = None
        while True:
            page = self.call(method, **params, **({"after": after} if after else {}))
            items.extend(page["data"])
            after = (page.get("cursor") or {}).get("after")
            if not after:
                return items


def main() -> None:
    workdir, sample = Path(sys.argv[1]), int(sys.argv[2])
    config = yaml.safe_load((workdir / "clinicbot.yaml").read_text())
    token = (workdir / config["phabricator"]["token_file"]).read_text().strip()
    conduit = Conduit(config["phabricator"]["url"], token)
    boards = []
    for board in config["boards"]:
        found = conduit.search("project.search", constraints={"name": board["project"]})
        boards += [p["phid"] for p in found if p["fields"]["name"] == board["project"]]
    tasks: dict[str, dict[str, Any]] = {}
    for phid in boards:
        for task in conduit.search("maniphest.search", constraints={"projects": [phid]},
                                   attachments={"columns": True}):
            tasks[task["phid"]] = task
    chosen = list(tasks)[:sample] if sample else list(tasks)
    t0, c0 = time.perf_counter(), time.process_time()
    histories = 0
    for phid in chosen:
        histories += len(conduit.search("transaction.search", objectIdentifier=phid))
    per_wall = (time.perf_counter() - t0) / max(1, len(chosen))
    per_cpu = (time.process_time() - c0) / max(1, len(chosen))
    print(json.dumps({"tasks": len(tasks), "sampled": len(chosen), "per_task_wall_s": per_wall,
                      "per_task_cpu_s": per_cpu, "transactions_read": histories}))


if __name__ == "__main__":
    main()
