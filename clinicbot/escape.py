"""Task text is data: quote it for each medium so it can never ping, link, embed or inject.

Titles, comments and names come from anyone who can file a task. When clinicbot echoes
them in a Remarkup comment, a chat message, an email, a page or a terminal they must show as
plain text: no ``@mention`` (pings and subscribes), no ``{F1}``/``{T1}``/``T1`` object links or
embeds, no ``**markup**``, no ``<!channel>``/``@here``, no HTML, no escape sequences.

:func:`clean` is the one place that removes control characters (C0 except where the format
allows newline/tab, DEL, C1) and bidi overrides/isolates (U+202A–U+202E, U+2066–U+2069). Every
medium function below calls it (through :func:`one_line`), and the template environment runs it
over every value a template prints (``finalize``), so a custom template that forgets a filter
still cannot send ``ESC[2J`` to a terminal or a right-to-left override to Phabricator.

Each function is for one medium and is applied to *values* by the templates (Jinja filters
``remarkup``, ``remarkup_cell``, ``taskref``, ``chat``, ``plain``, ``md``, ``header``, ``term``;
HTML uses Jinja's autoescape plus ``plain``).

Remarkup, decided from what a real Phorge renders (``../shared/conduit/remarkup.process--*.json``):
``%%%…%%%`` is a literal only when it is the whole line; inside a line the ``%%%`` print and
everything inside stays live. Backslashes, HTML entities and zero-width spaces leave ``{F1}`` and
``T1`` live. The one inline form that shows any text inert (no mention, link, bold, embed, object
link, and no stray characters) is inline monospace, `` `text` ``, with every backtick inside
replaced by ``´`` (a backtick would end the span early). See :func:`remarkup`.
"""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup
from markupsafe import escape as html_escape

ZWSP = "\u200b"  # zero-width space: breaks a token without changing how it reads
BACKTICK_STANDIN = "\u00b4"  # ´ ACUTE ACCENT: looks like a backtick, never ends a monospace span
PIPE_STANDIN = "\u00a6"  # ¦ BROKEN BAR: a "|" that does not split a Remarkup table cell

# C0 controls except \t and \n, DEL, C1 controls; bidi embeddings/overrides (U+202A–U+202E) and
# isolates (U+2066–U+2069). \r is dropped too: a lone CR rewrites a terminal line.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_NO_LINES = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_WS = re.compile(r"\s+")
_TASK = re.compile(r"[Tt]?(\d+)")


def clean(text: Any, *, lines: bool = False) -> str:
    """Text without control characters or bidi overrides/isolates: THE one place that strips them.

    ``lines=True`` keeps newline and tab (multi-line formats: a whole comment, a page); else they
    go too. C1 controls include U+0085 (NEL) and U+009B (CSI, which some terminals obey like ESC[).
    Overrides and isolates are removed, not balanced: the text then reads in its logical order.
    """
    text = "" if text is None else str(text)
    if lines:
        return _CONTROL.sub(_drop_in_lines, text.replace("\r\n", "\n"))
    return _CONTROL_NO_LINES.sub(_drop_in_line, text)


def _drop_in_lines(m: re.Match[str]) -> str:
    return {"\r": "\n", "\x85": "\n"}.get(m.group(0), "")


def _drop_in_line(m: re.Match[str]) -> str:
    # Line-ish controls become a space (so words do not glue together); the rest vanish.
    return " " if m.group(0) in "\n\t\r\x0b\x0c\x1c\x1d\x1e\x1f\x85" else ""


def finalize(value: Any) -> Any:
    """Jinja ``finalize``: every printed value loses control characters (newlines and tabs stay).

    ``Markup`` stays ``Markup`` (charts, pre-rendered sections); ``None`` prints as Jinja prints it.
    """
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, Markup):
        return Markup(clean(str(value), lines=True))
    if isinstance(value, str):
        return clean(value, lines=True)
    return value


def scrub(data: Any) -> Any:
    """A JSON-ready structure with every string :func:`clean` (newlines kept): for ``--format json``."""
    if isinstance(data, str):
        return clean(data, lines=True)
    if isinstance(data, dict):
        return {scrub(k) if isinstance(k, str) else k: scrub(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [scrub(v) for v in data]
    return data


def one_line(text: Any, limit: int | None = None) -> str:
    """Clean, collapse whitespace (titles and excerpts are shown on one line); cut to ``limit`` chars."""
    text = "" if text is None else str(text)
    # Printable text has no control character, bidi override or whitespace but " " (a summary
    # usually is: it skips both regexes, once per finding).
    text = text.strip() if text.isprintable() and "  " not in text else _WS.sub(" ", clean(text)).strip()
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 1)].rstrip() + "…"
    return text


def _break_mentions(text: str) -> str:
    # "@alice" -> "@\u200balice": no chat server resolves that to a user.
    return text.replace("@", "@" + ZWSP)


def remarkup(text: Any, limit: int | None = None, *, cell: bool = False) -> str:
    """Inline monospace, the one inline Remarkup form that is inert: `` `text` ``, ``` ` ``` → ``´``.

    Everything between the backticks is stored as plain text by Phorge's monospace rule, which
    runs before every link, mention, object and markup rule (recordings ``…-d-monospace-backticks``,
    ``…-backtick-and-edge-cases``, ``…-title-context-phriction``; no mention edge, no subscription:
    ``maniphest.edit--comment-hostile-title-in-backticks``). No zero-width spaces are needed inside.
    The opening backtick must follow a space, punctuation or the line start (Phorge requires a
    non-word boundary there): templates put it after a space, ``(`` or ``:``.

    ``cell=True`` is for a cell of a Remarkup table, whose row splitter runs before any inline
    rule: ``|`` becomes ``¦`` and ``[[`` is broken, so the cell cannot be split or swallowed.
    """
    body = one_line(text, limit)
    if not body:
        return ""
    body = body.replace("`", BACKTICK_STANDIN)
    if cell:
        body = body.replace("|", PIPE_STANDIN).replace("[[", "[" + ZWSP + "[")
    return f"`{body}`"


# Phorge's inline monospace rule (PhutilRemarkupMonospaceRule), byte-for-byte: PCRE without /u,
# so \B is ASCII. Applied per line here (Phorge applies it per block): a span we see is one Phorge
# sees, and where we see none we treat the text as live (the safe side).
_MONOSPACE = re.compile(r"##(.+?)##|\B`(.+?)`", re.ASCII)


def outside_monospace(text: str, fn: Any) -> str:
    """``fn`` applied to every part of Remarkup ``text`` that is not inside an inline monospace span.

    For guards at the write boundary (breaking stray ``@mentions``): text :func:`remarkup` quoted
    is inert already and is left exactly as it is, with no zero-width characters added inside.
    """
    out: list[str] = []
    for line in text.split("\n"):
        parts, pos = [], 0
        for m in _MONOSPACE.finditer(line):
            parts.append(fn(line[pos:m.start()]))
            parts.append(m.group(0))
            pos = m.end()
        parts.append(fn(line[pos:]))
        out.append("".join(parts))
    return "\n".join(out)


def remarkup_cell(text: Any, limit: int | None = None) -> str:
    """:func:`remarkup` for a table cell (``| {{ x|remarkup_cell }} |``)."""
    return remarkup(text, limit, cell=True)


def taskref(task: Any) -> str:
    """A task link that creates no mention edge: ``[[ /T123 | T123 ]]``.

    A bare ``T123``, ``{T123}``, ``T123 (title)`` or a bare task URL posted in a comment or page
    adds "Mentioned In" to that task and bumps its ``dateModified`` (resetting staleness clocks);
    ``[[ /T123 | T123 ]]`` renders as a plain link and creates no edge
    (``maniphest.edit--comment-ref-*.json``, ``edge.search--mention*.json``). Anything that is not
    a task id (``T123``, ``123``) is quoted as text.
    """
    raw = one_line(task)
    m = _TASK.fullmatch(raw)
    if not m:
        return remarkup(raw)
    monogram = f"T{int(m.group(1))}"
    return f"[[ /{monogram} | {monogram} ]]"


def chat(text: Any, limit: int | None = None) -> str:
    """Slack-compatible mrkdwn/Markdown (Slack, Mattermost, Rocket.Chat, Zulip).

    ``& < >`` are entity-escaped (Slack's own rule: ``<!channel>`` and ``<@U1>`` die there);
    ``@`` is broken (Mattermost and Rocket.Chat ping on a bare ``@here``); the text goes into an
    inline code span so ``*bold*``/``_it_``/links do not render; backticks inside become ´.
    """
    body = one_line(text, limit)
    if not body:
        return ""
    body = body.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    body = _break_mentions(body).replace("`", BACKTICK_STANDIN)
    return f"`{body}`"


def plain(text: Any, limit: int | None = None) -> str:
    """Plain-text email bodies: one line, clean, mentions broken (mail is forwarded to chat)."""
    return _break_mentions(one_line(text, limit))


def header(text: Any, limit: int = 150) -> str:
    """An email header value: no line breaks (header injection), printable."""
    # Keep the zero-width space: plain() uses it to break mentions, in any filter order.
    return "".join(ch for ch in one_line(text, limit) if ch.isprintable() or ch == ZWSP)


def markdown(text: Any, limit: int | None = None) -> str:
    """CommonMark inline: backslash-escape punctuation, entity-escape HTML, break mentions."""
    body = one_line(text, limit)
    body = body.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    body = re.sub(r"([\\`*_{}\[\]()#+\-.!|~])", r"\\\1", body)
    return _break_mentions(body)


def term(text: Any, limit: int | None = None) -> str:
    """For rich console markup (``console.print(..., markup=True)``): :func:`plain`, ``[`` escaped.

    For rich ``Text``/``markup=False`` output use :func:`one_line` (already clean). The escaping is
    ``rich.markup.escape``'s, done here so that a report renders without importing rich
    (tests/test_perf_start_escape.py compares the two).
    """
    body = _RICH_TAG.sub(lambda m: f"{m.group(1)}{m.group(1)}\\{m.group(2)}", plain(text, limit))
    return body + "\\" if body.endswith("\\") and not body.endswith("\\\\") else body


# What rich's markup parser reads as a tag, with the backslashes before it (rich.markup.escape).
_RICH_TAG = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")


def html(text: Any, limit: int | None = None) -> Markup:
    """An HTML text node or attribute value: clean, one line, mentions broken, entity-escaped."""
    return html_escape(plain(text, limit))
