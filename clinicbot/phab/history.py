"""A task's transaction history as a timeline of events.

Two Conduit methods describe a task's history, in different shapes:

* ``transaction.search`` (one task per call, newest first, paged with ``cursor.after``):
  Conduit-friendly types (``create``, ``comment``, ``owner``, ``core:columns``, …) and
  ``fields``; comment text in ``comments[].content.raw``; transactions the server does not
  expose come back as ``type: null`` with ``fields: {}``.
* ``maniphest.gettasktransactions`` (legacy, frozen; many tasks per call, no paging):
  an object keyed by task id *string*, raw internal types (``core:comment``, ``reassign``,
  ``core:edge``, …), full old/new lists for edges, string ids and epochs, priorities as
  strings, comment text (or null) in ``comments``.

Both are reduced to the same :class:`Timeline`. Where one form lacks a detail, both are cut
down to what both can give:

* Subscribers and projects are *changes*: ``new`` = sorted tuple of PHIDs added, ``old`` =
  sorted tuple removed. (The legacy form sends whole before/after lists, transaction.search
  sends operations; sorting makes both orders agree.) An edit that changes neither is dropped.
* Task relations (parents, subtasks, "unblock") and "mentioned in" edges are dropped from
  both: transaction.search sends some of them typed (``dependsOn``) and others as ``type:
  null`` (a parent set at creation, mentions), the legacy form sends all of them as
  ``core:edge``, so no common form exists. ``edge.search`` is the source for relations.
* A removed comment is dropped (transaction.search blanks its text and sets ``removed``; the
  legacy form sends an empty string).
* Comment times are the transaction's time (the comment's own ``dateModified`` after an edit
  exists only in transaction.search); the text is the newest version.
* Transactions neither form names usefully become ``kind="other"`` with no payload. This is
  the one place the two may still differ: a type the legacy form names (``mergedinto``,
  policy edits) may be ``type: null`` in transaction.search, which is skipped.

Timestamps are aware UTC datetimes. Events are ordered by (time, transaction id); events
from one transaction (a ``core:columns`` transaction moving the task on several boards)
keep the server's order.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from clinicbot.errors import ConduitAPIError, ConduitError
from clinicbot.model import Shape
from clinicbot.timeline import Event, Timeline

log = logging.getLogger(__name__)

PROJECT_EDGE_TYPE = 41  # PhabricatorProjectObjectHasProjectEdgeType: the only edge we model
LEGACY_METHOD = "maniphest.gettasktransactions"
SEARCH_METHOD = "transaction.search"

# Task relations, deliberately left out of the timeline (see module docstring). "unblock" is
# written on a parent when a subtask changes status: the subtask's activity, not the parent's.
# Mentions need no entry: transaction.search sends them as type null, the legacy form as core:edge.
_TS_DROPPED = frozenset({"dependsOn", "dependedOnBy", "unblock", "parent"})
_LEGACY_DROPPED = frozenset({"unblock", "parent"})  # relation edges are core:edge, dropped by edge type


# ------------------------------------------------------------------------------------------
# Value normalisation shared by both forms


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return int(float(value))  # "50.0"; anything else is a protocol surprise worth raising


def _priority(value: Any) -> int | None:
    # transaction.search: {"value": 90, "name": …}; legacy: "90"
    if isinstance(value, dict):
        value = value.get("value")
    return _int(value)


def _points(value: Any) -> float | None:
    # transaction.search and the legacy form send numbers here, maniphest.search sends strings.
    if value is None or value == "":
        return None
    result = float(value)
    return None if math.isnan(result) else result


def _phids(value: Any) -> list[str]:
    """A PHID list, or a {phid: …} map (raw edge storage), as a list of PHIDs."""
    if not value:
        return []
    if isinstance(value, dict):
        return [str(k) for k in value]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


# ------------------------------------------------------------------------------------------
# Events as rows
#
# The parsers build each event as a plain tuple of the Event fields in their order, with ``at`` in
# epoch seconds: a frozen dataclass took ~5 µs to build and a 100,000-task cold sync parses ~850,000
# events only to store them. The sync stores the rows as they are (state.cache_rows.dump_timeline);
# everyone else gets a Timeline (EventRows.timeline). tests/test_history.py checks the order.

Row = tuple  # (kind, at, author_phid, xaction_id, group_id, old, new, board_phid, column_phid,
#              from_column_phids, text, approximate)
Base = tuple  # (at, author_phid, xaction_id, group_id): what the events of one transaction share


def _row(kind: str, base: Base, old: Any = None, new: Any = None, board: str | None = None,
         column: str | None = None, from_columns: tuple[str, ...] = (), text: str | None = None) -> Row:
    return (kind, base[0], base[1], base[2], base[3], old, new, board, column, from_columns, text, False)


def _row_key(row: Row) -> tuple[float, int]:
    return (row[1], row[3] if row[3] is not None else 0)  # Timeline's order: (time, transaction id)


@dataclass
class EventRows:
    """One task's history as parsed: ``rows`` sorted as a Timeline sorts its events."""

    task_phid: str
    task_id: int
    rows: list[Row]
    structured_columns: bool = True
    unreadable: int = 0

    def timeline(self) -> Timeline:
        stamp, utc = datetime.fromtimestamp, timezone.utc
        events = tuple(Event(r[0], stamp(r[1], utc), *r[2:]) for r in self.rows)
        return Timeline.from_sorted(self.task_phid, self.task_id, events,
                                    structured_columns=self.structured_columns, unreadable=self.unreadable)


def _column_events(base: Base, moves: Any) -> list[Row]:
    """``core:columns`` ``new``: one entry per board. ``fromColumnPHIDs`` is a map, or ``[]``
    on the first placement (PHP encodes an empty map as a list)."""
    events = []
    for move in moves if isinstance(moves, list) else []:
        if not isinstance(move, dict) or not move.get("columnPHID"):
            continue
        events.append(_row("column", base, board=move.get("boardPHID"), column=move["columnPHID"],
                           from_columns=tuple(sorted(_phids(move.get("fromColumnPHIDs"))))))
    return events


def _change(kind: str, base: Base, added: Iterable[str], removed: Iterable[str]) -> list[Row]:
    added_t, removed_t = tuple(sorted(set(added))), tuple(sorted(set(removed)))
    if not added_t and not removed_t:
        return []  # a no-op edit: nothing happened
    return [_row(kind, base, old=removed_t, new=added_t)]


def _diff(kind: str, base: Base, old: Any, new: Any) -> list[Row]:
    old_set, new_set = set(_phids(old)), set(_phids(new))
    return _change(kind, base, new_set - old_set, old_set - new_set)


def _dedupe(items: Iterable[Any], shape: Shape) -> list[dict[str, Any]]:
    # Pages may overlap if a caller concatenates retries; a transaction id is unique.
    seen: set[Any] = set()
    out = []
    for item in items:
        if not isinstance(item, dict):
            shape.fail("data[]", item, "a transaction object")
        key = item.get("id", item.get("transactionID"))
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        out.append(item)
    return out


# ------------------------------------------------------------------------------------------
# transaction.search


def _ts_comment_text(item: dict[str, Any]) -> str | None:
    """Newest version of the comment, or None if there is none or it was removed."""
    comments = [c for c in item.get("comments") or [] if isinstance(c, dict)]
    if not comments:
        return None
    newest = max(comments, key=lambda c: _int(c.get("version")) or 0)
    if newest.get("removed"):
        return None
    text = (newest.get("content") or {}).get("raw")
    return text or None  # a removed comment's text is blanked


_EPOCH_MAX = 2**33  # year 2242: a larger "epoch" is a protocol surprise, left to Shape.epoch to name


def _base(shape: Shape, item: dict[str, Any], id_key: str, group_id: Any) -> Base:
    """What every event of one transaction shares; the shapes the timeline relies on are checked.

    The usual shapes (ids and epochs as numbers or digit strings, a PHID author) pass without
    building an error text; anything else goes through Shape, which names the transaction and field."""
    xid, at = item.get(id_key), item.get("dateCreated")
    author, group = item.get("authorPHID") or None, group_id or None
    if xid.__class__ is str and xid.isdecimal():
        xid = int(xid)
    if at.__class__ is str and at.isdecimal():
        at = int(at)
    if (xid.__class__ is int and at.__class__ is int and 0 <= at < _EPOCH_MAX
            and (author is None or (author.__class__ is str and author.startswith("PHID-")))
            and (group is None or group.__class__ is str)):
        return (float(at), author, xid, group)
    xid = shape.integer(item.get(id_key), id_key, optional=True)
    where = f"transaction {xid}" if xid is not None else "a transaction"
    when = shape.epoch(item.get("dateCreated"), f"{where} dateCreated")
    assert when is not None
    return (when.timestamp(),
            shape.phid(item.get("authorPHID") or None, f"{where} authorPHID", optional=True),
            xid,
            shape.text(group_id or None, f"{where} group id", optional=True))


def _ts_events(item: dict[str, Any], shape: Shape) -> tuple[list[Row], bool]:
    """Events of one transaction.search item, and whether it was an unreadable ``type: null``."""
    base = _base(shape, item, "id", item.get("groupID"))
    where = f"transaction {base[2]}"
    kind = shape.text(item.get("type"), f"{where} type", optional=True)  # missing altogether on old servers
    fields = shape.mapping(item.get("fields") or {}, f"{where} fields", empty_list=True)
    shape.items(item.get("comments"), f"{where} comments", optional=True)
    old, new = fields.get("old"), fields.get("new")

    if kind is None:
        # Old servers type nothing, but still attach comment text: keep the comment.
        text = _ts_comment_text(item)
        if text is not None:
            return [_row("commented", base, text=text)], False
        return [], not item.get("comments")  # a removed untyped comment is not "unreadable"
    if kind == "create":
        return [_row("created", base)], False
    if kind == "comment":
        text = _ts_comment_text(item)
        return ([_row("commented", base, text=text)] if text is not None else []), False
    if kind in ("title", "description", "status"):
        return [_row(kind, base, old, new)], False
    if kind == "priority":
        return [_row("priority", base, _priority(old), _priority(new))], False
    if kind == "owner":
        return [_row("owner", base, old or None, new or None)], False
    if kind == "points":
        return [_row("points", base, _points(old), _points(new))], False
    if kind == "core:columns":
        return _column_events(base, new), False
    if kind in ("projects", "subscribers"):
        ops = [op for op in fields.get("operations") or [] if isinstance(op, dict) and op.get("phid")]
        return _change(kind, base, [op["phid"] for op in ops if op.get("operation") == "add"],
                       [op["phid"] for op in ops if op.get("operation") == "remove"]), False
    if kind in _TS_DROPPED:
        return [], False
    return [_row("other", base)], False


def timeline_from_transaction_search(task_phid: str, task_id: int, items: list[dict]) -> Timeline:
    """Build a timeline from ``transaction.search`` items (any order; all pages concatenated)."""
    return rows_from_transaction_search(task_phid, task_id, items).timeline()


def rows_from_transaction_search(task_phid: str, task_id: int, items: list[dict]) -> EventRows:
    """The events of ``transaction.search`` items (any order; all pages concatenated).

    ``structured_columns`` rule. Modern servers send column moves as ``core:columns``; old
    ones sent them as ``type: null`` (and also projects/subscribers). The flag is False — the
    timeline cannot tell when the task entered a column — only when all of these hold:

    * no column event could be read, and
    * at least one transaction came back ``type: null`` with nothing readable, and
    * the history shows the task tagged with a project, or shows no project transaction at all
      (a server that hides column moves may hide tags too).

    A task with column events, or one never on a board, keeps True. Known false positive: on a
    modern server, a task tagged *after* creation (no placement transaction is written then),
    never moved, with a mention or parent link (``type: null``). Its entry time then comes
    from sightings instead of the tag time; both are the time it arrived in the default column,
    give or take clinicbot's polling interval.
    """
    events: list[Row] = []
    unreadable = 0
    shape = Shape(SEARCH_METHOD, f"T{task_id}")
    for item in _dedupe(items, shape):
        try:
            got, bad = _ts_events(item, shape)
        except (TypeError, ValueError, AttributeError):  # a value of the wrong type inside fields/comments
            shape.fail(f"transaction {item.get('id')} fields", item.get("fields"), f"the fields of a {item.get('type')!r}")
        events.extend(got)
        unreadable += bad
    # Items arrive newest first; sorted by (time, id) as a Timeline sorts, keeping the order of
    # events from one transaction as the server listed them (a stable sort).
    events.sort(key=_row_key)
    has_columns = any(e[0] == "column" for e in events)
    project_events = [e for e in events if e[0] == "projects"]
    tagged = any(e[6] for e in project_events)  # [6]: new, the projects added
    structured = not (not has_columns and unreadable and (tagged or not project_events))
    return EventRows(task_phid, int(task_id), events, structured_columns=structured, unreadable=unreadable)


# ------------------------------------------------------------------------------------------
# maniphest.gettasktransactions (legacy)


def _legacy_events(item: dict[str, Any], shape: Shape) -> list[Row]:
    meta = shape.mapping(item.get("meta") or {}, "meta", empty_list=True)
    base = _base(shape, item, "transactionID", meta.get("core.groupID"))
    kind = shape.text(item.get("transactionType"), f"transaction {base[2]} transactionType", optional=True)
    old, new = item.get("oldValue"), item.get("newValue")

    if kind == "core:create":
        return [_row("created", base)]
    if kind == "core:comment":
        text = item.get("comments")
        return [_row("commented", base, text=text)] if text else []  # "" = removed
    if kind in ("title", "description", "status"):
        return [_row(kind, base, old, new)]
    if kind == "priority":
        return [_row("priority", base, _priority(old), _priority(new))]
    if kind == "reassign":
        return [_row("owner", base, old or None, new or None)]
    if kind == "points":
        return [_row("points", base, _points(old), _points(new))]
    if kind == "core:columns":
        return _column_events(base, new)
    if kind == "projectcolumn":
        # Servers from before core:columns: {"projectPHID", "columnPHIDs": [...]} old and new.
        new_d = new if isinstance(new, dict) else {}
        old_d = old if isinstance(old, dict) else {}
        cols = _phids(new_d.get("columnPHIDs"))
        if not cols:
            return []
        return [_row("column", base, board=new_d.get("projectPHID"), column=cols[0],
                     from_columns=tuple(sorted(_phids(old_d.get("columnPHIDs")))))]
    if kind == "core:edge":
        if _int(meta.get("edge:type")) == PROJECT_EDGE_TYPE:
            return _diff("projects", base, old, new)
        return []  # relations and mentions: see module docstring
    if kind == "projects":  # pre-edge servers
        return _diff("projects", base, old, new)
    if kind in ("core:subscribers", "ccs"):
        return _diff("subscribers", base, old, new)
    if kind in _LEGACY_DROPPED:
        return []
    return [_row("other", base)]


def timeline_from_legacy(task_phid: str, task_id: int, items: list[dict]) -> Timeline:
    """Build a timeline from one task's list in a ``maniphest.gettasktransactions`` answer."""
    return rows_from_legacy(task_phid, task_id, items).timeline()


def rows_from_legacy(task_phid: str, task_id: int, items: list[dict]) -> EventRows:
    """The events of one task's list in a ``maniphest.gettasktransactions`` answer.

    The legacy form always names column moves (``core:columns``, or ``projectcolumn`` on old
    servers), so ``structured_columns`` is True.
    """
    events: list[Row] = []
    shape = Shape(LEGACY_METHOD, f"T{task_id}")
    for item in _dedupe(shape.items(items, "transactions"), shape):
        try:
            events.extend(_legacy_events(item, shape))
        except (TypeError, ValueError, AttributeError):  # a value of the wrong type in old/newValue
            shape.fail(f"transaction {item.get('transactionID')} newValue", item.get("newValue"),
                       f"the value of a {item.get('transactionType')!r}")
    events.sort(key=_row_key)
    return EventRows(task_phid, int(task_id), events)


# ------------------------------------------------------------------------------------------
# Fetching


class TaskHistoryError(ConduitError):
    """Reading the history of some tasks failed; wraps the Conduit error and names the tasks."""

    def __init__(self, method: str, task_ids: Iterable[int], cause: ConduitError):
        self.task_ids = tuple(task_ids)
        self.cause = cause
        self.code = getattr(cause, "code", None)
        names = ", ".join(f"T{i}" for i in self.task_ids[:5])
        if len(self.task_ids) > 5:
            names += f" and {len(self.task_ids) - 5} more"
        super().__init__(method, f"reading the history of {names}: {cause}")


def _is_missing_object(exc: ConduitError) -> bool:
    # The task was deleted or hidden from the bot between reading the board and its history.
    return isinstance(exc, ConduitAPIError) and exc.code == "ERR-INVALID-OBJECT-PHID"


def _fetch_one(client: Any, task_id: int, task_phid: str, rows: bool = False) -> Timeline | EventRows | None:
    try:
        items = list(client.search(SEARCH_METHOD, objectIdentifier=task_phid, limit=100))
    except ConduitError as exc:
        if _is_missing_object(exc):
            log.warning("T%s (%s) no longer exists or is not visible; no history", task_id, task_phid)
            return None
        raise TaskHistoryError(SEARCH_METHOD, [task_id], exc) from exc
    found = rows_from_transaction_search(task_phid, task_id, items)
    return found if rows else found.timeline()


def fetch_timelines(
    client: Any,
    tasks: Iterable[tuple[int, str]],
    *,
    use_batch: bool | None = None,
    batch_size: int = 100,
    concurrency: int = 4,
    rows: bool = False,
) -> dict[str, Any]:
    """Timelines of ``tasks`` (``(id, phid)`` pairs), keyed by task PHID; with ``rows``, their
    :class:`EventRows` instead (what the sync stores, without building Events).

    ``use_batch=None`` picks the legacy batch method when the server has it: one call per
    ``batch_size`` tasks instead of one (or more, when paged) per task. Otherwise one paged
    ``transaction.search`` per task, ``concurrency`` at a time (1 = sequential, in this thread).

    Tasks whose history the server does not return are **left out** of the result (not given an
    empty timeline): the batch method silently drops ids it does not know or the bot cannot
    see, and transaction.search says ERR-INVALID-OBJECT-PHID for them. Every task has at least
    a creation transaction, so "no history" means "gone", and an empty timeline would pass
    for a task with no activity. Callers use ``timelines.get(phid)``. Any other Conduit error
    raises :class:`TaskHistoryError` naming the tasks.
    """
    wanted: dict[int, str] = {}
    for task_id, task_phid in tasks:
        wanted.setdefault(int(task_id), task_phid)
    if not wanted:
        return {}
    if use_batch is None:
        use_batch = client.has_method(LEGACY_METHOD)

    out: dict[str, Any] = {}
    if use_batch:
        ids = list(wanted)
        size = max(1, batch_size)
        for start in range(0, len(ids), size):
            chunk = ids[start:start + size]
            try:
                result = client.call(LEGACY_METHOD, ids=chunk)
            except ConduitError as exc:
                raise TaskHistoryError(LEGACY_METHOD, chunk, exc) from exc
            # Keyed by id string in no particular order; PHP encodes an empty answer as [].
            by_id = Shape(LEGACY_METHOD, "result").mapping(result, "result", empty_list=True)
            for task_id in chunk:
                items = by_id.get(str(task_id))
                if items is None:
                    log.warning("T%s: %s returned no history (deleted or not visible)", task_id, LEGACY_METHOD)
                    continue
                found = rows_from_legacy(wanted[task_id], task_id, items)
                out[wanted[task_id]] = found if rows else found.timeline()
        return out

    pairs = list(wanted.items())
    results: dict[int, Any] = {}
    if concurrency <= 1 or len(pairs) == 1:
        for task_id, task_phid in pairs:
            results[task_id] = _fetch_one(client, task_id, task_phid, rows)
    else:
        pool = ThreadPoolExecutor(max_workers=min(concurrency, len(pairs)), thread_name_prefix="history")
        try:
            futures = {pool.submit(_fetch_one, client, i, p, rows): i for i, p in pairs}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
        finally:
            # On the first failure, tasks not yet started are cancelled instead of fetched for
            # nothing; the ones in flight finish (threads cannot be interrupted).
            pool.shutdown(wait=True, cancel_futures=True)
    for task_id, task_phid in pairs:  # input order, whatever order the threads finished in
        timeline = results.get(task_id)
        if timeline is not None:
            out[task_phid] = timeline
    return out
