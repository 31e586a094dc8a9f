"""Conduit methods for Phriction (the wiki clinicbot publishes reports to).

Recorded rules: the root page ``/`` and every ancestor must exist before a page can be
created (each missing one is listed); slugs are normalised; ``phriction.edit`` answers
ints, except for a no-change edit, which answers the stored strings; the EditEngine
``phriction.document.edit`` cannot change title or content.
"""

from __future__ import annotations

from typing import Any, Callable

from clinicbot.sandbox import render
from clinicbot.sandbox.methods import _by_id, method
from clinicbot.sandbox.search import Ctx, Engine, fault, run_search
from clinicbot.sandbox.store import ConduitFault, normalize_slug


def _required(params: dict[str, Any], key: str) -> str:
    value = params.get(key)
    if value is None:
        raise fault(f'Parameter "{key}" is required.')
    return str(value)


@method("phriction.create")
def phriction_create(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    slug, title, content = _required(params, "slug"), _required(params, "title"), _required(params, "content")
    doc = ctx.store.phriction_create(ctx.user, slug, title, content, str(params.get("description") or ""), ctx.now)
    return render.document(ctx, doc, strings=False)


@method("phriction.edit")
def phriction_edit(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    slug = _required(params, "slug")
    title, content = params.get("title"), params.get("content")
    doc, changed = ctx.store.phriction_edit(ctx.user, slug, None if title is None else str(title),
                                            None if content is None else str(content),
                                            None if params.get("description") is None else str(params["description"]),
                                            ctx.now)
    # A no-change edit answers from storage, where version and date are strings (recorded).
    return render.document(ctx, doc, strings=not changed)


@method("phriction.info")
def phriction_info(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    doc = ctx.store.documents.get(normalize_slug(_required(params, "slug")))
    if doc is None:
        raise ConduitFault("ERR-BAD-DOCUMENT", "No such document exists.")
    return render.document(ctx, doc, strings=True)


@method("phriction.history")
def phriction_history(ctx: Ctx, params: dict[str, Any]) -> list[dict[str, Any]]:
    doc = ctx.store.documents.get(normalize_slug(_required(params, "slug")))
    if doc is None:
        raise ConduitFault("ERR-BAD-DOCUMENT", "No such document exists.")
    return [render.document(ctx, doc, strings=True, version=v) for v in reversed(doc.versions)]


@method("phriction.document.edit")
def phriction_document_edit(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    # The EditEngine endpoint cannot change title or content (recorded); only policy-ish types exist.
    valid = ["space", "view", "edit", "projects.add", "projects.remove", "projects.set", "subscribers.add",
             "subscribers.remove", "subscribers.set", "comment", "mfa"]
    for key, tx in enumerate(params.get("transactions") or []):
        tx_type = tx.get("type") if isinstance(tx, dict) else None
        if tx_type not in valid:
            raise fault(f'Transaction with key "{key}" has invalid type "{tx_type}". This type is not recognized. '
                        f"Valid types are: {', '.join(valid)}.")
    doc = ctx.store.documents_by_phid.get(str(params.get("objectIdentifier")))
    if doc is None:
        raise fault(f'No object exists with PHID "{params.get("objectIdentifier")}".')
    return {"object": {"id": doc.id, "phid": doc.phid}, "transactions": []}


def _match_documents(ctx: Ctx, c: dict[str, Any], query_key: str | None) -> Callable[[Any], bool] | None:
    tests: list[Callable[[Any], bool]] = []
    if "ids" in c:
        tests.append(lambda d, v=set(c["ids"]): d.id in v)
    if "phids" in c:
        tests.append(lambda d, v=set(c["phids"]): d.phid in v)
    if "paths" in c:
        tests.append(lambda d, v={normalize_slug(str(p)) for p in c["paths"]}: d.slug in v)
    if "ancestorPaths" in c:
        prefixes = [normalize_slug(str(p)) for p in c["ancestorPaths"]]
        tests.append(lambda d: any(d.slug != p and (p == "/" or d.slug.startswith(p)) for p in prefixes))
    if "statuses" in c:
        tests.append(lambda d, v=set(c["statuses"]): "active" in v)
    return lambda d: all(t(d) for t in tests)


DOCUMENTS = Engine(
    method="phriction.document.search", query_class="PhrictionDocumentQuery", noun="Document",
    constraints={"ids": "ids", "phids": "list", "paths": "list", "ancestorPaths": "list", "statuses": "list"},
    attachments={"content"}, columns={"id": (lambda d: d.id, True)},
    builtin_orders={"newest": ["id"], "oldest": ["-id"], "relevance": ["id"]}, default_order="newest",
    items=lambda ctx: list(ctx.store.documents.values()), match=_match_documents, render=render.document_item,
    lookup=_by_id(lambda ctx: ctx.store.documents_by_phid),
)


@method("phriction.document.search")
def phriction_document_search(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    return run_search(ctx, DOCUMENTS, params)


def _match_contents(ctx: Ctx, c: dict[str, Any], query_key: str | None) -> Callable[[Any], bool] | None:
    tests: list[Callable[[Any], bool]] = []
    if "ids" in c:
        tests.append(lambda v, s=set(c["ids"]): v[1].content_id in s)
    if "phids" in c:
        tests.append(lambda v, s=set(c["phids"]): v[1].content_phid in s)
    if "documentPHIDs" in c:
        tests.append(lambda v, s=set(c["documentPHIDs"]): v[0].phid in s)
    if "versions" in c:
        tests.append(lambda v, s=set(c["versions"]): v[1].version in s)
    return lambda v: all(t(v) for t in tests)


class _ContentRow(tuple):
    """(document, version) with the ``id`` the search machinery pages by."""

    @property
    def id(self) -> int:
        return self[1].content_id


CONTENTS = Engine(
    method="phriction.content.search", query_class="PhrictionContentQuery", noun="Content",
    constraints={"ids": "ids", "phids": "list", "documentPHIDs": "list", "versions": "ids"}, attachments={"content"},
    columns={"id": (lambda r: r.id, True)}, builtin_orders={"newest": ["id"], "oldest": ["-id"]},
    default_order="newest",
    items=lambda ctx: [_ContentRow((d, v)) for d in ctx.store.documents.values() for v in d.versions],
    match=_match_contents, render=render.content_item,
    lookup=lambda ctx, i: next((_ContentRow((d, v)) for d in ctx.store.documents.values() for v in d.versions
                                if v.content_id == i), None),
)


@method("phriction.content.search")
def phriction_content_search(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    return run_search(ctx, CONTENTS, params)
