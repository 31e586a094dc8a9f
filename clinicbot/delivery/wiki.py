"""The one Phriction writer: read, replace one section, create missing ancestors, write only changes.

Every wiki page clinicbot writes (the rotation section, published reports) goes through
:class:`WikiWriter`. Facts from the recordings in ../shared/conduit/ that shape it:

* slugs are normalised by the server (``Core Platform Team/Runbooks`` →
  ``core_platform_team/runbooks/``), so we normalise first and search by the normal form;
* ``phriction.create`` refuses a page whose parent is missing, and the root ``/`` must exist
  before any page (``error--phriction.create-parent-missing-root.json``,
  ``error--phriction.create-nested-parent-missing-*.json``): every missing ancestor is created
  first, root first, with a short neutral title and content (:data:`ANCESTOR_CONTENT`);
* ``phriction.edit`` on a missing page fails with ``ERR-BAD-DOCUMENT``: a missing page needs
  ``phriction.create``;
* an edit with identical content "succeeds" without a new version and answers ``version`` and
  ``dateCreated`` as *strings* (``phriction.edit--identical-content-*.json``); we compare the
  current content ourselves and make no call at all when nothing changed, and an edit answered
  with a string version is reported as ``unchanged``;
* pages are read through :mod:`clinicbot.phab.wiki` (slugs, sections, ``phriction.document.search``).

Every page created or edited (ancestors included) is one write under the per-run cap
(``max_writes_per_run``), counted when planned, so a dry run (``apply=False``, the default) says
which pages it would create or edit and fails on the cap exactly as the real run would.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable

from clinicbot.errors import ConduitAPIError, SafetyCapExceeded
from clinicbot.phab.wiki import Page, ancestors, headers, normalize_slug, read_pages, replace_section, same_content

ANCESTOR_DESCRIPTION = "clinicbot: create a missing parent page"
ANCESTOR_CONTENT = "This page was created by clinicbot because pages below it are published here. Edit it freely."
ROOT_TITLE = "Wiki"


def ancestor_title(slug: str) -> str:
    """A short neutral title for a parent page clinicbot has to create: its last slug part."""
    last = slug.strip("/").rsplit("/", 1)[-1]
    return last.replace("_", " ").strip().capitalize() if last else ROOT_TITLE


@dataclass(frozen=True)
class PublishResult:
    status: str  # "planned" (dry run, would write), "unchanged", "created" or "edited"
    slug: str
    diff_summary: str
    diff: str = ""  # unified diff, for the dry-run display
    uri: str = ""
    ancestors: tuple[str, ...] = ()  # parent pages created (or, in a dry run, to create), root first
    writes: int = 0  # pages created or edited (or, in a dry run, that would be)

    @property
    def wrote(self) -> bool:
        return self.status in ("created", "edited")


@dataclass(frozen=True)
class PagePlan:
    """What publishing one page needs: nothing (``writes == 0``), an edit, or creates."""

    slug: str
    page: Page | None  # as it is now; None when missing
    title: str | None  # the title to send (a create always has one; an edit only when it changes)
    content: str
    description: str
    ancestors: tuple[str, ...]  # missing ancestors to create first, root first
    summary: str
    diff: str

    @property
    def changes(self) -> bool:
        return self.page is None or self.title is not None or not same_content(self.page.content, self.content)

    @property
    def writes(self) -> int:
        return len(self.ancestors) + 1 if self.changes else 0


def _diff(slug: str, old: str, new: str) -> tuple[str, str]:
    a, b = old.replace("\r\n", "\n").splitlines(), new.replace("\r\n", "\n").splitlines()
    diff = list(difflib.unified_diff(a, b, f"{slug} (now)", f"{slug} (new)", lineterm=""))
    added = sum(1 for d in diff if d.startswith("+") and not d.startswith("+++"))
    removed = sum(1 for d in diff if d.startswith("-") and not d.startswith("---"))
    return f"+{added} -{removed} lines", "\n".join(diff)


class WikiWriter:
    """Publishes pages, creating missing ancestors, within a write cap; dry run unless ``apply``.

    One writer per run: ``cap`` is how many pages it may create or edit in total (the caller
    passes what is left of ``max_writes_per_run``). :meth:`plan_page`/:meth:`plan_section`
    only read, and raise :class:`SafetyCapExceeded` when the writes planned so far exceed the cap,
    before anything is written; :meth:`execute` writes (only when applying).
    """

    def __init__(self, client: Any, *, apply: bool, cap: int | None = None):
        self.client = client
        self.apply = apply
        self.cap = cap
        self.planned = 0  # writes planned (dry run) or reserved (real run) so far
        self.done = 0  # writes performed

    # -- planning (reads only) -----------------------------------------------------------------
    def _plan(self, slug: str, title: str | None, content: str | Callable[[Page | None], str], description: str,
              *, keep_title: bool = False) -> PagePlan:
        """``content`` may be a function of the current page; ``keep_title``: never retitle an existing page."""
        slug = normalize_slug(slug)
        chain = ancestors(slug)
        pages = read_pages(self.client, [*chain, slug])
        page = pages.get(slug)
        text = content(page) if callable(content) else content
        if page is None:
            missing = tuple(a for a in chain if a not in pages)
            summary, diff = _diff(slug, "", text)
            summary = f"new page ({summary})"
            plan = PagePlan(slug, None, title or ancestor_title(slug), text, description, missing, summary, diff)
        else:
            new_title = title if title and title != page.title and not keep_title else None
            if same_content(page.content, text) and new_title is None:
                summary, diff = "no change", ""
            else:
                summary, diff = _diff(slug, page.content, text)
                if new_title is not None:
                    summary += f", title {page.title!r} -> {new_title!r}"
            plan = PagePlan(slug, page, new_title, text, description, (), summary, diff)
        self._reserve(plan.writes)
        return plan

    def _reserve(self, writes: int) -> None:
        if self.cap is not None and self.planned + writes > self.cap:
            raise SafetyCapExceeded(self.cap, self.planned + writes, self.done)
        self.planned += writes

    def plan_page(self, slug: str, title: str, content: str, *,
                  description: str = "Updated by clinicbot") -> PagePlan:
        """The page at ``slug`` is to hold exactly ``content`` (and ``title``)."""
        return self._plan(slug, title, content, description)

    def plan_section(self, slug: str, title: str, section_text: str, *, description: str | None = None) -> PagePlan:
        """One section of the page is to be replaced (``title`` is used only if the page must be created:
        an existing page keeps its own title, since we own one section of it, not the page)."""
        if description is None:
            header = headers(section_text.strip("\n").splitlines()[:1])
            description = f"clinicbot: update section '{header[0][2]}'" if header else "Updated by clinicbot"
        return self._plan(slug, title, lambda page: replace_section(page.content if page else "", section_text),
                          description, keep_title=True)

    # -- writing -------------------------------------------------------------------------------
    def execute(self, plan: PagePlan) -> PublishResult:
        """Write what ``plan`` needs (only when applying): missing ancestors root first, then the page."""
        if not plan.changes:
            return PublishResult("unchanged", plan.slug, "no change")
        if not self.apply:
            return PublishResult("planned", plan.slug, plan.summary, plan.diff, ancestors=plan.ancestors,
                                 writes=plan.writes)
        for slug in plan.ancestors:
            self._create_ancestor(slug)
        if plan.page is None:
            result = self.client.call("phriction.create", slug=plan.slug, title=plan.title,
                                      content=plan.content, description=plan.description)
            status = "created"
        else:
            params: dict[str, Any] = {"slug": plan.slug, "content": plan.content, "description": plan.description}
            if plan.title is not None:
                params["title"] = plan.title
            result = self.client.call("phriction.edit", **params)
            # A no-change edit makes no version and answers the stored strings (recorded).
            status = "unchanged" if isinstance(result, dict) and isinstance(result.get("version"), str) else "edited"
        self.done += 1
        uri = str(result.get("uri") or "") if isinstance(result, dict) else ""
        return PublishResult(status, plan.slug, plan.summary if status != "unchanged" else "no change (server)",
                             plan.diff, uri, plan.ancestors, len(plan.ancestors) + 1)

    def _create_ancestor(self, slug: str) -> None:
        try:
            self.client.call("phriction.create", slug=slug, title=ancestor_title(slug), content=ANCESTOR_CONTENT,
                             description=ANCESTOR_DESCRIPTION)
        except ConduitAPIError as exc:
            # Someone created it since we looked: that is all we wanted.
            if "already exists" not in str(exc.info or ""):
                raise
        self.done += 1

    def publish_page(self, slug: str, title: str, content: str, *,
                     description: str = "Updated by clinicbot") -> PublishResult:
        return self.execute(self.plan_page(slug, title, content, description=description))

    def publish_section(self, slug: str, title: str, section_text: str, *,
                        description: str | None = None) -> PublishResult:
        return self.execute(self.plan_section(slug, title, section_text, description=description))


def publish_page(client: Any, slug: str, title: str, content: str, *, apply: bool,
                 description: str = "Updated by clinicbot", cap: int | None = None) -> PublishResult:
    """Make the page at ``slug`` hold exactly ``content`` (and ``title``); write only if different."""
    return WikiWriter(client, apply=apply, cap=cap).publish_page(slug, title, content, description=description)


def publish_section(client: Any, slug: str, title: str, section_text: str, *, apply: bool,
                    description: str | None = None, cap: int | None = None) -> PublishResult:
    """Replace one section of the page (``title`` is only used if the page must be created)."""
    return WikiWriter(client, apply=apply, cap=cap).publish_section(slug, title, section_text,
                                                                     description=description)
