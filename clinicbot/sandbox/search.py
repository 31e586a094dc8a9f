"""The ApplicationSearch machinery shared by every ``*.search`` method.

What the recordings pin down and this module reproduces:

* result ``{"data", "maps", "query": {"queryKey"}, "cursor": {"limit", "after", "before", "order"}}``;
* page size default and maximum 100 (``ERR-INVALID-PAGE-SIZE`` above), ``cursor.limit`` and
  ``cursor.order`` echo the request as sent (a form-encoded ``limit=5`` comes back as ``"5"``);
* cursors are strings holding an object *id*, whatever the order; ``after`` = next page,
  ``before`` = previous page;
* unknown constraint keys -> ``ERR-INVALID-CONSTRAINT``, unknown attachments ->
  ``ERR-INVALID-ATTACHMENT``, a scalar where a list is required -> ``ERR-CONDUIT-CORE``,
  unknown *values* inside constraints simply match nothing;
* ``order`` is a builtin name or a list of column keys (``"-id"`` reverses a column).

Matching and sorting a 100,000-task board for every page would make paging quadratic, so
the sorted result of a query is cached until the store changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

from clinicbot.sandbox.store import ConduitFault

MAX_PAGE = 100


@dataclass
class Ctx:
    """One Conduit call: the store, the acting user and the sandbox clock."""

    store: Any
    user: Any
    now: int
    cache: dict[Any, Any] = field(default_factory=dict)


@dataclass
class Engine:
    """How one ``*.search`` method reads its parameters."""

    method: str
    query_class: str  # for the "does not support a builtin order" message
    noun: str  # for the bad-cursor message ("Task IDs must be integer numbers.")
    constraints: dict[str, str]  # key -> ids | list | bool | int | str | map
    attachments: set[str]
    columns: dict[str, tuple[Callable[[Any], Any], bool]]  # order column -> (value, descending by default)
    builtin_orders: dict[str, list[str]]  # names (in the error message's order) -> column vector
    default_order: str
    items: Callable[[Ctx], list[Any]]  # every object of this kind
    match: Callable[[Ctx, dict[str, Any], str | None], Callable[[Any], bool] | None]  # None: match nothing
    render: Callable[[Ctx, Any, set[str]], dict[str, Any]]
    lookup: Callable[[Ctx, int], Any]  # id -> object or None (for cursors)
    query_keys: dict[str, dict[str, Any]] = field(default_factory=lambda: {"all": {}})
    maps: Callable[[Ctx, dict[str, Any]], Any] = lambda ctx, constraints: {}


def fault(info: str) -> ConduitFault:
    return ConduitFault("ERR-CONDUIT-CORE", info)


def as_list(key: str, value: Any) -> list[Any]:
    # PHP form encoding turns key[0]=a&key[1]=b into a list already; a dict here means the
    # caller sent an object (or sparse keys), which Conduit rejects just like a scalar.
    if not isinstance(value, list):
        raise fault(f'Error while reading "{key}": Expected a list, but value is not a list.')
    return value


def as_int(key: str, value: Any) -> int:
    if isinstance(value, bool):
        raise fault(f'Error while reading "{key}": Expected integer, got something else.')
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise fault(f'Error while reading "{key}": Expected integer, got something else.')


def as_int_list(key: str, value: Any) -> list[int]:
    out = []
    for i, item in enumerate(as_list(key, value)):
        try:
            out.append(as_int(key, item))
        except ConduitFault:
            raise fault(f'Error while reading "{key}": Expected a list of integers, but item with index "{i}" '
                        f"is not an integer.") from None
    return out


def as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in (1, 0, "1", "0", "true", "false"):
        return value in (1, "1", "true")
    raise fault(f'Error while reading "{key}": Expected boolean, got something else.')


def as_str(key: str, value: Any) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise fault(f'Error while reading "{key}": Expected string, got something else.')
    return str(value)


READERS: dict[str, Callable[[str, Any], Any]] = {
    "ids": as_int_list, "list": as_list, "bool": as_bool, "int": as_int, "str": as_str,
}


def read_constraints(engine: Engine, raw: Any) -> dict[str, Any]:
    if raw is None or raw == [] or raw == "":
        return {}
    if not isinstance(raw, dict):
        raise fault('Parameter "constraints" must be a map.')
    for key in raw:
        if key not in engine.constraints:
            raise ConduitFault("ERR-INVALID-CONSTRAINT", 'Parameter "constraints" includes an invalid key.')
    return {key: READERS[engine.constraints[key]](key, value) for key, value in raw.items()}


def read_attachments(engine: Engine, raw: Any) -> set[str]:
    if raw is None or raw == [] or raw == "":
        return set()
    if not isinstance(raw, dict):
        raise fault('Parameter "attachments" must be a map.')
    for key in raw:
        if key not in engine.attachments:
            raise ConduitFault("ERR-INVALID-ATTACHMENT", 'Parameter "attachments" includes an invalid key.')
    return {k for k, v in raw.items() if v not in (False, 0, "0", "false", "", None)}


def read_order(engine: Engine, raw: Any) -> list[tuple[str, bool]]:
    """The order as (column, descending) pairs, with the id tie-breaker appended."""
    if raw is None or raw == "":
        vector = engine.builtin_orders[engine.default_order]
    elif isinstance(raw, str):
        if raw not in engine.builtin_orders:
            raise fault(f'Query "{engine.query_class}" does not support a builtin order "{raw}". Supported orders '
                        f"are: {', '.join(engine.builtin_orders)}.")
        vector = engine.builtin_orders[raw]
    elif isinstance(raw, list):
        vector = [as_str("order", v) for v in raw]
        for v in vector:
            if v.lstrip("-") not in engine.columns:
                raise fault(f'Order vector specifies an unknown column "{v.lstrip("-")}". Supported columns are: '
                            f"{', '.join(engine.columns)}.")
    else:
        raise fault('Parameter "order" must be a string or a list of column keys.')
    pairs = []
    for v in vector:
        name = v.lstrip("-")
        desc = engine.columns[name][1]
        pairs.append((name, (not desc) if v.startswith("-") else desc))
    if "id" not in [p[0] for p in pairs]:
        pairs.append(("id", engine.columns["id"][1]))
    return pairs


def sort_items(engine: Engine, items: list[Any], order: list[tuple[str, bool]]) -> list[Any]:
    items = list(items)
    # Stable sorts from the least significant column up; None sorts lowest.
    for name, desc in reversed(order):
        getter = engine.columns[name][0]
        items.sort(key=lambda o, g=getter: (g(o) is not None, g(o)), reverse=desc)
    return items


def read_limit(raw: Any) -> int:
    if raw is None or raw == "":
        return MAX_PAGE
    limit = as_int("limit", raw)
    if limit > MAX_PAGE:
        raise ConduitFault("ERR-INVALID-PAGE-SIZE", f"Maximum page size for Conduit API method calls is {MAX_PAGE}, "
                                                    f"but this call specified {limit}.")
    return max(limit, 1)


def read_cursor(engine_noun: str, raw: Any) -> int | None:
    if raw is None or raw == "":
        return None
    text = str(raw).strip()
    if not text.isdigit():
        raise fault(f"{engine_noun} IDs must be integer numbers.")
    return int(text)


def page(items: list[Any], position: Callable[[int, bool], int], after: int | None, before: int | None,
         limit: int) -> tuple[list[Any], str | None, str | None]:
    """One page of an ordered list: (items, cursor.after, cursor.before)."""
    if after is not None:
        start = position(after, True)
        chunk = items[start:start + limit]
        more = start + limit < len(items)
        return chunk, (str(chunk[-1].id) if more and chunk else None), (str(chunk[0].id) if chunk else None)
    if before is not None:
        end = position(before, False)
        start = max(0, end - limit)
        chunk = items[start:end]
        return chunk, (str(chunk[-1].id) if chunk else None), (str(chunk[0].id) if start > 0 and chunk else None)
    chunk = items[:limit]
    return chunk, (str(chunk[-1].id) if len(items) > limit and chunk else None), None


def run_search(ctx: Ctx, engine: Engine, params: dict[str, Any]) -> dict[str, Any]:
    query_key = params.get("queryKey")
    if query_key not in (None, "") and query_key not in engine.query_keys:
        raise fault(f'Query key "{query_key}" does not correspond to a valid query.')
    constraints = read_constraints(engine, params.get("constraints"))
    attach = read_attachments(engine, params.get("attachments"))
    order = read_order(engine, params.get("order"))
    limit = read_limit(params.get("limit"))
    after = read_cursor(engine.noun, params.get("after"))
    before = read_cursor(engine.noun, params.get("before"))

    effective = dict(engine.query_keys.get(query_key or "all", {}))
    effective.update(constraints)
    store = ctx.store
    key = (engine.method, json.dumps(effective, sort_keys=True, default=str), json.dumps(order),
           getattr(ctx.user, "phid", None))
    cached = store.search_cache.get(key) if store.search_version == store.version else None
    if cached is None:
        if store.search_version != store.version:
            store.search_cache = {}
            store.search_version = store.version
        test = engine.match(ctx, effective, query_key)
        matched = [] if test is None else [o for o in engine.items(ctx) if test(o)]
        matched = sort_items(engine, matched, order)
        cached = (matched, {o.id: i for i, o in enumerate(matched)})
        if len(store.search_cache) > 32:
            store.search_cache.clear()
        store.search_cache[key] = cached
    matched, index = cached

    def position(cursor: int, is_after: bool) -> int:
        if cursor in index:
            return index[cursor] + (1 if is_after else 0)
        obj = engine.lookup(ctx, cursor)
        if obj is None:
            raise fault(f'Cursor "{cursor}" does not identify a valid object in query "{engine.query_class}".')
        # The cursor object no longer matches: find where it would sort.
        placed = sort_items(engine, matched + [obj], order)
        return next(i for i, o in enumerate(placed) if o is obj)

    chunk, next_after, next_before = page(matched, position, after, before, limit)
    return {
        "data": [engine.render(ctx, o, attach) for o in chunk],
        "maps": engine.maps(ctx, constraints),
        "query": {"queryKey": query_key if query_key not in ("",) else None},
        "cursor": {"limit": params.get("limit", MAX_PAGE) if params.get("limit") not in (None, "") else MAX_PAGE,
                   "after": next_after, "before": next_before, "order": params.get("order")},
    }
