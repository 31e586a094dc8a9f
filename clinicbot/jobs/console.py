"""The App's console: rich only when it has something to do (start-up is most of a cron run).

Under cron stdout is not a terminal and nearly everything printed is a plain line: importing rich
(about 50 ms of CPU) to write it unchanged is most of a warm job's own time. :class:`LazyConsole`
prints such a line itself, exactly as rich would, and hands everything else to a real
``rich.console.Console`` made on first need: a terminal (colours, tables, progress bars), a
renderable that is not a string, markup or ``:emoji:`` codes to interpret, a line rich would wrap,
any keyword argument it does not take itself, or any other attribute (``width``, ``capture``...).

"Exactly as rich would" is narrow on purpose: one ``str``, not on a terminal; markup is rendered by
rich's own parser (``rich.markup``, light: no console) and only its plain text kept (no colours off a
terminal); no ``:code:`` rich would replace when emoji codes are on (rich's own table says). With
``soft_wrap`` the text is written as it is unless it holds a character rich rewrites; otherwise only
printable ASCII and newlines (one character, one cell), wrapped at rich's width as rich wraps
it (:func:`wrap`, rich's word division for that case). tests/test_startup_console.py compares both on many strings and widths.
"""

from __future__ import annotations

import os
import re
import sys
from typing import IO, Any

_FAST_KEYWORDS = frozenset({"markup", "highlight", "emoji", "end", "soft_wrap"})
_PRINTABLE = frozenset(chr(c) for c in range(0x20, 0x7F)) | {"\n"}
# The only characters rich changes in soft-wrapped output (Text strips BEL, BS, VT, FF, CR; tabs are
# expanded): anything else, a zero-width space or an emoji included, is written as it is.
_REWRITTEN = frozenset("\x07\x08\t\x0b\x0c\r")
_WORD = re.compile(r" *[^ ]+ *")  # rich._wrap's word (\s*\S+\s*) where the only whitespace is a space


def wrap(text: str, width: int) -> str:
    """``text`` (printable ASCII and newlines) as rich prints it ``width`` cells wide, not soft-wrapped:
    each line cut before the word that does not fit (a word: leading spaces, the word, its trailing
    spaces), a word longer than the line folded, spaces past the width dropped, then cropped."""
    out: list[str] = []
    for line in text.split("\n"):
        breaks, offset = [], 0
        for match in _WORD.finditer(line):
            start, word = match.start(), match.group(0)
            length = len(word.rstrip(" "))
            if width - offset >= length:
                offset += len(word)
            elif length > width:  # folded: chunks of `width` characters, each on a line of its own
                chunks = [word[i:i + width] for i in range(0, len(word), width)]
                for i, chunk in enumerate(chunks):
                    if start:
                        breaks.append(start)
                    if i == len(chunks) - 1:
                        offset = len(chunk)
                    else:
                        start += len(chunk)
            elif offset and start:
                breaks.append(start)
                offset = len(word)
        for a, b in zip([0, *breaks], [*breaks, len(line)]):
            piece = line[a:b]
            if len(piece) > width:  # rich's rstrip_end(width), then truncate(width)
                excess, spaces = len(piece) - width, len(piece) - len(piece.rstrip(" "))
                piece = piece[:len(piece) - min(spaces, excess)][:width]
            out.append(piece)
    return "\n".join(out)


def _emoji_replace(text: str) -> str:
    """rich's own :emoji: substitution (a module that imports no more than rich's table of codes)."""
    from rich._emoji_replace import _emoji_replace as replace

    return replace(text)


# rich.markup's tag, with the backslashes before it.
_TAG = re.compile(r"((\\*)\[([a-z#/@][^[]*?)])")
# Style names that rich's Style.normalize leaves as they are (the built-in templates use a few of
# them): markup made only of these is rendered here, without importing rich.
_STYLES = frozenset(["bold", "italic", "dim", "underline", "strike", "reverse", *(
    f"{attr}{colour}" for attr in ("", "bold ", "dim ", "italic ", "underline ")
    for colour in ("red", "green", "yellow", "blue", "magenta", "cyan", "white"))])


def plain_markup(text: str) -> str | None:
    """``rich.markup.render(text, emoji=False).plain`` for markup whose tags all name one of
    _STYLES (closed by name or by ``[/]``); None for anything else (rich decides)."""
    if not _REWRITTEN.isdisjoint(text):
        return None  # rich's Text drops some control characters
    out: list[str] = []
    stack: list[str] = []
    position = 0
    for match in _TAG.finditer(text):
        full, escapes, name = match.groups()
        start, end = match.span()
        if start > position:
            out.append(text[position:start].replace("\\[", "["))
        position = end
        if escapes:
            backslashes, escaped = divmod(len(escapes), 2)
            out.append("\\" * backslashes)
            if escaped:  # an escaped tag is text
                out.append(full[len(escapes):])
                continue
        if not name.startswith("/"):
            if name not in _STYLES:
                return None
            stack.append(name)
        elif not name[1:].strip():
            if not stack:
                return None  # rich: "[/]" has nothing to close
            stack.pop()
        else:
            close = name[1:].strip()
            if close not in stack:
                return None
            del stack[len(stack) - 1 - stack[::-1].index(close)]  # the last one opened, as rich
    out.append(text[position:].replace("\\[", "["))
    return "".join(out)


def _markup_plain(text: str, emoji: bool) -> str | None:
    """The text rich's markup parser leaves of ``text`` (tags dropped, ``\\[`` unescaped, :emoji: replaced
    when ``emoji``); None when it is not valid markup (then rich itself raises its error)."""
    if not emoji or ":" not in text:
        done = plain_markup(text)
        if done is not None:
            return done
    from rich.errors import MarkupError
    from rich.markup import render

    try:
        return render(text, emoji=emoji).plain
    except MarkupError:
        return None


class LazyConsole:
    """Prints plain lines itself; anything else goes to a ``rich.console.Console(stderr=...)`` made once."""

    def __init__(self, stderr: bool = False, environ: dict[str, str] | None = None):
        self.stderr = stderr
        self._environ = environ if environ is not None else os.environ
        self._rich: Any = None

    # -- what rich would decide ------------------------------------------------------------------
    @property
    def file(self) -> IO[str]:
        """The stream at the time of writing (as rich's ``Console.file``: tests swap sys.stdout)."""
        if self._rich is not None:
            return self._rich.file
        return sys.stderr if self.stderr else sys.stdout

    @property
    def is_terminal(self) -> bool:
        """rich's answer, without rich: TTY_COMPATIBLE, FORCE_COLOR, then the stream's isatty()."""
        if self._rich is not None or "idlelib" in sys.modules or "IPython" in sys.modules:
            return bool(self.rich.is_terminal)
        tty = self._environ.get("TTY_COMPATIBLE", "")
        if tty in ("0", "1"):
            return tty == "1"
        force = self._environ.get("FORCE_COLOR")
        if force is not None:
            return force != ""
        isatty = getattr(self.file, "isatty", None)
        try:
            return False if isatty is None else bool(isatty())
        except ValueError:
            return False

    def plain_width(self) -> int:
        """rich's width when not on a terminal: the first std stream with a size, COLUMNS over it, else 80."""
        width = None
        for fd in (0, 1, 2):
            try:
                width = os.get_terminal_size(fd).columns
            except (AttributeError, ValueError, OSError):
                continue
            break
        columns = self._environ.get("COLUMNS")
        if columns is not None and columns.isdigit():
            width = int(columns)
        return width or 80

    # -- printing --------------------------------------------------------------------------------
    def print(self, *objects: Any, **kwargs: Any) -> None:
        text = self._plain(objects, kwargs) if self._rich is None else None
        if text is None:
            self.rich.print(*objects, **kwargs)
            return
        stream = self.file
        stream.write(text)
        stream.flush()

    def _plain(self, objects: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        """What rich would write for ``objects``, when this class can tell (see the module docstring)."""
        if len(objects) > 1 or not _FAST_KEYWORDS.issuperset(kwargs):
            return None
        text = objects[0] if objects else ""
        end = kwargs.get("end", "\n")
        if type(text) is not str or type(end) is not str or self.is_terminal:
            return None
        emoji = kwargs.get("emoji") is not False
        if kwargs.get("markup") is not False and "[" in text:
            text = _markup_plain(text, emoji)  # the text without its tags, as rich renders it
            if text is None:
                return None
        elif emoji and ":" in text and _emoji_replace(text) != text:
            return None  # an :emoji: code rich would replace (a time like 09:30:00 is none)
        if kwargs.get("soft_wrap"):  # written as it is: nothing wrapped or cropped, no cell measured
            return text + end if _REWRITTEN.isdisjoint(text + end) else None
        if not _PRINTABLE.issuperset(text + end):
            return None  # wide or combining characters: rich measures cells
        width = self.plain_width()  # wrapped, then ``end`` added and every line cropped
        return "\n".join(line[:width] for line in (wrap(text, width) + end).split("\n"))

    # -- everything else: rich itself ------------------------------------------------------------
    @property
    def rich(self) -> Any:
        if self._rich is None:
            from rich.console import Console

            self._rich = Console(stderr=self.stderr)
        return self._rich

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_rich", "_environ", "stderr"):
            raise AttributeError(name)
        return getattr(self.rich, name)
