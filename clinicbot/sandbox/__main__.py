"""``python -m clinicbot.sandbox --port P --token T [--scenario FILE | --size N] [--now ISO]``."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from clinicbot.sandbox.generator import generate_scenario
from clinicbot.sandbox.scenario import load_scenario
from clinicbot.sandbox.server import DEFAULT_TOKEN, Sandbox, serve_forever


def parse_now(text: str | None) -> datetime:
    if not text:
        return datetime.now(timezone.utc)
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clinicbot.sandbox",
                                     description="Serve a fake Phabricator (Conduit API) on loopback until Ctrl-C.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="API token to accept (acts as user clinicbot)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--scenario", help="scenario file (.yaml or .json)")
    source.add_argument("--size", type=int, default=300, help="tasks in the generated scenario")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--now", help="the generated scenario's 'now' (ISO 8601; default: the current time)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every call")
    parser.add_argument("--save", help="also write the scenario to this file")
    args = parser.parse_args(argv)
    try:
        scenario = (load_scenario(args.scenario) if args.scenario
                    else generate_scenario(parse_now(args.now), size=args.size, seed=args.seed))
        if args.save:
            scenario.save(args.save)
        sandbox = Sandbox(scenario=scenario, token=args.token, host=args.host, port=args.port, latency=args.latency)
    except (OSError, ValueError) as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2
    serve_forever(sandbox)
    return 0


if __name__ == "__main__":
    sys.exit(main())
