"""The sync job: `clinicbot sync` and the scheduler's ``sync`` job."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from clinicbot.jobs.context import App
from clinicbot.sync import SyncSettings, sync


def sync_job(app: App, *, apply: bool = False, full: bool = False, progress: Any = None) -> Any:
    """Bring the cache up to date. ``apply`` is accepted for the job interface; a sync never writes.

    The sync's clock is the real time even under ``--now``: the high-water mark is compared
    with the server's ``dateModified``, so a replayed time would make the next sync miss changes.
    """
    config = app.config()
    return sync(app.client(), config, full=full, now=datetime.now(timezone.utc),
                settings=SyncSettings.from_config(config), progress=progress)
