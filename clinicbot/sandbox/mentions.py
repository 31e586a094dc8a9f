"""Which tasks and users a piece of Remarkup mentions, the way Phorge decides it.

Phorge finds mentions by running its Remarkup engine over a comment or a description
(``PhabricatorApplicationTransactionEditor::expandRemarkupBlockTransactions`` and
``buildSubscribeTransaction``): a task is mentioned where the object rule
(``PhabricatorObjectRemarkupRule``, ``T123`` and ``{T123}``) or the self-link extension
(``PhabricatorSelfHyperlinkEngineExtension``, a bare ``http://<this host>/T123``) finds it, and a
user where ``PhabricatorMentionRemarkupRule`` (``@name``) does. Whatever an earlier rule has
already turned into a stored token is no longer text, so it mentions nothing. This module
replays that order on plain strings:

* blocks (``PhutilRemarkupEngine::splitTextIntoBlocks``): ``%%%`` literal blocks (a line
  *starting* with ``%%%``, to a line ending with ``%%%``), fenced ```` ``` ```` and indented
  (two spaces) code blocks are inert; quotes, lists, headers, tables and paragraphs are live;
* inline rules, by priority: inline monospace (`` `…` `` and ``##…##``, 100), document links
  (``[[ … ]]`` and ``[name](href)``, 150), hyperlinks (``<…>``, ``{…}`` and bare, 400; a self
  link whose path is a task monogram mentions the task), object references (450), ``@user``
  (500). A replaced span becomes ``\\x01<n>Z`` exactly as in Phorge, so the word-boundary
  checks of later rules see the same neighbours (`` `x`T1 `` mentions nothing there either).

Recorded (``maniphest.edit--comment-ref-*.json``): ``T35``, ``{T36}``, ``T39 (title)`` and
``http://<host>/T41`` make the edge; ``[[ /T37 | T37 ]]``, ``[[ http://<host>/T38 | T38 ]]``,
`` `T40` ``, a whole-line ``%%%T42%%%`` and ``T\\u200b43`` do not.

Not modelled (approximations, see the sandbox docs): other object types (``F1`` files, ``D1``
revisions…), ``{nav …}``/``{key …}``/``{icon …}``-style rules that could swallow a monogram,
``${{{…}}}`` eval, interpreter blocks, the list rule's exact continuation rules, nested quotes
beyond stripping ``>``, and ``remarkup.ignored-object-names``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# -- block rules -------------------------------------------------------------------------

_LITERAL_START = re.compile(r"^\s*%%%")
_LITERAL_END = re.compile(r"%%%\s*$")
_LITERAL_TRIVIAL = re.compile(r"^\s*%%%\s*$")
_FENCE_START = re.compile(r"^\s*```")
_FENCE_ONE_LINE = re.compile(r"^\s*```.*```\s*$")
_FENCE_END = re.compile(r"```\s*$")
_INDENTED = re.compile(r"^\s{2,}.+")
_LIST_ITEM = re.compile(r"^\s*(?:[-*#]+|[1-9][0-9]*[.)]|\[\D?\])\s+")
_QUOTE = re.compile(r"^\s*>+ ?")

# -- inline rules (PHP patterns without /u are ASCII; the object rule uses /u) ---------------

_MONOSPACE = re.compile(r"##([\s\S]+?)##|\B`(.+?)`", re.ASCII)
_DOCUMENT_LINK = re.compile(r"\B\[\[([^|\]]+?)(?:\|([^\]]+?))??\]\]\B", re.ASCII)
_MARKDOWN_LINK = re.compile(r"\B\[([^\]]+?)\]\((\s*?[^\s()]*?(?:(?:\([^ ()]*?\))+?[^\s()]*?)??\s*?)\)\B", re.ASCII)
_URI = r"\w{3,32}://[^\s\x01]"
_ANGLE_LINK = re.compile(rf"<({_URI}+?)>", re.ASCII)
_CURLY_LINK = re.compile(rf"\{{({_URI}+?)\}}", re.ASCII)
_BARE_LINK = re.compile(rf"(?<!\w){_URI}+", re.ASCII)
_TRAILING_PUNCTUATION = re.compile(r"[;,.:!?]+$")
_TASK_EMBED = re.compile(r"\B\{T([1-9]\d*)([,\s](?:[^}\\]|\\.)*)?\}\B")
_TASK_REF = re.compile(r"(?<![#@-])\bT([1-9]\d*)(?:#([-\w]+))?(?!\w)")
_USER = re.compile(r"(?<![\w@])@([a-zA-Z0-9._-]*[a-zA-Z0-9_-])", re.ASCII)
_SELF_TASK_PATH = re.compile(r"^/T(\d*[1-9]\d*)$", re.IGNORECASE)
# Every mention needs one of these (a monogram, a self link's /T123 path, an @): most texts have none.
_MAYBE = re.compile(r"[Tt]\d|@")


@dataclass
class Mentions:
    """Task ids and lower-cased usernames, in order of appearance, without repeats."""

    tasks: list[int] = field(default_factory=list)
    users: list[str] = field(default_factory=list)

    def add_task(self, task_id: int) -> None:
        if task_id not in self.tasks:
            self.tasks.append(task_id)

    def add_user(self, name: str) -> None:
        name = name.lower()
        if name not in self.users:
            self.users.append(name)


def find_mentions(text: str, self_host: str) -> Mentions:
    """Tasks and users ``text`` mentions when posted to a Phorge whose host is ``self_host``.

    Task ids are not checked against any store (unknown ids mention nothing: the caller drops them).
    """
    found = Mentions()
    if not _MAYBE.search(text):
        return found
    for chunk in _live_chunks(text.split("\n")):
        _inline(chunk, self_host.lower(), found)
    return found


def _live_chunks(lines: list[str]) -> list[str]:
    """The text of every block whose inline markup Phorge interprets (paragraphs joined)."""
    chunks: list[str] = []
    para: list[str] = []
    in_list = False

    def flush() -> None:
        if para:
            chunks.append("\n".join(para))
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            flush()
            in_list = False
            i += 1
        elif _LIST_ITEM.match(line) or (in_list and not _LITERAL_START.match(line)):
            # List items and their continuation lines are live; each item separately.
            if _LIST_ITEM.match(line):
                flush()
            in_list = True
            para.append(line)
            i += 1
        elif _LITERAL_START.match(line):
            flush()
            i += _literal_length(lines, i)
        elif _QUOTE.match(line):
            flush()
            quoted = []
            while i < len(lines) and _QUOTE.match(lines[i]):
                quoted.append(_QUOTE.sub("", lines[i], count=1))
                i += 1
            chunks.extend(_live_chunks(quoted))
        elif _FENCE_START.match(line):
            flush()
            i += _fence_length(lines, i)
        elif _INDENTED.match(line):
            flush()
            i += 1
            while i < len(lines) and (not lines[i].strip() or re.match(r"^\s{2,}", lines[i])):
                i += 1
        else:
            para.append(line)
            i += 1
    flush()
    return chunks


def _literal_length(lines: list[str], start: int) -> int:
    """PhutilRemarkupLiteralBlockRule::getMatchingLineCount."""
    cursor, block_start, found_empty = start, None, False
    while cursor < len(lines):
        line = lines[cursor]
        if block_start is None:
            if found_empty:
                break
            if _LITERAL_START.search(line):
                block_start = cursor
        if block_start is not None:
            is_end = bool(_LITERAL_END.search(line))
            if is_end and cursor == block_start and _LITERAL_TRIVIAL.search(line):
                is_end = False
            if is_end:
                block_start = None
                cursor += 1
                continue
        if block_start is None:
            if line.strip():
                break
            found_empty = True
        cursor += 1
    return max(cursor - start, 1)


def _fence_length(lines: list[str], start: int) -> int:
    """PhutilRemarkupCodeBlockRule::getMatchingLineCount for ```-blocks."""
    if _FENCE_ONE_LINE.match(lines[start]):
        return 1
    cursor = start + 1
    while cursor < len(lines):
        if _FENCE_END.search(lines[cursor]):
            return cursor - start + 1
        cursor += 1
    return cursor - start


def _inline(text: str, self_host: str, found: Mentions) -> None:
    counter = [0]

    def token(_: object = None) -> str:
        counter[0] += 1
        return f"\x01{counter[0]}Z"

    text = text.replace("\x01", token())  # PhutilRemarkupEscapeRemarkupRule
    text = _MONOSPACE.sub(token, text)
    text = _DOCUMENT_LINK.sub(token, text)
    text = _MARKDOWN_LINK.sub(token, text)

    def link(uri: str) -> str:
        task_id = _self_task(uri, self_host)
        if task_id is not None:
            found.add_task(task_id)
        return token()

    text = _ANGLE_LINK.sub(lambda m: link(m.group(1)), text)
    text = _CURLY_LINK.sub(lambda m: link(m.group(1)), text)

    def bare(m: re.Match[str]) -> str:
        uri, tail = m.group(0), ""
        trailing = _TRAILING_PUNCTUATION.search(uri)
        if trailing:
            tail, uri = trailing.group(0), uri[: trailing.start()]
        if uri.endswith(")") and "(" not in uri:
            tail, uri = ")" + tail, uri[:-1]
        return link(uri) + tail

    text = _BARE_LINK.sub(bare, text)

    def task(m: re.Match[str]) -> str:
        found.add_task(int(m.group(1)))
        return token()

    text = _TASK_EMBED.sub(task, text)
    text = _TASK_REF.sub(task, text)
    for name in _USER.findall(text):
        found.add_user(name)


def _self_task(uri: str, self_host: str) -> int | None:
    """The task a link to this server names by its path (``http://host/T41``), if any."""
    try:
        parts = urlsplit(uri)
        host = (parts.hostname or "").lower()
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or (host and host != self_host):
        return None
    match = _SELF_TASK_PATH.match(parts.path)
    return int(match.group(1)) if match else None
