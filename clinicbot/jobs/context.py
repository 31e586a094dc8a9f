"""The application context: builds the collaborators a command needs, once, at the edge.

This is the only place (with ``cli/``) that reads the environment and the wall clock; the
core receives ``now``, the config and the client as arguments.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, cast

from clinicbot.errors import ConfigError, LockHeldError, StateError

if TYPE_CHECKING:  # imported where used: a command pays only for what it touches (start-up time)
    from rich.console import Console

    from clinicbot.config import Config
    from clinicbot.model import Snapshot
    from clinicbot.phab.conduit import ConduitClient

log = logging.getLogger(__name__)


def _console(stderr: bool = False) -> "Console":
    """rich's Console when it has work to do (a terminal, a table); plain lines without importing it."""
    from clinicbot.jobs.console import LazyConsole

    return cast("Console", LazyConsole(stderr=stderr))


def import_ahead(*modules: str) -> None:
    """Import ``modules`` in a daemon thread. A warm job spends most of its Conduit round trips
    waiting on a socket, and a report needs Jinja2 (~25 ms of imports) only after them: imported
    meanwhile, the wait is not lost. Only third-party modules that import nothing of clinicbot (no
    import order between this thread and the job's can go round in a circle); a failure is left
    to the job's own import of the module, which raises it in its place."""
    import importlib
    import threading

    def work() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001  (raised again where the job imports it)
                pass

    threading.Thread(target=work, name="import-ahead", daemon=True).start()


def parse_now(value: str, source: str = "--now") -> datetime:
    """ISO 8601 -> aware datetime; a value without an offset is taken as UTC."""
    text = value.strip()
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(None, source, f"{value!r} is not an ISO 8601 date/time (e.g. 2026-11-22T09:00:00Z)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt


@dataclass
class App:
    config_path: Path | None = None
    now_override: datetime | None = None
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    console: Console = field(default_factory=_console)
    err_console: Console = field(default_factory=lambda: _console(stderr=True))
    _config: Config | None = None
    _client: ConduitClient | None = None
    _extras: dict[str, Any] = field(default_factory=dict)

    def now(self) -> datetime:
        """The reference time (``--now``): what every age, threshold and report is computed against."""
        return self.now_override or datetime.now(timezone.utc)

    def wall_clock(self) -> datetime:
        """The real time, even under ``--now``: for write intents (compared with the server's own
        transaction dates) and the sync's reconcile interval. The sync's high-water mark comes
        from the server's stamps, not from here."""
        return datetime.now(timezone.utc)

    def rotation(self) -> Any:
        """The parsed rotation file, or None when it does not exist (then nobody can be pinged)."""
        if "rotation" not in self._extras:
            path = self.config().rotation_path
            if path is None or not path.exists():
                log.warning("no rotation file at %s: nobody is on duty", path)
                self._extras["rotation"] = None
            else:
                from clinicbot.rotation import load_rotation

                self._extras["rotation"] = load_rotation(path)
        return self._extras["rotation"]

    def lookups(self, kept: Any = None) -> Any:
        """The fixed lookups (clinicbot.state.lookups.Lookups), once per process (``serve``'s jobs
        share them): the first call takes ``kept`` (the cache's) or starts empty. Dated now."""
        from clinicbot.state.lookups import Lookups

        lookups = self._extras.get("lookups")
        if lookups is None:
            lookups = self._extras["lookups"] = kept or Lookups(now=self.wall_clock().timestamp())
        lookups.now = self.wall_clock().timestamp()
        return lookups

    def save_lookups(self) -> None:
        """Keep what was looked up for the next runs (the sync cache's meta), when anything was."""
        lookups = self._extras.get("lookups")
        if lookups is not None and lookups.changed and self._extras.get("lookups_saved", True):
            from clinicbot.state.cache import cache_path
            from clinicbot.state.lookups import save_lookups

            save_lookups(cache_path(self.config()), lookups)

    # -- config --------------------------------------------------------------------------------
    def config_file(self) -> Path:
        if self.config_path is not None:
            return self.config_path
        if self.env.get("CLINICBOT_CONFIG"):
            return Path(self.env["CLINICBOT_CONFIG"])
        default = Path("clinicbot.yaml")
        if default.exists():
            return default
        raise ConfigError(None, "--config", "no configuration given; pass --config FILE, set CLINICBOT_CONFIG, "
                          "or create ./clinicbot.yaml (copy clinicbot.example.yaml), or try `clinicbot demo`")

    def has_config(self) -> bool:
        try:
            self.config_file()
        except ConfigError:
            return False
        return True

    def config(self) -> Config:
        if self._config is None:
            from clinicbot.config import load_config

            self._config = load_config(self.config_file())
        return self._config

    def set_config(self, config: Config) -> None:
        self._config = config
        self._client = None
        self._extras.pop("rotation", None)

    # -- Phabricator ---------------------------------------------------------------------------
    def client(self) -> ConduitClient:
        if self._client is None:
            from clinicbot.phab.conduit import ConduitClient

            cfg = self.config()
            self._client = ConduitClient(
                cfg.url,
                cfg.token(self.env),
                timeout=float(cfg.get("phabricator.timeout")),
                retries=int(cfg.get("phabricator.retries")),
                max_answer_bytes=int(float(cfg.get("phabricator.max_answer_mb")) * 2**20),
            )
        return self._client

    def set_client(self, client: ConduitClient) -> None:
        self._client = client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def load_snapshot(app: Any, *, roles: Iterable[str] | None = None, open_only: bool = False,
                  closed_since: datetime | None = None, use_cache: bool = True) -> Snapshot:
    """The Snapshot a job works on, through the sync cache: only what changed is fetched again.

    A job loads what it reads: ``open_only`` (the checks, digest, agenda) leaves closed tasks in
    the cache; ``closed_since`` (metrics) adds the closed tasks closed or modified since then.
    The fixed lookups (bot account, team projects, users) come from the cache while fresh, are
    kept in this App for the next job of the process, and what had to be fetched is saved back.

    When another instance holds the state lock (``serve`` is running while someone tries a dry
    run), the cache is read as it is, or after that run's sync when it is being written (see
    :func:`_cache_as_it_is`). Without the cache (``use_cache=False``), everything is fetched.
    """
    from clinicbot.phab.snapshot import build_snapshot, rotation_usernames
    from clinicbot.sync import sync_and_load

    config, client = app.config(), app.client()
    members, others = rotation_usernames(app.rotation())
    clock = app.wall_clock()
    cached = ahead = None
    if use_cache:
        ahead = _people_ahead(app, members, others)
        try:
            _, cached = sync_and_load(client, config, now=clock, roles=roles, open_only=open_only,
                                      closed_since=closed_since)
        except LockHeldError as exc:
            cached = _cache_as_it_is(config, exc, roles=roles, open_only=open_only, closed_since=closed_since,
                                     now=clock)
        finally:
            if ahead is not None:  # its call overlapped the sync's; none is left running if that failed
                ahead.join()
    # Once per process: the App keeps them (serve runs every job in one process); else the cache's.
    lookups = app.lookups(cached.lookups if cached is not None else None)
    if ahead is not None:
        ahead.finish(lookups)
    app._extras["lookups_saved"] = use_cache  # without the cache, nothing is written to it
    if cached is None:
        snapshot = build_snapshot(client, config, app.now(), member_usernames=members, also_fetch=others,
                                  roles=roles, open_only=open_only, lookups=lookups)
    else:
        snapshot = build_snapshot(client, config, app.now(), member_usernames=members, also_fetch=others,
                                  data=cached.data, timelines=cached.timelines, sightings=cached.sightings,
                                  actors=cached.actors, lookups=lookups)
    app.save_lookups()
    resolve_exempt_projects(client, config, snapshot)
    return snapshot


def _cache_as_it_is(config: "Config", held: LockHeldError, **load: Any) -> Any:
    """Another run holds the state lock (``serve``'s sync, a scheduled job): the cache as its last
    completed sync left it. While that run is still writing it (mid-sync, its rows not yet what
    its end records) or before its first sync completed, wait for that run, up to
    ``schedule.lock_wait_seconds``, and read it then: never fetch every task from the server
    instead (that was ~2,000 calls and 650 MB at 100,000 tasks). Raises LockHeldError when the
    wait runs out, StateError when the cache is still unreadable after it (one line each)."""
    from clinicbot.state.lock import StateLock
    from clinicbot.sync import load_cached

    log.warning("%s; using the cache as it is", held)
    try:
        return load_cached(config, **load)
    except StateError as unreadable:
        wait = config.typed["schedule"].lock_wait  # the validated section (jobs/schedule.py)
        log.warning("%s; waiting up to %g s (schedule.lock_wait_seconds) for the other run to finish it",
                    unreadable, wait)
    with StateLock(config.state_dir).acquire(wait=wait):
        return load_cached(config, **load)


def _people_ahead(app: Any, members: list[str], others: list[str]) -> Any:
    """When the people who can be pinged are due to be asked for again (their kept availability is
    older than PEOPLE_MINUTES), ask in a thread now, while the sync waits for its own call; None
    when they are fresh or the bot's user name is not known yet (the snapshot then asks, as before)."""
    from clinicbot.phab.snapshot import PeopleAhead, people_usernames
    from clinicbot.state.cache import cache_path
    from clinicbot.state.lookups import read_lookups

    config = app.config()
    kept = app._extras.get("lookups") or read_lookups(cache_path(config), now=app.wall_clock().timestamp())
    me = kept.get("whoami") if kept is not None else None
    bot = config.get("phabricator.bot_username") or (me.get("userName") if isinstance(me, dict) else None)
    if not bot:
        return None
    usernames = people_usernames(config, bot, members, others)
    if kept is not None:
        kept.now = app.wall_clock().timestamp()
        if kept.people(usernames) is not None:
            return None
    return PeopleAhead(app.client(), usernames)


def resolve_exempt_projects(client: "ConduitClient", config: "Config", snapshot: Snapshot) -> None:
    """Projects the checks' ``exempt`` settings name by name or #hashtag that are no watched board:
    looked up on the server (only when there are any) into ``snapshot.project_aliases``; an unknown
    one is a ConfigError naming ``checks.<slug>.exempt.<key>[i]`` (checks/exempt.py)."""
    section = config.section("checks")
    if not any(isinstance(raw, Mapping) and isinstance(raw.get("exempt"), Mapping) for raw in section.values()):
        return  # no exemptions: the check registry is not imported (agenda and metrics run no check)
    from clinicbot.checks.exempt import unresolved_projects

    wanted = unresolved_projects(section, snapshot)
    if wanted:
        from clinicbot.phab.boards import resolve_projects

        found = resolve_projects(client, wanted, str(config.path) if config.path else "<config>")
        snapshot.project_aliases.update({ident: found[ident]["phid"] for _, ident in wanted})
