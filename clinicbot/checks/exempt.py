"""Exemptions: tasks a check leaves alone, like actions/stale's exempt labels.

Every check (built-in, plugin or custom) accepts ``exempt`` in its settings::

    checks:
      stale-in-progress:
        exempt:
          projects: ["Infrastructure Releases"]  # tagged with the project, or on its board
          tags: ["#clinicbot-ignore"]            # a marker tag on the task
          priorities: [wish, Low]                # keyword, name or value
          subtypes: [bug]                        # maniphest subtypes
          tasks: [T123, 456]

Projects and tags are named as the rest of the config names projects: by PHID, ``#hashtag`` or
name. The shape is validated when the config is loaded (:func:`parse_exempt`, one line naming
the file and ``checks.<slug>.exempt.<key>``); names are resolved to PHIDs per run
(:meth:`Exemptions.bind`): a PHID as it is, a watched board by its name or hashtag, any other
project through ``Snapshot.project_aliases``, which the job fills from the server
(:func:`unresolved_projects` says which names need it). A name nobody can resolve is a config
error, never a silently empty exemption.

The registry applies the bound exemption to every check's findings (``run_checks``): a finding
about an exempt task never fires. Findings about several tasks (the triage meeting's leftovers,
an engineer's claimed tasks) are the check's business: it asks ``ctx.exempt`` (see
``_common.exempt``) and leaves exempt tasks out of its list and count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from clinicbot.errors import ConfigError
from clinicbot.model import Snapshot, Task

EXEMPT_KEYS = ("projects", "tags", "priorities", "subtypes", "tasks")
PROJECT_KEYS = ("projects", "tags")
_TASK = re.compile(r"^[Tt]?([1-9][0-9]*)$")

Error = Callable[[str, str], ConfigError]


def _default_error(key: str, message: str) -> ConfigError:
    return ConfigError("<config>", key, message)


@dataclass(frozen=True)
class Exemptions:
    """What ``checks.<slug>.exempt`` says, as written (names not resolved yet)."""

    projects: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    priorities: tuple[str | int, ...] = ()
    subtypes: tuple[str, ...] = ()
    tasks: tuple[int, ...] = ()
    where: str = field(default="exempt", compare=False)  # "checks.<slug>.exempt", for errors
    error: Error = field(default=_default_error, compare=False, repr=False)

    def __bool__(self) -> bool:
        return any((self.projects, self.tags, self.priorities, self.subtypes, self.tasks))

    def bind(self, snapshot: Snapshot) -> "Exempt":
        """Names resolved against ``snapshot``; an unknown name is a ConfigError naming the key."""
        projects = {self._project(snapshot, "projects", i, p): p for i, p in enumerate(self.projects)}
        tags = {self._project(snapshot, "tags", i, p): p for i, p in enumerate(self.tags)}
        return Exempt(
            projects=frozenset(projects),
            tags=frozenset(tags),
            priorities=frozenset(self._priority(snapshot, i, p) for i, p in enumerate(self.priorities)),
            subtypes=frozenset(self.subtypes),
            tasks=frozenset(self.tasks),
            names={**projects, **tags},
        )

    def _project(self, snapshot: Snapshot, kind: str, i: int, ident: str) -> str:
        phid = project_phid(snapshot, ident)
        if phid is None:
            raise self.error(f"{self.where}.{kind}[{i}]",
                             f"no project {ident!r} is known; give its exact name, #hashtag or PHID")
        return phid

    def _priority(self, snapshot: Snapshot, i: int, value: str | int) -> int:
        known = snapshot.priorities
        for p in known:
            if value == p.value or (isinstance(value, str) and value.casefold() in (p.keyword.casefold(),
                                                                                     p.name.casefold())):
                return p.value
        if isinstance(value, int) and not known:
            return value  # a hand-built snapshot without the server's list: take the number as given
        names = ", ".join(f"{p.keyword} ({p.name}, {p.value})" for p in known)
        raise self.error(f"{self.where}.priorities[{i}]", f"no priority {value!r} on the server; priorities: {names}")


def project_phid(snapshot: Snapshot, ident: str) -> str | None:
    """A project identifier of the config -> PHID, from what the snapshot knows (None: unknown)."""
    if ident.startswith("PHID-"):
        return ident
    if ident in snapshot.project_aliases:
        return snapshot.project_aliases[ident]
    for board in snapshot.boards.values():
        if ident.startswith("#"):
            if board.slug and ident[1:].casefold() == board.slug.casefold():
                return board.phid
        elif ident.casefold() == board.name.casefold():
            return board.phid
    return None


@dataclass(frozen=True)
class Exempt:
    """An exemption bound to one snapshot: PHIDs and priority values. ``reason(task)`` says why
    a task is exempt ("tag #clinicbot-ignore"), None when it is not."""

    projects: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    priorities: frozenset[int] = frozenset()
    subtypes: frozenset[str] = frozenset()
    tasks: frozenset[int] = frozenset()
    names: Mapping[str, str] = field(default_factory=dict)  # project PHID -> the name the config gave

    def reason(self, task: Task) -> str | None:
        if task.id in self.tasks:
            return f"task {task.monogram}"
        if task.priority in self.priorities:
            return f"priority {task.priority_name or task.priority}"
        if task.subtype in self.subtypes:
            return f"subtype {task.subtype}"
        for phid in sorted(self.tags):
            if phid in task.project_phids:
                return f"tag {self.names.get(phid, phid)}"
        for phid in sorted(self.projects):
            if phid in task.project_phids or phid in task.columns:
                return f"project {self.names.get(phid, phid)}"
        return None

    def covers(self, task: Task) -> bool:
        return self.reason(task) is not None

    def covers_finding(self, snapshot: Snapshot, task_phid: str | None, task_id: int | None) -> str | None:
        """Why a finding about this task must not fire (None: it may)."""
        task = snapshot.tasks.get(task_phid) if task_phid else None
        if task is not None:
            return self.reason(task)
        if task_id is not None and task_id in self.tasks:
            return f"task T{task_id}"
        return None


# -- the config --------------------------------------------------------------------------------


def _strings(value: Any, where: str, error: Error, what: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise error(where, f"must be a list of {what}, not {value!r}")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise error(f"{where}[{i}]", f"must be {what[:-1] if what.endswith('s') else what}, not {item!r}")
    return tuple(item.strip() for item in value)


def _priorities(value: Any, where: str, error: Error) -> tuple[str | int, ...]:
    if not isinstance(value, list):
        raise error(where, f"must be a list of priorities (keyword, name or value), not {value!r}")
    out: list[str | int] = []
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, (str, int)) or (isinstance(item, str) and not item.strip()):
            raise error(f"{where}[{i}]", f"must be a priority keyword, name or value, not {item!r}")
        out.append(int(item) if isinstance(item, str) and item.strip().lstrip("-").isdigit()
                   else item.strip() if isinstance(item, str) else item)
    return tuple(out)


def _tasks(value: Any, where: str, error: Error) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise error(where, f"must be a list of tasks like T123, not {value!r}")
    out = []
    for i, item in enumerate(value):
        match = _TASK.match(str(item).strip()) if isinstance(item, (str, int)) and not isinstance(item, bool) else None
        if match is None:
            raise error(f"{where}[{i}]", f"must be a task like T123 (or its number), not {item!r}")
        out.append(int(match.group(1)))
    return tuple(out)


def parse_exempt(value: Any, where: str, error: Error | None = None) -> Exemptions:
    """``checks.<slug>.exempt`` -> :class:`Exemptions` (shape only; names resolve per run)."""
    error = error or _default_error
    if value is None:
        return Exemptions(where=where, error=error)
    if not isinstance(value, Mapping):
        raise error(where, f"must be a mapping with any of {', '.join(EXEMPT_KEYS)}, not {value!r}")
    unknown = sorted(set(value) - set(EXEMPT_KEYS))
    if unknown:
        raise error(f"{where}.{unknown[0]}", f"unknown key; keys of exempt: {', '.join(EXEMPT_KEYS)}")
    parts: dict[str, Any] = {}
    for key in ("projects", "tags"):
        if value.get(key) is not None:
            parts[key] = _strings(value[key], f"{where}.{key}", error, "project names, #hashtags or PHIDs")
    if value.get("subtypes") is not None:
        parts["subtypes"] = _strings(value["subtypes"], f"{where}.subtypes", error, "subtype keys")
    if value.get("priorities") is not None:
        parts["priorities"] = _priorities(value["priorities"], f"{where}.priorities", error)
    if value.get("tasks") is not None:
        parts["tasks"] = _tasks(value["tasks"], f"{where}.tasks", error)
    return Exemptions(**parts, where=where, error=error)


def unresolved_projects(section: Mapping[str, Any] | None, snapshot: Snapshot) -> list[tuple[str, str]]:
    """(config key, identifier) of every project the ``checks:`` section's exemptions name that
    ``snapshot`` cannot resolve by itself (not a PHID, not a watched board): what the job must
    look up on the server and put in ``Snapshot.project_aliases``. The section is the validated
    raw mapping (``config.section("checks")``)."""
    wanted: list[tuple[str, str]] = []
    for slug, raw in (section or {}).items():
        exempt = raw.get("exempt") if isinstance(raw, Mapping) else None
        if not isinstance(exempt, Mapping):
            continue
        for kind in PROJECT_KEYS:
            for i, ident in enumerate(exempt.get(kind) or ()):
                if isinstance(ident, str) and project_phid(snapshot, ident.strip()) is None:
                    wanted.append((f"checks.{slug}.exempt.{kind}[{i}]", ident.strip()))
    return wanted


def drop_exempt(findings: list[Any], snapshot: Snapshot | None,
                exempt: Exempt | None) -> tuple[list[Any], list[tuple[str, str]]]:
    """(findings that may fire, [(key, reason)] of those an exemption drops)."""
    if exempt is None or snapshot is None:
        return findings, []
    kept, dropped = [], []
    for finding in findings:
        why = exempt.covers_finding(snapshot, finding.task_phid, finding.task_id)
        if why is None:
            kept.append(finding)
        else:
            dropped.append((finding.key, why))
    return kept, dropped


__all__ = ["EXEMPT_KEYS", "Exempt", "Exemptions", "drop_exempt", "parse_exempt", "project_phid",
           "unresolved_projects"]
