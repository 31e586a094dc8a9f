"""How the sync cache stores its rows: timelines as their parsed events, tasks as parsed rows, the
board structure (:mod:`clinicbot.state.cache` holds the SQLite store that keeps them)."""

from __future__ import annotations

import gc
import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, make_dataclass
from datetime import datetime, timezone
from operator import attrgetter
from typing import Any, Callable, Iterable, Iterator, Mapping

from clinicbot.model import Board, Column, Priority, Status

# --------------------------------------------------------------------------------------------
# Timeline (de)serialisation
#
# Timelines are stored as their parsed events, not as the raw transaction items: the raw items
# are several times larger (comment text versions, full edge lists, policy fields) and
# fetch_timelines hands out only the parsed form. The price: a change in history.py's parsing
# (or timeline.py's events) must invalidate the cache, so the history fingerprint (below) is part of the cache identity.



_EVENT_FIELDS: list[str] = []


def _event_fields() -> list[str]:
    if not _EVENT_FIELDS:
        from clinicbot.timeline import Event

        _EVENT_FIELDS.extend(f.name for f in fields(Event))
    return _EVENT_FIELDS


_BUILDERS: dict[type, Any] = {}


def row_builder(cls: type) -> Any:
    """``row -> cls(*row)`` for a frozen dataclass whose rows hold every field in order, built
    without the frozen ``__init__`` (one ``object.__setattr__`` per field: 2.4 µs an event, half
    of the parsing of a history): a slotted class is filled as a plain twin with the same slots
    and then given its own class (CPython allows it for equal slot layouts); a class with a
    ``__dict__`` gets the fields in it. The result is an ordinary, still frozen, ``cls`` instance
    (equal to ``cls(*row)``: tests compare them). Classes with ``__post_init__`` use ``cls(*row)``."""
    build = _BUILDERS.get(cls)
    if build is None:
        build = _BUILDERS[cls] = _make_builder(cls)
    return build


def _make_builder(cls: type) -> Any:
    names = [f.name for f in fields(cls)]
    if hasattr(cls, "__post_init__"):
        return lambda row: cls(*row)
    if "__slots__" not in cls.__dict__:
        new, count = object.__new__, len(names)

        def filled(row: list[Any]) -> Any:
            if len(row) != count:
                return cls(*row)  # defaults, or the constructor's own error
            obj = new(cls)
            obj.__dict__.update(zip(names, row))
            return obj

        return filled
    twin = make_dataclass(f"_{cls.__name__}Row", names, slots=True, eq=False, repr=False, match_args=False)

    def swapped(row: list[Any]) -> Any:
        obj = twin(*row)
        obj.__class__ = cls
        return obj

    try:  # a layout CPython will not swap (another clinicbot's Event?): the plain constructor
        swapped([None] * len(names))
    except TypeError:
        return lambda row: cls(*row)
    return swapped


_FAST_INDICES: list[tuple[int, ...]] = []


def _fast_indices(names: list[str]) -> tuple[int, ...]:
    """Where load_timeline's fast path finds its fields in rows of the current Event fields."""
    if not _FAST_INDICES:
        _FAST_INDICES.append(tuple(names.index(n) for n in ("kind", "at", "author_phid", "old", "new", "board_phid",
                                                            "column_phid", "from_column_phids")))
    return _FAST_INDICES[0]


def _unplain(value: Any) -> Any:
    # Event payloads hold tuples (PHID lists), never lists: JSON lists come back as tuples.
    if isinstance(value, list):
        return tuple(_unplain(v) for v in value)
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()  # tuples are JSON lists already
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# One compact encoder for every row (a cold sync writes a task and a timeline per task): the C
# encoder with datetimes as epoch seconds, without a Python pass per field.
_ENCODE = json.JSONEncoder(separators=(",", ":"), default=_json_default).encode
_GETTERS: dict[str, Any] = {}


def _getter(kind: str, names: list[str]) -> Any:
    """A fast ``obj -> tuple of the named fields`` (attrgetter returns a bare value for one name)."""
    get = _GETTERS.get(kind)
    if get is None:
        one = attrgetter(names[0])
        get = _GETTERS[kind] = attrgetter(*names) if len(names) > 1 else (lambda obj: (one(obj),))
    return get


def dump_timeline(timeline: Any) -> str:
    """A Timeline, or a phab.history.EventRows (its ``rows`` are the Event fields in order already)."""
    names = _event_fields()
    events = getattr(timeline, "rows", None)
    if events is None:
        get = _getter("event", names)
        events = [get(e) for e in timeline.events]
    return _ENCODE({"f": names, "s": timeline.structured_columns, "u": timeline.unreadable, "e": events})


class Shared(dict):
    """One copy of each repeated value (PHIDs, kinds, statuses, times) across the rows of one job.

    JSON decoding makes a new string for every occurrence: at 100,000 tasks the same few hundred
    user, project and column PHIDs were held hundreds of thousands of times. ``times`` maps the
    stored epoch seconds to their (shared) datetime: events of one edit share a time."""

    def __init__(self) -> None:
        super().__init__()
        self.times: dict[float, datetime] = {}


_SCAN = json.JSONDecoder().scan_once


def parse_row(text: str) -> Any:
    """``json.loads`` of a row this module wrote (no surrounding whitespace): the C scanner called
    directly, without json.loads' two whitespace matches per row; anything else goes to json.loads
    (which raises its usual error for a damaged row)."""
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while rows are turned into objects (tasks, events and their
    tuples and times hold no cycles): with ~1M objects alive, the collector's passes over them
    were a quarter of the parsing time at 100,000 tasks."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def load_timeline(task_phid: str, task_id: int, text: str, shared: Shared | None = None) -> Any:
    from clinicbot.timeline import Event, Timeline

    data = parse_row(text)
    names = data["f"]
    structured, unreadable = bool(data["s"]), int(data.get("u") or 0)
    if names == _event_fields():
        # The fast path (a 100,000-task cache holds ~1M events): positional construction, and
        # only the fields that can hold tuples are converted back from JSON lists. The events
        # were stored in the Timeline's order, so they are not sorted again.
        kind_i, at_i, author_i, old_i, new_i, board_i, column_i, from_i = _fast_indices(names)
        stamp, utc = datetime.fromtimestamp, timezone.utc
        shared = shared if shared is not None else Shared()
        same, times = shared.setdefault, shared.times  # a value, or the equal one seen first
        build = row_builder(Event)
        events = []
        for row in data["e"]:
            v = row[at_i]
            at = times.get(v)
            if at is None:
                at = stamp(v, utc)
                at = times[v] = same(at, at)
            row[at_i] = at
            v = row[kind_i]
            row[kind_i] = same(v, v)
            v = row[author_i]
            if v is not None:
                row[author_i] = same(v, v)
            v = row[board_i]
            if v is not None:
                row[board_i] = same(v, v)
                v = row[column_i]
                row[column_i] = same(v, v)
            v = row[from_i]
            if v.__class__ is list:
                row[from_i] = tuple([same(p, p) for p in v]) if v else ()  # flat PHID lists
            v = row[old_i]
            if v.__class__ is list:
                row[old_i] = tuple([same(p, p) for p in v]) if v else ()
            v = row[new_i]
            if v.__class__ is list:
                row[new_i] = tuple([same(p, p) for p in v]) if v else ()
            events.append(build(row))
        return Timeline.from_sorted(task_phid, task_id, tuple(events), structured_columns=structured,
                                    unreadable=unreadable)
    # Written by another clinicbot version with other Event fields (still readable by name).
    known = set(_event_fields())
    old = []
    for row in data["e"]:
        values = {k: _unplain(v) for k, v in zip(names, row) if k in known}
        values["at"] = datetime.fromtimestamp(values["at"], tz=timezone.utc)
        old.append(Event(**values))
    return Timeline(task_phid, task_id, tuple(old), structured_columns=structured, unreadable=unreadable)


class LazyTimelines(Mapping[str, Any]):
    """task PHID -> Timeline, each parsed from its cached text when first read.

    A job reads the timelines of the tasks its checks or reports look at, often far fewer than
    it loads (a digest reads none of most tasks' histories): parsing every one up front was
    most of a warm job's time at 10,000 tasks.

    With a ``reader`` (``phids -> (phid, text) pairs`` from the cache), the texts are not even
    held: ``rows`` maps each PHID to its task id only, and a text is read from the cache when its
    timeline is first read (with the next :attr:`BATCH` unread ones in task order), or for a
    given list at once by :meth:`prefetch` (the metrics load ~80,000 tasks at 100,000 and read
    ~45,000 histories: holding every text was ~130 MB). A history the cache no longer holds when
    it is read (a concurrent rebuild) reads as missing (``get`` -> None).
    """

    BATCH = 256  # texts read together when a timeline not prefetched is read (one cache open each)

    def __init__(self, rows: Mapping[str, tuple[int, str] | int],
                 reader: Callable[[list[str]], Iterable[tuple[str, str]]] | None = None):
        # phid -> (task id, text), or the task id (text still in the cache), or the parsed Timeline
        self._items: dict[str, Any] = dict(rows)
        self._reader = reader
        self._next = iter(list(self._items))  # where the next batch of unread texts starts
        self._shared = Shared()  # the PHIDs, kinds and times the parsed timelines share

    def __getitem__(self, phid: str) -> Any:
        item = self._items[phid]
        if item.__class__ is int:
            self._read_batch(phid)
            item = self._items[phid]
            if item.__class__ is int:
                raise KeyError(phid)
        if isinstance(item, tuple):
            item = self._items[phid] = load_timeline(phid, item[0], item[1], self._shared)
        return item

    def get(self, phid: str, default: Any = None) -> Any:  # type: ignore[override]
        # The metrics ask ~100,000 times at 100,000 tasks: a parsed timeline straight from the dict.
        item = self._items.get(phid)
        if item is None:
            return default
        if item.__class__ is int or item.__class__ is tuple:
            try:
                return self[phid]
            except KeyError:
                return default
        return item

    def _read_batch(self, phid: str) -> None:
        """The text of ``phid`` and of the next unread ones in task order (a check reading the
        histories of tasks one by one, in the order they were loaded, opens the cache once per
        batch, not per task); parsed when read, as the texts held by the loader were."""
        if self._reader is None:
            return
        items = self._items
        batch = [phid]
        for other in self._next:
            if other != phid and items[other].__class__ is int:
                batch.append(other)
                if len(batch) >= self.BATCH:
                    break
        for p, text in self._reader(batch):
            task_id = items.get(p)
            if task_id.__class__ is int:
                items[p] = (task_id, text)

    def prefetch(self, phids: Iterable[str]) -> int:
        """Read and parse the timelines of ``phids`` not read yet, in one pass over the cache; how
        many were read. Unknown PHIDs are ignored; without a reader (texts held) nothing to do."""
        items = self._items
        wanted = [p for p in phids if items.get(p).__class__ is int]
        if not wanted or self._reader is None:
            return 0
        done = 0
        with gc_paused():
            for phid, text in self._reader(wanted):
                task_id = items.get(phid)
                if task_id.__class__ is int:
                    items[phid] = load_timeline(phid, task_id, text, self._shared)
                    done += 1
        return done

    def __contains__(self, phid: object) -> bool:
        return phid in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def parsed(self) -> int:
        """How many timelines were parsed so far (tests count them)."""
        return len(self.parsed_phids())

    def parsed_phids(self) -> set[str]:
        """The tasks whose timelines were parsed so far (tests check which)."""
        return {p for p, v in self._items.items() if not isinstance(v, (tuple, int))}


# --------------------------------------------------------------------------------------------
# Task (de)serialisation: the parsed task, not the raw maniphest.search item
#
# Parsing a raw item again on every load (shape checks included) was a third of a warm job's
# time; the stored row is the Task's fields in order, checked once when the page arrived. A
# change of the Task fields or of boards.py's parsing changes the cache fingerprint (full sync).
# Whether a task is closed is decided on load, from the server's statuses as they are now.


_DATE_FIELDS = ("created", "modified", "closed_at")


_TASK_FIELDS: list[str] = []


def task_fields() -> list[str]:
    if not _TASK_FIELDS:
        from clinicbot.model import Task

        _TASK_FIELDS.extend(f.name for f in fields(Task))
    return list(_TASK_FIELDS)


def dump_task(task: Any) -> str:
    return _ENCODE(_getter("task", _TASK_FIELDS or task_fields())(task))


def task_loader(statuses: Mapping[str, Status]) -> Any:
    """``load(text) -> Task`` for rows written by :func:`dump_task` (same Task fields: the fingerprint)."""
    from clinicbot.model import Task
    from clinicbot.phab.boards import status_is_closed

    names = task_fields()
    dates = [names.index(n) for n in _DATE_FIELDS]
    tuples = [names.index(n) for n in ("project_phids", "subscriber_phids")]
    status_i, closed_i, closed_at_i = names.index("status"), names.index("is_closed"), names.index("closed_at")
    same_i = [names.index(n) for n in ("status", "status_name", "priority_name", "author_phid", "owner_phid",
                                       "subtype")]
    columns_i = names.index("columns")
    utc, stamp = timezone.utc, datetime.fromtimestamp
    shared = Shared()
    same = shared.setdefault  # a value, or the equal one seen first
    build = row_builder(Task)

    def load(text: str) -> Task:
        row = parse_row(text)
        for i in dates:
            if row[i] is not None:
                row[i] = stamp(row[i], utc)
        for i in tuples:
            row[i] = tuple([same(v, v) for v in row[i]])
        for i in same_i:
            v = row[i]
            row[i] = same(v, v)
        row[columns_i] = {same(b, b): same(c, c) for b, c in row[columns_i].items()}
        row[closed_i] = status_is_closed(statuses, row[status_i], row[closed_at_i])
        return build(row)

    return load


# --------------------------------------------------------------------------------------------
# Board structure (de)serialisation: what an incremental sync needs without asking the server


@dataclass
class Structure:
    boards: list[Board]
    statuses: tuple[Status, ...]
    priorities: tuple[Priority, ...]
    batch_history: bool  # the server has maniphest.gettasktransactions

    def column_phids(self) -> list[str]:
        return sorted({c.phid for b in self.boards for c in b.columns})

    def proxies(self) -> dict[str, Column]:
        return {c.proxy_phid: c for b in self.boards for c in b.columns if c.proxy_phid}

    def dumps(self) -> str:
        return json.dumps({
            "boards": [{**asdict(b), "columns": [asdict(c) for c in b.columns]} for b in self.boards],
            "statuses": [asdict(s) for s in self.statuses],
            "priorities": [asdict(p) for p in self.priorities],
            "batch_history": self.batch_history,
        })

    @classmethod
    def loads(cls, text: str) -> "Structure":
        data = json.loads(text)
        boards = [Board(phid=b["phid"], name=b["name"], slug=b["slug"],
                        columns=tuple(Column(**c) for c in b["columns"])) for b in data["boards"]]
        return cls(boards=boards, statuses=tuple(Status(**s) for s in data["statuses"]),
                   priorities=tuple(Priority(**p) for p in data["priorities"]),
                   batch_history=bool(data["batch_history"]))
