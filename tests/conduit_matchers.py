"""`responses` matchers for Conduit: decode the `params` form field and compare it."""

from __future__ import annotations

import json
from typing import Any, Callable
from urllib.parse import parse_qs


def decoded_params(request: Any) -> dict[str, Any]:
    body = request.body or ""
    if isinstance(body, bytes):
        body = body.decode()
    fields = parse_qs(body)
    return json.loads(fields["params"][0])


def conduit_params(expected: dict[str, Any], *, strict: bool = False) -> Callable[[Any], tuple[bool, str]]:
    """Match when the request's params contain `expected` (all of it with strict=True), ignoring the token."""

    def match(request: Any) -> tuple[bool, str]:
        params = decoded_params(request)
        params.pop("__conduit__", None)
        if strict:
            ok = params == expected
        else:
            ok = all(params.get(k) == v for k, v in expected.items())
        return ok, "" if ok else f"params {params!r} do not match {expected!r}"

    return match
