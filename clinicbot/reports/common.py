"""What every report row shares: people, times, a task's fields, boards.

Reports are plain data (see :mod:`clinicbot.reports.digest`, :mod:`clinicbot.reports.agenda` and
:mod:`clinicbot.reports.metrics_page`): times are ISO 8601 UTC strings, durations are hours
(floats), task text is raw (templates escape it for their medium).

What people read shares one style, decided here: ages in one unit system (:func:`format_hours`:
``45m``, ``5h 10m``, ``16d``; check summaries are restated in it by :func:`restate_ages`), people
by the server's display name (:func:`display_name`: ``Carol Chen (@carol)``, never
``carol (carol)``), and long sections cut at a cap with "and N more" linking to the rest
(:class:`RowCaps`, :func:`cap_section`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping, Sequence

from clinicbot.stats import hours_between
from clinicbot.model import Column, Person, Snapshot, Task, iso

DIGEST_LOOKBACK = timedelta(hours=24)  # "since the last digest" when no digest was delivered yet
EXCERPT_CHARS = 200
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


MORE_LINK_IDS = 100  # an "and N more" link lists at most this many task ids (URLs stay short)


# --------------------------------------------------------------------------------------------
# People


def display_name(username: str | None, real_name: str | None = "") -> str:
    """``Carol Chen (@carol)`` when the server (or the rotation) knows a name other than the
    username, else just ``carol``; never ``carol (carol)``. Templates pass it through their
    medium's filter, which breaks the ``@`` (no ping) like every other ``@`` in task text."""
    username = username or ""
    name = " ".join((real_name or "").split())
    if not username:
        return name
    if not name or name.casefold() in (username.casefold(), "@" + username.casefold()):
        return username
    return f"{name} (@{username})"


def real_names(snapshot: Snapshot | None, rotation: Any = None) -> dict[str, str]:
    """username -> display name: the server's (user.search ``realName``), else the rotation file's
    (members, manager, product manager), for those that have one."""
    names: dict[str, str] = {}
    if rotation is not None:
        people_in_file = [*(getattr(rotation, "members", None) or {}).values(),
                          getattr(rotation, "manager", None), getattr(rotation, "product_manager", None)]
        for m in people_in_file:
            if m is not None and getattr(m, "name", "") and m.name != m.username:
                names[m.username] = m.name
    if snapshot is not None:
        names.update({u.username: u.real_name for u in snapshot.users.values() if u.real_name})
    return names


def people(names: Mapping[str, str], usernames: Iterable[str | None]) -> dict[str, str]:
    """username -> how reports show them (:func:`display_name`), for every username given;
    ``names``: :func:`real_names`."""
    return {u: display_name(u, names.get(u)) for u in sorted({u for u in usernames if u})}


def person(member: Any, names: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """A rotation Member (or anything with .username/.name/.email/.chat) as plain data.

    ``names``: the server's display names (:func:`real_names`); the server's name wins over the
    rotation file's. ``name`` is the username when neither gives one (as ``Person.to_dict``);
    templates show ``{{ p|who }}``: ``Carol Chen (@carol)``, or ``carol`` alone."""
    if member is None:
        return None
    real = (names or {}).get(member.username) or getattr(member, "name", "") or ""
    return Person(member.username, real, getattr(member, "email", "") or "", getattr(member, "chat", "") or "").to_dict()


# --------------------------------------------------------------------------------------------
# Ages: one unit system


def format_hours(value: Any) -> str:
    """Hours (float) -> '16d', '3d 4h', '5h 10m', '12m'; None -> 'n/a' (an empty metric, not zero).

    THE formatter of durations in every report and medium (the ``hours`` template filter); the
    JSON keeps the hours as numbers."""
    if value is None:
        return "n/a"
    minutes = int(round(float(value) * 60))
    days, rest = divmod(max(0, minutes), 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {mins}m" if mins else f"{hours}h"
    return f"{mins}m"


# "52.3 hours", "1 hour", "16 days", "2.5 days" as check summaries write them (describe_age). Working
# hours and days are not 24-hour days: "9 working days" stays as it is.
_AGE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?) (?!working )(hours?|days?)\b")


def _restate(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        value = float(m.group(1))
        return format_hours(value * 24 if m.group(2).startswith("day") else value)

    return _AGE.sub(one, text)


def restate_ages(summary: str, keep: Sequence[str] = ()) -> str:
    """A check's summary with its wall-clock ages in the reports' unit system ("has waited 384.6
    hours" -> "has waited 16d"). The strings in ``keep`` (the task's title: task text is data) are
    left exactly as they are."""
    pieces: list[tuple[str, bool]] = [(summary, False)]  # (text, kept as it is)
    for literal in (k for k in keep if k):
        split: list[tuple[str, bool]] = []
        for text, kept in pieces:
            if kept:
                split.append((text, True))
                continue
            for i, outside in enumerate(text.split(literal)):
                if i:
                    split.append((literal, True))
                split.append((outside, False))
        pieces = split
    return "".join(text if kept else _restate(text) for text, kept in pieces)


# --------------------------------------------------------------------------------------------
# Sections that scale: a cap and "and N more"


@dataclass(frozen=True)
class RowCaps:
    """How many rows a report section shows: ``default``, or ``sections[key]`` for that section
    (a builtin section's key, ``inbox``, or a listed check's slug); 0 shows every row."""

    default: int = 20
    sections: Mapping[str, int] = field(default_factory=dict)

    def limit(self, key: str) -> int:
        return int(self.sections.get(key, self.default))


def more_link(base_url: str, ids: Sequence[int]) -> dict[str, str]:
    """Where "and N more" leads: a Maniphest query of the tasks left out (Phorge builds a query
    from GET parameters: ``/maniphest/?ids=4,5,6``; at most :data:`MORE_LINK_IDS` ids). ``path``
    is for Remarkup (a relative link, like task links), ``url`` for every other medium ("" when
    the server's URL is unknown: the text then has no link)."""
    if not ids:
        return {"path": "", "url": ""}
    path = "/maniphest/?ids=" + ",".join(str(i) for i in ids[:MORE_LINK_IDS])
    return {"path": path, "url": base_url.rstrip("/") + path if base_url else ""}


def cap_rows(rows: list[dict[str, Any]], limit: int, base_url: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The rows a section shows (the first ``limit``; all when ``limit`` is 0) and, when some are
    left out, ``{"count", "path", "url"}`` for its "and N more" line."""
    if not limit or len(rows) <= limit:
        return rows, None
    hidden = list(dict.fromkeys(int(r["id"]) for r in rows[limit:] if r.get("id") is not None))
    return rows[:limit], {"count": len(rows) - limit, **more_link(base_url, hidden)}


def capped(data: dict[str, Any], key: str, rows: list[dict[str, Any]], caps: RowCaps) -> list[dict[str, Any]]:
    """``rows`` cut at the section's cap; ``data["totals"][key]`` keeps the count, and
    ``data["more"][key]`` the "and N more" line when rows were left out."""
    shown, more = cap_rows(rows, caps.limit(key), str(data.get("base_url") or ""))
    data.setdefault("totals", {})[key] = len(rows)
    if more is not None:
        data.setdefault("more", {})[key] = more
    return shown


def hours(start: datetime, end: datetime) -> float:
    return round(hours_between(start, end), 2)


def task_row(snapshot: Snapshot, task: Task) -> dict[str, Any]:
    """The fields every report row shows about a task."""
    fields = snapshot.task_fields(task)
    return {**fields, "author": fields["author"] or None, "owner": fields["owner"] or None, "id": task.id,
            "priority_value": task.priority, "created": iso(task.created), "age_hours": hours(task.created, snapshot.now)}


def unique_tasks(pairs: Iterable[tuple[Task, Column]]) -> list[tuple[Task, list[Column]]]:
    """A task in the inbox of two boards is one row naming both boards."""
    out: dict[str, tuple[Task, list[Column]]] = {}
    for task, col in pairs:
        out.setdefault(task.phid, (task, []))[1].append(col)
    return list(out.values())


def board_name(snapshot: Snapshot, col: Column) -> str:
    board = snapshot.boards.get(col.board_phid)
    return board.name if board else col.board_phid

