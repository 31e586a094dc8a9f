"""A fake Phabricator/Phorge that speaks Conduit on 127.0.0.1 (demo, tests, benchmarks).

    from clinicbot.sandbox import Sandbox, generate_scenario
    with Sandbox(scenario=generate_scenario(now, size=300)) as sb:
        ...  # point a ConduitClient at sb.url with sb.token

It answers with the shapes recorded from a real Phorge server (``../shared/conduit``),
and can add latency and faults (timeouts, 5xx, 429, garbage, resets) on demand.
"""

from clinicbot.sandbox.generator import generate_scenario
from clinicbot.sandbox.scenario import Scenario, load_scenario
from clinicbot.sandbox.server import DEFAULT_TOKEN, Faults, Sandbox, Stats, serve_forever
from clinicbot.sandbox.store import ConduitFault, Store

__all__ = [
    "DEFAULT_TOKEN",
    "ConduitFault",
    "Faults",
    "Sandbox",
    "Scenario",
    "Stats",
    "Store",
    "generate_scenario",
    "load_scenario",
    "serve_forever",
]
