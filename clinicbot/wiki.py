"""Phriction pages: read, replace one section, write only when something changed.

A small delivery primitive (rotation section today, published reports later). Facts from the
recordings in ../shared/conduit/ that shape it:

* slugs are normalised by the server (``Core Platform Team/Runbooks`` →
  ``core_platform_team/runbooks/``), so we normalise first and search by the normal form;
* ``phriction.edit`` on a missing page fails with ``ERR-BAD-DOCUMENT``: a missing page needs
  ``phriction.create`` (whose parent pages must already exist, root ``/`` included);
* an edit with identical content still "succeeds" and is not a useful signal, so we compare
  ourselves and do not call the server at all when nothing changed;
* ``phriction.document.search`` with ``attachments.content`` gives ``content.raw`` and ``title``.

Dry run (``apply=False``) reads but never writes.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

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

    @property
    def wrote(self) -> bool:
        return self.status in ("created", "edited")


def read_page(client: Any, slug: str) -> Page | None:
    slug = normalize_slug(slug)
    for doc in client.search("phriction.document.search", constraints={"paths": [slug]},
                             attachments={"content": True}):
        fields = doc.get("fields") or {}
        if normalize_slug(str(fields.get("path", ""))) != slug:
            continue
        content = (doc.get("attachments") or {}).get("content") or {}
        raw = (content.get("content") or {}).get("raw") or ""
        status = ((fields.get("status") or {}).get("value")) or "active"
        return Page(slug, str(content.get("title") or ""), str(raw), str(doc.get("phid") or ""), str(status))
    return None


def _same(a: str, b: str) -> bool:
    # The server may normalise line endings and trailing whitespace; do not edit over that.
    return a.replace("\r\n", "\n").rstrip() == b.replace("\r\n", "\n").rstrip()


def _diff(slug: str, old: str, new: str) -> tuple[str, str]:
    a, b = old.replace("\r\n", "\n").splitlines(), new.replace("\r\n", "\n").splitlines()
    diff = list(difflib.unified_diff(a, b, f"{slug} (now)", f"{slug} (new)", lineterm=""))
    added = sum(1 for d in diff if d.startswith("+") and not d.startswith("+++"))
    removed = sum(1 for d in diff if d.startswith("-") and not d.startswith("---"))
    return f"+{added} -{removed} lines", "\n".join(diff)


def _write(client: Any, slug: str, page: Page | None, title: str | None, content: str, *, apply: bool,
           description: str) -> PublishResult:
    if page is None:
        summary, diff = _diff(slug, "", content)
        summary = f"new page ({summary})"
    else:
        title_changes = bool(title) and title != page.title
        if _same(page.content, content) and not title_changes:
            return PublishResult("unchanged", slug, "no change")
        summary, diff = _diff(slug, page.content, content)
        if title_changes:
            summary += f", title {page.title!r} -> {title!r}"
    if not apply:
        return PublishResult("planned", slug, summary, diff)
    if page is None:
        result = client.call("phriction.create", slug=slug, title=title or slug.rstrip("/").rsplit("/", 1)[-1],
                             content=content, description=description)
        status = "created"
    else:
        params: dict[str, Any] = {"slug": slug, "content": content, "description": description}
        if title and title != page.title:
            params["title"] = title
        result = client.call("phriction.edit", **params)
        status = "edited"
    uri = str(result.get("uri") or "") if isinstance(result, dict) else ""
    return PublishResult(status, slug, summary, diff, uri)


def publish_page(client: Any, slug: str, title: str, content: str, *, apply: bool,
                 description: str = "Updated by clinicbot") -> PublishResult:
    """Make the page at ``slug`` hold exactly ``content`` (and ``title``); write only if different."""
    slug = normalize_slug(slug)
    return _write(client, slug, read_page(client, slug), title, content, apply=apply, description=description)


def publish_section(client: Any, slug: str, title: str, section_text: str, *, apply: bool,
                    description: str | None = None) -> PublishResult:
    """Replace one section of the page (``title`` is only used if the page must be created)."""
    slug = normalize_slug(slug)
    page = read_page(client, slug)
    content = replace_section(page.content if page else "", section_text)
    if description is None:
        header = _headers(section_text.strip("\n").splitlines()[:1])
        description = f"clinicbot: update section '{header[0][2]}'" if header else "Updated by clinicbot"
    # An existing page keeps its own title: we own one section of it, not the page.
    return _write(client, slug, page, title if page is None else None, content, apply=apply, description=description)
