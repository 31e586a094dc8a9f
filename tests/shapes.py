"""Compare JSON values by *shape*: keys, JSON types, nesting, ``[]`` vs ``{}``.

    from shapes import shape, shape_diff   # tests/ is on sys.path (see conftest.py)
    assert shape_diff(recorded, actual) == []

Rules (what a client can rely on, not the data itself):

* objects compare by their key sets, recursively; an object whose keys are all PHIDs or
  all digit strings is a *map* (``boards``, ``fromColumnPHIDs``, legacy results keyed by
  task id): only the shape of its first value counts;
* lists compare by emptiness and by the shape of their first element;
* ``[]`` and ``{}`` differ, as do string vs number vs bool (int and float are both "number");
* ``null`` matches any scalar (a nullable field such as ``ownerPHID``) but not a container.
"""

from __future__ import annotations

import re
from typing import Any

_MAP_KEY = re.compile(r"^(PHID-[A-Z]{4}-|\d+$)")


def _is_map(value: dict[str, Any]) -> bool:
    return bool(value) and all(_MAP_KEY.match(k) for k in value)


def shape(value: Any) -> Any:
    """A hashable-ish description of a value's shape (useful in assertion messages)."""
    if isinstance(value, dict):
        if _is_map(value):
            return {"<map>": shape(next(iter(value.values())))}
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return _scalar(value)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def shape_diff(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Every place where ``actual`` does not have the shape of ``expected`` (empty: same shape)."""
    if isinstance(expected, dict) or isinstance(actual, dict):
        if not (isinstance(expected, dict) and isinstance(actual, dict)):
            return [f"{path}: expected {_kind(expected)}, got {_kind(actual)}"]
        if _is_map(expected) or _is_map(actual):
            if not expected or not actual:
                return [f"{path}: expected {_kind(expected)}, got {_kind(actual)}"]
            return shape_diff(next(iter(expected.values())), next(iter(actual.values())), f"{path}.<value>")
        problems = []
        missing = [k for k in expected if k not in actual]
        extra = [k for k in actual if k not in expected]
        if missing:
            problems.append(f"{path}: missing keys {missing}")
        if extra:
            problems.append(f"{path}: unexpected keys {extra}")
        for k in expected:
            if k in actual:
                problems += shape_diff(expected[k], actual[k], f"{path}.{k}")
        return problems
    if isinstance(expected, list) or isinstance(actual, list):
        if not (isinstance(expected, list) and isinstance(actual, list)):
            return [f"{path}: expected {_kind(expected)}, got {_kind(actual)}"]
        if bool(expected) != bool(actual):
            return [f"{path}: expected {_kind(expected)}, got {_kind(actual)}"]
        return shape_diff(expected[0], actual[0], f"{path}[0]") if expected else []
    a, b = _scalar(expected), _scalar(actual)
    if a != b and "null" not in (a, b):
        return [f"{path}: expected {a}, got {b}"]
    return []


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "empty object {}" if not value else "object"
    if isinstance(value, list):
        return "empty list []" if not value else "list"
    return _scalar(value)
