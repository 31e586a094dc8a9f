"""The ledger: what fired, when it was handled, what was written where (TinyDB in the state directory).

Why a ledger at all: checks are pure and run every few minutes, so without memory the bot
would post the same comment every run. The ledger remembers, per finding key, an *episode*
(from the first run that saw the condition to the first run that no longer sees it), how often
it was handled and with what outcome, plus the write *intents* that make "never twice" work
across timeouts, crashes and ``kill -9``.

Durability rules (the ledger is the bot's conscience, losing it means duplicate pings):

* every write goes to a temp file, is fsync'ed, ``os.replace``'d over ``ledger.json`` and the
  directory is fsync'ed: a crash leaves either the old or the new file, never half of one;
* after each successful write the same bytes go to ``ledger.json.bak`` (the last good file);
* a corrupt or truncated ``ledger.json`` is refused at open with one line saying what to do
  (never silently replaced by an empty ledger: that would re-fire everything);
* one writer at a time: :class:`StateLock` (``fcntl.flock`` on ``clinicbot.lock``) names the PID
  holding it. Dry runs read a private in-memory copy and need no lock.

Tables: ``_meta`` (schema version), ``records`` (one per slug/task/episode), ``intents`` (write
intents and their outcomes), ``delivered`` (idempotency keys of deliveries), ``snoozes``,
``notices`` (rotation notices told once), ``todos`` (the duty TODO task of each shift). Times are stored as ISO 8601 UTC strings.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping

from tinydb import Query, TinyDB
from tinydb.storages import MemoryStorage, Storage

from clinicbot.errors import StateError
from clinicbot.model import iso, parse_iso
from clinicbot.state.fileio import atomic_write, state_error
from clinicbot.state.lock import StateLock  # the ledger takes the state lock; re-exported for its callers
from clinicbot.state.records import (  # re-exported: the ledger's callers take them from here
    SCHEMA_VERSION as SCHEMA_VERSION,
    Intent,
    Outcome,
    Record,
    Snooze,
    Todo,
    _upgrade,
    validate_tables,
)

log = logging.getLogger(__name__)

LEDGER_FILE = "ledger.json"
BACKUP_SUFFIX = ".bak"


class AtomicJSONStorage(Storage):
    """TinyDB storage: atomic replace + fsync on every write, a ``.bak`` of the last good file.

    Reads are served from memory (TinyDB reads the whole storage before every operation;
    re-reading and re-parsing the file each time made a run of a few hundred operations spend
    seconds in ``json``). The dict handed out is the cached one: TinyDB mutates it and then
    calls :meth:`write` with it; if that write fails, the cache is rebuilt from the last text
    that reached the disk. ``deferred()`` batches many writes into one when durability between
    them does not matter (e.g. updating the records of one run).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.backup = self.path.with_name(self.path.name + BACKUP_SUFFIX)
        self._data: dict[str, dict[str, Any]] | None = None
        self._durable: str | None = None  # what the file holds: the cache is rebuilt from it if a write fails
        self._loaded = False
        self._defer = 0
        self._dirty = False

    def read(self) -> dict[str, dict[str, Any]] | None:
        if not self._loaded:
            self._durable = load_json_text(self.path)
            self._data = None if self._durable is None else json.loads(self._durable)
            self._loaded = True
        return self._data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        self._data = data
        self._loaded = True
        self._dirty = True
        if not self._defer:
            self._flush()

    def _flush(self) -> None:
        assert self._data is not None
        text = json.dumps(self._data, separators=(",", ":"))
        raw = text.encode("utf-8")
        try:
            atomic_write(self.path, raw, intact=f"{self.path.name} still holds the previous run's state")
        except BaseException:
            # Memory must not claim what the disk does not hold: forget the failed change(s).
            self._data = None if self._durable is None else json.loads(self._durable)
            self._dirty = False
            raise
        self._durable, self._dirty = text, False
        # Only after the main file is good do we refresh the backup: the .bak is always a
        # complete ledger, at most one write behind if we crash between the two. It is not
        # fsync'ed (half the cost of a write): the main file is the durable one, the .bak is
        # the copy to restore from when something outside clinicbot damaged it.
        atomic_write(self.backup, raw, durable=False,
                     intact=f"{self.path.name} was written; only its backup is one write behind")

    @contextmanager
    def deferred(self) -> Iterator[None]:
        self._defer += 1
        try:
            yield
        finally:
            self._defer -= 1
            if not self._defer and self._dirty:
                self._flush()

    def close(self) -> None:
        if self._dirty and not self._defer:
            self._flush()


def load_json_text(path: Path) -> str | None:
    """Read and validate a ledger file; None when it does not exist. Corrupt -> StateError.

    Valid means: JSON, an object of tables, and every record of the known tables with the
    types clinicbot relies on (a hand edit that put a number where a time goes is caught here,
    naming the record, not later as a traceback)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise state_error(exc, path, "cannot read the ledger") from None
    text, problem = _check_ledger_bytes(raw)
    if problem:
        raise StateError(str(path), f"ledger file is corrupt or truncated: {problem}; {_repair_hint(path)}")
    return text


def _check_ledger_bytes(raw: bytes) -> tuple[str, str | None]:
    """(text, problem or None)."""
    try:
        text = raw.decode("utf-8")
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        return "", ("empty file" if not raw.strip()
                    else f"invalid JSON ({type(exc).__name__} at byte {getattr(exc, 'pos', '?')} of {len(raw)})")
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        return text, "not a ledger (expected a JSON object of tables)"
    return text, validate_tables(data)


def _repair_hint(path: Path) -> str:
    """What to do about a bad ledger: restore the backup only if the backup is itself good."""
    backup = path.with_name(path.name + BACKUP_SUFFIX)
    fresh = (f"move {path.name} (and {backup.name}) out of the state directory to start an empty ledger "
             "(every open finding fires again), or restore one from your own backups")
    try:
        raw = backup.read_bytes()
    except FileNotFoundError:
        return f"no backup exists; {fresh}"
    except OSError as exc:
        return f"its backup {backup} cannot be read either ({exc.strerror}); {fresh}"
    _, problem = _check_ledger_bytes(raw)
    if problem:
        return f"its backup {backup.name} is bad too ({problem}), do not restore it; {fresh}"
    return f"restore the last good copy with `cp {backup} {path}`"



class Ledger:
    """The bot's memory. Open with :meth:`open` (locked, on disk) or :meth:`open` ``readonly=True``
    (a private in-memory copy for dry runs: the same code runs, nothing is saved)."""

    def __init__(self, db: TinyDB, *, path: Path | None = None, readonly: bool = False, lock: StateLock | None = None):
        self.db = db
        self.path = path
        self.readonly = readonly
        self.lock = lock
        self._idx: _RecordIndex | None = None
        self._delivered: tuple[dict[str, Any], set[str]] | None = None  # (tables it was built from, keys)

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, state_dir: str | Path, *, readonly: bool = False, lock: bool = True) -> "Ledger":
        state_dir = Path(state_dir)
        path = state_dir / LEDGER_FILE
        if readonly:
            text = load_json_text(path)
            tables, _ = _upgrade(json.loads(text) if text else {}, str(path))
            db = TinyDB(storage=MemoryStorage)
            db.storage.write(tables)
            return cls(db, path=path, readonly=True)
        held = StateLock(state_dir).acquire() if lock else None
        try:
            db = TinyDB(path, storage=AtomicJSONStorage)
            tables = db.storage.read()
            upgraded, changed = _upgrade(dict(tables or {}), str(path))
            if changed or tables is None:
                db.storage.write(upgraded)
        except BaseException:
            if held:
                held.release()
            raise
        return cls(db, path=path, lock=held)

    def close(self) -> None:
        self.db.close()
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Many updates, one file write (not for intents: those must be on disk before the write)."""
        storage = self.db.storage
        if isinstance(storage, AtomicJSONStorage):
            with storage.deferred():
                yield
        else:
            yield

    def table(self, name: str) -> Any:
        return self.db.table(name)

    # -- records -------------------------------------------------------------------------------
    # The records table is read and written as the raw dict the storage holds, through an index
    # built once per run (key -> open record, key -> last episode): TinyDB's search scans every
    # record and its update/insert rebuild the whole table, so one call per finding made `check`
    # grow with findings x ledger size. The index is rebuilt when the storage's dict changes
    # (a failed write reverts it) and after clear_missing/prune.

    def _tables(self) -> dict[str, dict[str, Any]]:
        tables = self.db.storage.read()
        if tables is None:
            tables = {}
            self.db.storage.write(tables)
            tables = self.db.storage.read() or tables
        return tables

    def _raw_records(self) -> dict[str, dict[str, Any]]:
        return self._tables().setdefault("records", {})

    def _index(self) -> "_RecordIndex":
        tables = self._tables()
        idx = getattr(self, "_idx", None)
        if idx is None or idx.tables is not tables:
            idx = self._idx = _RecordIndex.build(tables, tables.setdefault("records", {}))
        return idx

    def _forget_index(self) -> None:
        self._idx = None
        self.db.table("records").clear_cache()

    def _save(self) -> None:
        """Hand the (mutated) raw tables to the storage: one write, or none inside a batch."""
        tables = self._tables()
        try:
            self.db.storage.write(tables)
        except BaseException:
            self._forget_index()
            raise
        self.db.table("records").clear_cache()

    @staticmethod
    def _doc(doc_id: int, doc: Mapping[str, Any]) -> Record:
        return Record.from_doc(doc, doc_id)

    def open_record(self, key: str) -> Record | None:
        doc_id = self._index().open.get(key)
        if doc_id is None:
            return None
        return self._doc(doc_id, self._raw_records()[str(doc_id)])

    def last_episode(self, key: str) -> int:
        return self._index().last.get(key, 0)

    def start_episode(self, finding: Any, now: datetime, *, project_phids: Iterable[str] = ()) -> Record:
        """A new record for a finding whose key has no open record (first sighting or after clearing)."""
        idx = self._index()
        episode = idx.last.get(finding.key, 0) + 1
        stamp = iso(now)
        doc = {
            "key": finding.key, "check_slug": finding.slug, "task_id": finding.task_id,
            "task_phid": finding.task_phid, "episode": episode,
            "created_at": stamp, "last_seen_at": stamp, "handled_at": None, "times_handled": 0,
            "outcomes": [], "escalations": [], "cleared_at": None, "is_deleted": False,
            "project_phids": sorted(project_phids), "summary": str(finding.summary)[:300],
            "severity": finding.severity,
        }
        doc_id = idx.max_id + 1
        self._raw_records()[str(doc_id)] = doc
        idx.max_id = doc_id
        idx.last[finding.key] = episode
        idx.open[finding.key] = doc_id
        self._save()
        return Record.from_doc(doc, doc_id)  # as reading it back gives it (its lists its own)

    def record(self, doc_id: int) -> Record:
        doc = self._raw_records().get(str(doc_id))
        if doc is None:
            raise KeyError(doc_id)
        return self._doc(doc_id, doc)

    def _update_record(self, doc_id: int, fields: Mapping[str, Any]) -> None:
        doc = self._raw_records().get(str(doc_id))
        if doc is None:
            raise KeyError(doc_id)
        doc.update(fields)
        self._save()

    def seen(self, doc_id: int, now: datetime, finding: Any | None = None) -> None:
        fields: dict[str, Any] = {"last_seen_at": iso(now)}
        if finding is not None:
            fields.update(summary=str(finding.summary)[:300], severity=finding.severity)
        self._update_record(doc_id, fields)

    def note_handled(self, doc_id: int, now: datetime, outcomes: Iterable[Outcome], *,
                     escalations: Iterable[int] = (), handled: bool = True) -> Record:
        """Append outcomes; when ``handled``, count one more handling at ``now``."""
        rec = self.record(doc_id)
        fields: dict[str, Any] = {"outcomes": rec.outcomes + [o.to_dict() for o in outcomes]}
        if handled:
            fields.update(handled_at=iso(now), times_handled=rec.times_handled + 1,
                          escalations=sorted(set(rec.escalations) | set(escalations)))
        self._update_record(doc_id, fields)
        return self.record(doc_id)

    def clear_missing(self, present: set[str], now: datetime, *, slugs: Iterable[str] | None = None,
                      task_id: int | None = None) -> list[Record]:
        """Close open records whose key had no finding this run, within the scope that was checked.

        ``slugs``: only these checks ran successfully (a failed or unselected check proves nothing);
        ``task_id``: the run looked at one task only.
        """
        wanted = set(slugs) if slugs is not None else None
        closed = []
        raw = self._raw_records()
        for sid, doc in raw.items():
            if doc.get("cleared_at") is not None or doc.get("is_deleted"):
                continue
            if doc["key"] in present:
                continue
            if wanted is not None and doc["check_slug"] not in wanted:
                continue
            if task_id is not None and doc.get("task_id") != task_id:
                continue
            closed.append(int(sid))
        if closed:
            for doc_id in closed:
                raw[str(doc_id)].update(cleared_at=iso(now), is_deleted=True)
            self._forget_index()
            self._save()
        return [self.record(i) for i in closed]

    def records(self, *, limit: int | None = None, key: str | None = None) -> list[Record]:
        """Most recently active first."""
        recs = [self._doc(int(sid), d) for sid, d in self._raw_records().items() if key is None or d.get("key") == key]
        recs.sort(key=lambda r: (r.last_seen_at or r.created_at, r.doc_id), reverse=True)
        return recs[:limit] if limit else recs

    def mark_handled(self, key: str, now: datetime, *, note: str = "marked handled by hand") -> Record:
        """``clinicbot ledger --handled KEY``: counts as a handling, so the next ping waits for the
        repetition interval (or never comes, for fire-once checks). Creates the record if the
        finding has not been recorded yet (someone saw it in a dry run and dealt with it)."""
        rec = self.open_record(key)
        if rec is None:
            slug, _, rest = key.partition(":")
            target = rest.split(":", 1)[0]
            task_id = int(target[1:]) if target[:1] == "T" and target[1:].isdigit() else None
            stub = type("F", (), {"key": key, "slug": slug, "task_id": task_id, "task_phid": None,
                                  "summary": note, "severity": ""})()
            rec = self.start_episode(stub, now)
        return self.note_handled(rec.doc_id, now, [Outcome("manual", "manual", iso(now), error=note)])

    # -- snoozes -------------------------------------------------------------------------------
    def snooze(self, target: str, until: datetime, now: datetime, reason: str = "") -> Snooze:
        target = normalise_target(target)
        table = self.table("snoozes")
        table.remove(Query().target == target)
        table.insert({"target": target, "until": iso(until), "at": iso(now), "reason": reason})
        return Snooze(target, until, now, reason)

    def snoozes(self, now: datetime | None = None) -> list[Snooze]:
        out = [Snooze(d["target"], parse_iso(d["until"]), parse_iso(d["at"]), d.get("reason", ""))  # type: ignore[arg-type]
               for d in self.table("snoozes").all()]
        return [s for s in out if now is None or s.until > now]

    def snoozed(self, slug: str, task_id: int | None, now: datetime) -> Snooze | None:
        return snoozed(self.snoozes(now), slug, task_id)

    # -- write intents -------------------------------------------------------------------------
    def record_intent(self, *, key: str, handler: str, task_phid: str | None, task: str | None,
                      text_hash: str, at: datetime, refs: Iterable[Any] = (), text: str = "",
                      wall_at: datetime | None = None, state: Mapping[str, Any] | None = None) -> int:
        """Written (and on disk) *before* the write it announces; see ``Outbox.resolve_pending``.

        ``at`` is the run's reference time; ``wall_at`` the real clock, which is what the server
        stamps the comment with (they differ when a run is given ``--now``)."""
        return self.table("intents").insert({
            "key": key, "handler": handler, "task_phid": task_phid, "task": task, "text_hash": text_hash,
            "at": iso(at), "wall_at": iso(wall_at or at), "status": "pending", "refs": list(refs),
            "text": text[:2000], "resolved_at": None, "transaction_phid": None, "error": "",
            "state": dict(state) if state is not None else None,
        })

    def finish_intent(self, doc_id: int, status: str, at: datetime, *, transaction_phid: str | None = None,
                      error: str = "") -> None:
        self.table("intents").update({"status": status, "resolved_at": iso(at), "transaction_phid": transaction_phid,
                                      "error": error}, doc_ids=[doc_id])

    def note_intent_error(self, doc_id: int, error: str) -> None:
        """The write's fate is unknown (timeout): stays pending, to be checked next run."""
        self.table("intents").update({"error": error}, doc_ids=[doc_id])

    def pending_intents(self) -> list[Intent]:
        return [Intent.from_doc(d) for d in self.table("intents").search(Query().status == "pending")]

    def intents(self, *, limit: int | None = None) -> list[dict[str, Any]]:
        docs = sorted(self.table("intents").all(), key=lambda d: (parse_iso(d["at"]), d.doc_id), reverse=True)
        return [dict(d, id=d.doc_id) for d in (docs[:limit] if limit else docs)]

    # -- deliveries (idempotency keys) ---------------------------------------------------------
    def _delivered_keys(self) -> set[str]:
        """The idempotency keys, read once per run (a set, not a scan of the table per action)."""
        tables = self._tables()
        if self._delivered is None or self._delivered[0] is not tables:
            self._delivered = (tables, {d.get("key") for d in (tables.get("delivered") or {}).values()})
        return self._delivered[1]

    def already_delivered(self, key: str) -> bool:
        return key in self._delivered_keys()

    def delivery(self, key: str) -> dict[str, Any] | None:
        doc = self.table("delivered").get(Query().key == key)
        return dict(doc) if doc else None

    def mark_delivered(self, key: str, at: datetime, **detail: Any) -> None:
        if not self.already_delivered(key):
            self.table("delivered").insert({"key": key, "at": iso(at), **detail})
            self._delivered_keys().add(key)

    # -- rotation notices ------------------------------------------------------------------------
    def notice_told(self, key: str) -> bool:
        return self.table("notices").contains(Query().key == key)

    def mark_notice_told(self, key: str, at: datetime, text: str = "") -> None:
        if not self.notice_told(key):
            self.table("notices").insert({"key": key, "at": iso(at), "text": text[:500]})

    # -- duty TODO tasks (delivery/todo.py) -----------------------------------------------------
    def todo(self, shift: str) -> Todo | None:
        doc = self.table("todos").get(Query().shift == shift)
        return Todo.from_doc(doc) if doc else None

    def open_todos(self) -> list[Todo]:
        """TODO records not closed yet, oldest shift first."""
        docs = self.table("todos").search(Query().closed_at == None)  # noqa: E711 (TinyDB query)
        return sorted((Todo.from_doc(d) for d in docs), key=lambda t: (t.start, t.doc_id))

    def save_todo(self, shift: str, **fields: Any) -> Todo:
        """Create or update the record of ``shift`` (times as datetimes; they are stored as ISO)."""
        fields = {k: iso(v) if isinstance(v, datetime) else v for k, v in fields.items()}
        table = self.table("todos")
        if table.contains(Query().shift == shift):
            table.update(fields, Query().shift == shift)
        else:
            table.insert({"shift": shift, "end": None, "members": [], "task_phid": None, "task_id": None, "items": [],
                          "description_hash": "", "closed_at": None, **fields})
        todo = self.todo(shift)
        assert todo is not None
        return todo

    # -- housekeeping ------------------------------------------------------------------------------
    def prune(self, now: datetime, *, keep_days: int = 180) -> int:
        """Forget cleared records, finished intents and deliveries older than ``keep_days``."""
        cutoff = now.timestamp() - keep_days * 86400

        def old(value: str | None) -> bool:
            dt = parse_iso(value)
            return dt is not None and dt.timestamp() < cutoff

        removed = 0
        self._forget_index()
        removed += len(self.table("records").remove(lambda d: d.get("cleared_at") is not None and old(d["cleared_at"])))
        removed += len(self.table("intents").remove(lambda d: d.get("status") != "pending" and old(d["at"])))
        removed += len(self.table("delivered").remove(lambda d: old(d["at"])))
        removed += len(self.table("snoozes").remove(lambda d: old(d["until"])))
        removed += len(self.table("todos").remove(lambda d: d.get("closed_at") is not None and old(d["closed_at"])))
        self._forget_index()
        self._delivered = None
        return removed


@dataclass
class _RecordIndex:
    """Built in one pass over the records: what ``open_record``/``last_episode`` need."""

    tables: dict[str, dict[str, Any]]
    open: dict[str, int]  # key -> doc id of its open record (the highest episode, as before)
    last: dict[str, int]  # key -> highest episode ever recorded
    max_id: int

    @classmethod
    def build(cls, tables: dict[str, dict[str, Any]], raw: Mapping[str, Mapping[str, Any]]) -> "_RecordIndex":
        open_: dict[str, int] = {}
        open_ep: dict[str, int] = {}
        last: dict[str, int] = {}
        max_id = 0
        for sid, doc in raw.items():
            doc_id = int(sid)
            max_id = max(max_id, doc_id)
            key, episode = doc.get("key"), int(doc.get("episode", 1))
            if episode > last.get(key, 0):
                last[key] = episode
            if doc.get("cleared_at") is None and doc.get("is_deleted") is False and episode > open_ep.get(key, 0):
                open_[key], open_ep[key] = doc_id, episode
        return cls(tables, open_, last, max_id)


def snoozed(snoozes: Iterable[Snooze], slug: str, task_id: int | None) -> Snooze | None:
    """The first of ``snoozes`` (those in force: ``Ledger.snoozes(now)``) covering the check or the task."""
    task = f"T{task_id}" if task_id is not None else None
    for s in snoozes:
        if s.target == slug or s.target == task:
            return s
    return None


def normalise_target(target: str) -> str:
    """'t123' / 'T123' -> 'T123'; a slug stays as written."""
    t = target.strip()
    if t[:1] in "tT" and t[1:].isdigit():
        return "T" + t[1:]
    return t
