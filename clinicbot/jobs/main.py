"""The main job: what `clinicbot demo` runs and what a cron line would run by default.

It shows the daily triage digest on the terminal, built exactly as ``clinicbot digest`` builds
it. Showing is not delivering: nothing is posted, and "since the last digest" stays the last
*delivered* digest (``clinicbot digest --to … --apply`` delivers).
"""

from __future__ import annotations

from clinicbot.jobs.context import App
from clinicbot.errors import EXIT_OK


def run(app: App) -> int:
    from clinicbot.cli.reports import _ledger, deliverer, digest_data, report_env
    from clinicbot.delivery.targets import Target

    env = report_env(app)
    ledger = _ledger(env, apply=False)  # a read-only copy: the digest only reads the findings
    try:
        data = digest_data(app, env, ledger)
        deliverer(app, env, ledger, apply=False).deliver(data, [Target("stdout")], fmt="term")
    finally:
        ledger.close()
    return EXIT_OK
