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
* ``phriction.document.search`` with ``attachments.content`` gives ``content.raw`` and ``title``.

Every page created or edited (ancestors included) is one write under the per-run cap
(``max_writes_per_run``), counted when planned, so a dry run (``apply=False``, the default) says
which pages it would create or edit and fails on the cap exactly as the real run would.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from clinicbot.errors import ConduitAPIError, SafetyCapExceeded

HEADER = re.compile(r"^(={1,6})\s*(.*?)\s*=*\s*$")
_FENCE = re.compile(r"^\s*(```|%%%)")
_SLUG_BAN = re.compile(r"[\x00-\x19#%&+=? \\<>{}\[\]'\"]+")


# --------------------------------------------------------------------------------------------
# Slugs


def normalize_slug(slug: str) -> str:
    """Phorge's slug normal form (PhabricatorSlug::normalize): lowercase, URL-hostile characters and
    spaces → ``_``, no empty or ``.``/``..`` components, a trailing ``/``."""
    slug = re.sub(r"/+", "/", slug).strip("/").lower()
    slug = re.sub(r"_+", "_", _SLUG_BAN.sub("_", slug))
    # "a?" becomes "a", but a component reduced to "_" stays "_".
    parts = [p if p == "_" else p.strip("_") for p in slug.split("/")]
    slug = "/".join({".": "dot", "..": "dotdot"}.get(p, p) for p in parts)
    return slug + "/" if slug else "/"


# --------------------------------------------------------------------------------------------
# Sections of Remarkup text


def _headers(lines: list[str]) -> list[tuple[int, int, str]]:
    """(line index, level, title) of every header outside code/literal blocks."""
    out, fenced = [], None
    for i, line in enumerate(lines):
        m = _FENCE.match(line)
        if m:
            if fenced is None:
                # A block opened and closed on the same line is not a block.
                if line.strip().count(m.group(1)) < 2:
                    fenced = m.group(1)
            elif m.group(1) == fenced:
                fenced = None
            continue
        if fenced is None:
            h = HEADER.match(line)
            if h and h.group(2):
                out.append((i, len(h.group(1)), h.group(2)))
    return out


def _norm_title(title: str) -> str:
    return " ".join(title.split()).casefold()


def _relevel(lines: list[str], delta: int) -> list[str]:
    if delta == 0:
        return lines
    out = list(lines)
    for i, level, title in _headers(lines):
        marks = "=" * max(1, min(6, level + delta))
        out[i] = f"{marks} {title} {marks}"
    return out


def replace_section(page_text: str, section_text: str) -> str:
    """Put ``section_text`` (which starts with a header) in place of the page's section of the same title.

    The old section runs from its header to the next header of the same or a higher level. When
    the page's header is at another level, the new section's headers are shifted to match, so
    the page keeps its outline. A page without the section gets it appended. Everything else
    in the page is left byte for byte as it was.
    """
    sec_lines = section_text.strip("\n").splitlines()
    sec_headers = _headers(sec_lines)
    if not sec_headers or sec_headers[0][0] != 0:
        raise ValueError("section_text must start with a Remarkup header such as '= Title ='")
    _, sec_level, title = sec_headers[0]
    nl = "\r\n" if "\r\n" in page_text else "\n"
    lines = page_text.splitlines()
    found = [(i, lvl) for i, lvl, t in _headers(lines) if _norm_title(t) == _norm_title(title)]
    if not found:
        body = page_text.rstrip()
        return (body + nl + nl if body else "") + nl.join(sec_lines) + nl
    start, level = found[0]
    end = next((i for i, lvl, _ in _headers(lines) if i > start and lvl <= level), len(lines))
    new = _relevel(sec_lines, level - sec_level)
    tail = lines[end:]
    out = lines[:start] + new + ([""] + tail if tail else [])
    text = nl.join(out)
    return text + nl if page_text.endswith(("\n", "\r")) or not tail else text


# --------------------------------------------------------------------------------------------
# Pages

ANCESTOR_DESCRIPTION = "clinicbot: create a missing parent page"
ANCESTOR_CONTENT = "This page was created by clinicbot because pages below it are published here. Edit it freely."
ROOT_TITLE = "Wiki"


def ancestors(slug: str) -> list[str]:
    """The ancestors of a normalised slug, root first: ``a/b/c/`` → ``/``, ``a/``, ``a/b/``."""
    parts = normalize_slug(slug).strip("/").split("/")
    if parts == [""]:
        return []  # the root has no parent
    return ["/"] + ["/".join(parts[:i]) + "/" for i in range(1, len(parts))]


def ancestor_title(slug: str) -> str:
    """A short neutral title for a parent page clinicbot has to create: its last slug part."""
    last = slug.strip("/").rsplit("/", 1)[-1]
    return last.replace("_", " ").strip().capitalize() if last else ROOT_TITLE


@dataclass(frozen=True)
class Page:
    slug: str
    title: str
    content: str
    phid: str = ""
    status: str = "active"


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
        return self.page is None or self.title is not None or not _same(self.page.content, self.content)

    @property
    def writes(self) -> int:
        return len(self.ancestors) + 1 if self.changes else 0


def _page(slug: str, doc: dict[str, Any]) -> Page:
    fields = doc.get("fields") or {}
    content = (doc.get("attachments") or {}).get("content") or {}
    raw = (content.get("content") or {}).get("raw") or ""
    status = ((fields.get("status") or {}).get("value")) or "active"
    return Page(slug, str(content.get("title") or ""), str(raw), str(doc.get("phid") or ""), str(status))


def read_pages(client: Any, slugs: Iterable[str]) -> dict[str, Page]:
    """The pages that exist among ``slugs`` (one search), keyed by normalised slug."""
    wanted = list(dict.fromkeys(normalize_slug(s) for s in slugs))
    found: dict[str, Page] = {}
    if not wanted:
        return found
    for doc in client.search("phriction.document.search", constraints={"paths": wanted},
                             attachments={"content": True}):
        path = normalize_slug(str((doc.get("fields") or {}).get("path", "")))
        if path in wanted and path not in found:
            found[path] = _page(path, doc)
    return found


def read_page(client: Any, slug: str) -> Page | None:
    return read_pages(client, [slug]).get(normalize_slug(slug))


def _same(a: str, b: str) -> bool:
    # The server may normalise line endings and trailing whitespace; do not edit over that.
    return a.replace("\r\n", "\n").rstrip() == b.replace("\r\n", "\n").rstrip()


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
            if _same(page.content, text) and new_title is None:
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
            header = _headers(section_text.strip("\n").splitlines()[:1])
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
