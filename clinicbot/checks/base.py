"""What a check is: a slug, a description and a pure function of a :class:`CheckContext`.

A check never does I/O and never reads the clock: everything it may look at is in the
context (the snapshot with its timelines, the rotation, ``now`` and its own settings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime
from typing import Any, Callable, Mapping, Protocol

from clinicbot.model import Snapshot

SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class Finding:
    """One thing that seems off. ``key`` identifies the *condition* (same task, same slug, same
    subject) across runs, so the ledger can tell a repetition from a new episode."""

    slug: str
    task_phid: str | None  # None for findings not about one task (e.g. rotation-notice)
    task_id: int | None
    severity: str  # one of SEVERITIES
    summary: str  # one plain-text line; task text inside it is NOT escaped yet (handlers escape)
    facts: Mapping[str, Any] = field(default_factory=dict)  # for templates: ages, users, column names, ...
    subject: str = ""  # distinguishes several findings of one slug on one task (e.g. the claimant)

    @cached_property  # read a dozen times per finding on its way to the ledger and the outbox
    def key(self) -> str:
        target = f"T{self.task_id}" if self.task_id is not None else "-"
        return f"{self.slug}:{target}:{self.subject}" if self.subject else f"{self.slug}:{target}"


@dataclass
class CheckContext:
    snapshot: Snapshot
    now: datetime
    settings: Mapping[str, Any]  # this check's thresholds (defaults merged with the config)
    rotation: Any = None  # clinicbot.rotation.Rotation or None
    business_hours: Any = None  # clinicbot.checks.hours.BusinessHours or None (count wall-clock time)
    # clinicbot.checks.exempt.Exempt or None: the tasks this check leaves alone. The registry drops
    # findings about them; a finding listing several tasks leaves them out itself (_common.exempt).
    exempt: Any = None
    # (key, message) -> ConfigError naming the config file: for a setting that names something the
    # snapshot must resolve (a board); raise it with a key under "checks.<slug>." to stop the run
    config_error: Any = None


class Check(Protocol):
    slug: str
    description: str
    defaults: Mapping[str, Any]  # threshold settings and their defaults

    def run(self, ctx: CheckContext) -> list[Finding]: ...


CheckFunction = Callable[[CheckContext], list[Finding]]
