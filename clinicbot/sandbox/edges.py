"""edge.search: task relations (``task.subtask``/``task.parent``) and mentions (``mention``/``mentioned-in``).

Phorge lists edges newest first (``PhabricatorEdgeObjectQuery``: ``dateCreated``, then the
write sequence). Edges made by an edit in this sandbox are logged with their time and order
(``Store.edge_log``): the inverse edge is written after the forward one, so for one edit the
inverse comes first (``edge.search--hostile-title-clinicbot-current-escape.json``: T48's
``mentioned-in`` before T47's ``mention``). Edges loaded with a scenario carry no date; they
come after the logged ones, ordered by their newer task (an edge is usually made when the
newer of its two tasks is), the parent's ``task.subtask`` before the child's ``task.parent``.
"""

from __future__ import annotations

from typing import Any

from clinicbot.sandbox.search import Ctx, as_list, fault, read_limit
from clinicbot.sandbox.store import EDGE_DEPENDED_ON_BY, EDGE_DEPENDS_ON, EDGE_MENTIONED_IN, EDGE_MENTIONS, Document, Task

# Conduit key -> the edge constant the legacy API shows in meta["edge:type"]
EDGE_TYPES = {"task.subtask": EDGE_DEPENDS_ON, "task.parent": EDGE_DEPENDED_ON_BY, "mention": EDGE_MENTIONS,
              "mentioned-in": EDGE_MENTIONED_IN}


def destinations(task: Task | Document, edge_type: str) -> list[str]:
    """The PHIDs ``task`` (or a wiki page) has an edge of ``edge_type`` (a Conduit key) to."""
    if isinstance(task, Document):
        return task.mentions if edge_type == "mention" else []
    return {"task.subtask": task.subtasks, "task.parent": task.parents, "mention": task.mentions,
            "mentioned-in": task.mentioned_in}[edge_type]


def search_edges(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """The edge.search method (parameter names are checked before this runs)."""
    store = ctx.store
    sources = as_list("sourcePHIDs", params.get("sourcePHIDs"))
    types = as_list("types", params.get("types"))
    for t in types:
        if t not in EDGE_TYPES:
            raise fault(f'Edge type "{t}" is not a recognized edge type.')
    dest = set(as_list("destinationPHIDs", params["destinationPHIDs"])) if params.get("destinationPHIDs") else None
    limit = read_limit(params.get("limit"))
    found: list[tuple[tuple[int, int, int], dict[str, str]]] = []
    tasks = store.tasks_by_phid
    for src in sources:
        task: Any = tasks.get(src) or store.documents_by_phid.get(src)
        if task is None:
            continue
        for t in types:
            for other in destinations(task, t):
                if dest is not None and other not in dest:
                    continue
                logged = store.edge_log.get((src, EDGE_TYPES[t], other))
                if logged is not None:
                    key = (1, logged[0], logged[1])
                else:
                    newer = max(task.id, tasks[other].id) if other in tasks and src in tasks else task.id
                    key = (0, newer, int(t == "task.subtask"))
                found.append((key, {"sourcePHID": src, "edgeType": t, "destinationPHID": other}))
    found.sort(key=lambda item: item[0], reverse=True)  # stable: ties keep the request's order
    return {"data": [edge for _, edge in found[:limit]],
            "cursor": {"limit": params.get("limit") or 100, "after": None, "before": None}}
