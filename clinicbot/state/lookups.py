"""The fixed lookups (issue 12): the bot's account, the team projects and their members, users.

Every job used to ask for them again (``user.whoami``, ``project.search``, ``user.search`` twice):
five of a warm job's six calls. They change rarely, so they are kept in the sync cache's meta
(``lookups``) with an expiry, and a job asks only for what is missing or too old. A structure
reconcile that finds the boards changed drops them (:func:`clinicbot.sync.sync`).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any, Mapping

from clinicbot.errors import StateError
from clinicbot.state.cache import SCHEMA_VERSION, CacheStore

log = logging.getLogger(__name__)


# The bot's account, team projects and members, users by PHID (authors, owners, actors: names, bot
# or not) change rarely: kept a day, filled again by every full or reconcile sync (daily by default).
# The people who can be pinged (config and rotation) are kept only briefly: their availability
# ("away") decides who is mentioned, and the jobs that run together (check, digest, agenda at the
# same hour, or `serve`'s jobs) should ask for it once, not each.
LOOKUP_HOURS = 24.0
USER_HOURS = 24.0
PEOPLE_MINUTES = 10.0
LOOKUPS_KEY = "lookups"


class Lookups:
    """What every job looked up on the server and that rarely changes, kept in the cache's meta.

    ``entries``: name -> (epoch fetched, JSON value); ``users``: PHID -> (epoch, user fields);
    ``unknown``: a PHID the server did not know -> epoch asked. An entry older than
    its expiry is asked for again. ``changed`` says whether anything new must be saved."""

    def __init__(self, data: Mapping[str, Any] | None = None, *, now: float, lookup_hours: float = LOOKUP_HOURS,
                 user_hours: float = USER_HOURS):
        data = data or {}
        self.entries: dict[str, list[Any]] = dict(data.get("entries") or {})
        self.users: dict[str, list[Any]] = dict(data.get("users") or {})
        self.unknown: dict[str, float] = dict(data.get("unknown") or {})
        self.now = now
        self.lookup_age = lookup_hours * 3600
        self.user_age = user_hours * 3600
        self.changed = False

    def get(self, name: str, *, max_age: float | None = None) -> Any:
        """The value kept under ``name`` while younger than ``max_age`` seconds (default: the lookups' age)."""
        entry = self.entries.get(name)
        age = self.lookup_age if max_age is None else max_age
        return entry[1] if entry is not None and self.now - entry[0] < age else None

    def people(self, usernames: list[str]) -> list[dict[str, Any]] | None:
        """The users (with availability) asked for by exactly these user names less than
        PEOPLE_MINUTES ago, or None: ask the server."""
        kept = self.get("people", max_age=PEOPLE_MINUTES * 60)
        if isinstance(kept, dict) and kept.get("usernames") == usernames and isinstance(kept.get("users"), list):
            return kept["users"]
        return None

    def put_people(self, usernames: list[str], users: list[dict[str, Any]]) -> None:
        self.put("people", {"usernames": usernames, "users": users})

    def put(self, name: str, value: Any) -> Any:
        self.entries[name] = [self.now, value]
        self.changed = True
        return value

    def user(self, phid: str) -> dict[str, Any] | None:
        entry = self.users.get(phid)
        return entry[1] if entry is not None and self.now - entry[0] < self.user_age else None

    def put_user(self, phid: str, fields: dict[str, Any]) -> None:
        self.users[phid] = [self.now, fields]
        self.changed = True

    def is_unknown(self, key: str) -> bool:
        at = self.unknown.get(key)
        return at is not None and self.now - at < self.user_age

    def put_unknown(self, key: str) -> None:
        self.unknown[key] = self.now
        self.changed = True

    def dumps(self) -> str:
        fresh_users = {k: v for k, v in self.users.items() if self.now - v[0] < self.user_age}
        fresh_unknown = {k: v for k, v in self.unknown.items() if self.now - v < self.user_age}
        return json.dumps({"entries": self.entries, "users": fresh_users, "unknown": fresh_unknown},
                          separators=(",", ":"))

    @classmethod
    def loads(cls, text: str | None, *, now: float) -> "Lookups":
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            data = {}
        return cls(data if isinstance(data, dict) else {}, now=now)


def read_lookups(path: Path, *, now: float) -> Lookups | None:
    """The lookups kept in the cache at ``path`` (a quick read-only look before a job's sync),
    or None when there is no cache or it cannot be read (the sync then says why)."""
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (LOOKUPS_KEY,)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return Lookups.loads(row[0], now=now) if row else None


def save_lookups(path: Path, lookups: Lookups) -> bool:
    """Write the fixed lookups into an existing cache's meta: one small transaction, without the
    integrity check a full open does (it is a cache: a failure here only costs the next run its
    lookups). False when there is no current cache to write to."""
    if not path.exists():
        return False
    conn = CacheStore._connect(str(path))
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            return False
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (LOOKUPS_KEY, lookups.dumps()))
        lookups.changed = False
        return True
    except StateError as exc:
        log.warning("could not keep the fixed lookups in the cache: %s", exc)
        return False
    finally:
        conn.close()
