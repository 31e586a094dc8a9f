"""Parameter strictness, as Phorge 07c1a51 has it.

How Phorge reads a Conduit request (``PhabricatorConduitAPIController::decodeConduitParams``,
``ConduitCall::__construct``, ``ConduitAPIMethod::getParameterMetadataKey``), in this order:

1. **Console encoding**: form fields ``params[name]=<JSON>``: every value is JSON (an empty
   value is ``null``); the names are the parameters.
2. **JSON encoding**: a non-empty ``params`` form field holding a JSON object (what arcanist
   and clinicbot send). Its ``__conduit__`` key is the metadata (the token); every other key
   is a parameter. Other top-level form fields are ignored, ``api.token`` included.
3. **Form encoding**: every other field. Fields starting with ``__`` are dropped (``__conduit__``,
   ``__path__``), ``api.*``, ``access_token``, ``scope``, ``output``, ``code`` and ``params`` are
   metadata (``api.token`` is the token), and every other top-level name (``limit``,
   ``constraints`` of ``constraints[projects][0]``) is a parameter.

Then, before authentication and before the method runs, any parameter the method does not
declare (the ``params`` of its ``conduit.query`` entry) fails the call::

    ERR-CONDUIT-CALL  API Method "maniphest.status.search" does not define these parameters: 'limit', 'after'.

The names are listed in the order they were sent. The declared lists come from
``conduit_methods.json``, a copy of the recorded ``conduit.query`` answer.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from clinicbot.sandbox.store import ConduitFault

# Top-level form names that are request metadata, not parameters (besides "api.*" and "__*").
METADATA_FIELDS = ("access_token", "scope", "output", "code", "params")

_DOCS: dict[str, Any] | None = None


def method_docs() -> dict[str, Any]:
    """The recorded ``conduit.query`` entries (description, params, return) by method name."""
    global _DOCS
    if _DOCS is None:
        text = resources.files("clinicbot.sandbox").joinpath("conduit_methods.json").read_text(encoding="utf-8")
        _DOCS = json.loads(text)
    return _DOCS


def declared(method: str) -> list[str]:
    """The parameter names ``method`` defines, in conduit.query's order."""
    doc = method_docs().get(method)
    if doc is None:
        # A sandbox method without a recorded signature cannot be checked: refuse loudly.
        raise ConduitFault("ERR-CONDUIT-CORE", f'sandbox: method "{method}" has no entry in '
                                               "clinicbot/sandbox/conduit_methods.json; copy it from the recorded "
                                               "conduit.query answer")
    params = doc.get("params") or {}  # PHP encodes "no parameters" as []
    return list(params)


def is_metadata_field(name: str) -> bool:
    """Whether a top-level form field of a form-encoded call is metadata, not a parameter."""
    return name.startswith(("__", "api.")) or name in METADATA_FIELDS


def top_level_name(field: str) -> str:
    """``constraints[projects][0]`` -> ``constraints`` (the name PHP gives the parameter)."""
    head, bracket, _ = field.partition("[")
    return head if bracket and head else field


def check(method: str, params: dict[str, Any]) -> None:
    """Refuse parameters ``method`` does not define, exactly as Phorge does."""
    allowed = set(declared(method))
    undefined = [name for name in params if name not in allowed]
    if undefined:
        names = "'" + "', '".join(str(n) for n in undefined) + "'"
        raise ConduitFault("ERR-CONDUIT-CALL", f'API Method "{method}" does not define these parameters: {names}.')


__all__ = ["METADATA_FIELDS", "check", "declared", "is_metadata_field", "method_docs", "top_level_name"]
