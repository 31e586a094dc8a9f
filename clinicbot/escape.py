"""Task text is data: quote it for each medium so it can never ping, embed or inject.

Titles, comments and names come from anyone who can file a task. When clinicbot echoes
them in a Remarkup comment, a chat message, an email or a page they must render as plain
text: no ``@mention`` (pings and subscribes), no ``{F1}``/``{T1}`` embeds, no ``**markup**``,
no ``<!channel>``/``@here``, no HTML.

Each function is for one medium and is applied to *values* by the templates (Jinja filters
``remarkup``, ``chat``, ``plain``; HTML uses Jinja's autoescape).
"""

from __future__ import annotations

import re

ZWSP = "\u200b"  # zero-width space: breaks a token without changing how it reads
_WS = re.compile(r"\s+")


def one_line(text: str, limit: int | None = None) -> str:
    """Collapse whitespace (titles and excerpts are shown on one line); cut to ``limit`` chars."""
    text = _WS.sub(" ", str(text or "")).strip()
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 1)].rstrip() + "…"
    return text


def _break_mentions(text: str) -> str:
    # "@alice" -> "@\u200balice": no server or chat resolves that to a user.
    return text.replace("@", "@" + ZWSP)


def remarkup(text: str, limit: int | None = None) -> str:
    """Inline Remarkup literal: ``%%%…%%%`` turns off every rule (mentions, embeds, bold, links).

    Belt and braces: the literal delimiter cannot occur inside, and ``@`` is broken anyway, so
    even a server that parses differently cannot turn the text into a mention.
    """
    body = one_line(text, limit)
    if not body:
        return ""
    body = body.replace("%%%", "%%" + ZWSP + "%")
    body = _break_mentions(body)
    # A trailing % would merge with the closing delimiter.
    if body.endswith("%"):
        body += ZWSP
    return f"%%%{body}%%%"


def chat(text: str, limit: int | None = None) -> str:
    """Slack-compatible mrkdwn/Markdown (Slack, Mattermost, Rocket.Chat, Zulip).

    ``& < >`` are entity-escaped (Slack's own rule: ``<!channel>`` and ``<@U1>`` die there);
    ``@`` is broken (Mattermost and Rocket.Chat ping on a bare ``@here``); the text goes into an
    inline code span so ``*bold*``/``_it_``/links do not render; backticks inside become ´.
    """
    body = one_line(text, limit)
    if not body:
        return ""
    body = body.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    body = _break_mentions(body).replace("`", "´")
    return f"`{body}`"


def plain(text: str, limit: int | None = None) -> str:
    """Plain-text email bodies and terminals: one line, mentions broken (mail is forwarded to chat)."""
    return _break_mentions(one_line(text, limit))


def header(text: str, limit: int = 150) -> str:
    """An email header value: no line breaks (header injection), printable."""
    # Keep the zero-width space: plain() uses it to break mentions, in any filter order.
    return "".join(ch for ch in one_line(text, limit) if ch.isprintable() or ch == ZWSP)


def markdown(text: str, limit: int | None = None) -> str:
    """CommonMark inline: backslash-escape punctuation, entity-escape HTML, break mentions."""
    body = one_line(text, limit)
    body = body.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    body = re.sub(r"([\\`*_{}\[\]()#+\-.!|~])", r"\\\1", body)
    return _break_mentions(body)
