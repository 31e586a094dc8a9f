"""Phriction, the reading side: slugs as the server normalises them, sections of a page, pages read.

The writer (:class:`clinicbot.delivery.wiki.WikiWriter`) builds on these. Facts from the
recordings in ../shared/conduit/: slugs are normalised by the server (``Core Platform
Team/Runbooks`` → ``core_platform_team/runbooks/``), so we normalise first and search by the
normal form; ``phriction.document.search`` with ``attachments.content`` gives ``content.raw``
and ``title``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable


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


def headers(lines: list[str]) -> list[tuple[int, int, str]]:
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
    for i, level, title in headers(lines):
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
    sec_headers = headers(sec_lines)
    if not sec_headers or sec_headers[0][0] != 0:
        raise ValueError("section_text must start with a Remarkup header such as '= Title ='")
    _, sec_level, title = sec_headers[0]
    nl = "\r\n" if "\r\n" in page_text else "\n"
    lines = page_text.splitlines()
    found = [(i, lvl) for i, lvl, t in headers(lines) if _norm_title(t) == _norm_title(title)]
    if not found:
        body = page_text.rstrip()
        return (body + nl + nl if body else "") + nl.join(sec_lines) + nl
    start, level = found[0]
    end = next((i for i, lvl, _ in headers(lines) if i > start and lvl <= level), len(lines))
    new = _relevel(sec_lines, level - sec_level)
    tail = lines[end:]
    out = lines[:start] + new + ([""] + tail if tail else [])
    text = nl.join(out)
    return text + nl if page_text.endswith(("\n", "\r")) or not tail else text


# --------------------------------------------------------------------------------------------
# Pages

def ancestors(slug: str) -> list[str]:
    """The ancestors of a normalised slug, root first: ``a/b/c/`` → ``/``, ``a/``, ``a/b/``."""
    parts = normalize_slug(slug).strip("/").split("/")
    if parts == [""]:
        return []  # the root has no parent
    return ["/"] + ["/".join(parts[:i]) + "/" for i in range(1, len(parts))]


@dataclass(frozen=True)
class Page:
    slug: str
    title: str
    content: str
    phid: str = ""
    status: str = "active"


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


def same_content(a: str, b: str) -> bool:
    # The server may normalise line endings and trailing whitespace; do not edit over that.
    return a.replace("\r\n", "\n").rstrip() == b.replace("\r\n", "\n").rstrip()
