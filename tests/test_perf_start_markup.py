"""Start-up (issue 12): the built-in reports' terminal markup is printed off a terminal without
importing rich, exactly as rich prints it (compared with rich on many strings)."""

from __future__ import annotations

import random

from rich.markup import MarkupError, render
from rich.style import Style

from clinicbot.jobs.console import _STYLES, plain_markup

TOKENS = ["a", " ", "[bold]", "[/bold]", "[bold red]", "[/bold red]", "[/]", "[italic]", "[/italic]", "[b]",
          "[/b]", "[red bold]", "[Bold]", "[bold ]", "[/ bold ]", "\\", "\\[", "\\\\[", "[", "]", "[1]", "[x]",
          "[/x]", "[link=http://h/T1]", "[@click]", "é", "\u200b", ":smile:", "\n", "\t", "\r", "\x07", "[[", "]]"]


def rich_plain(text: str) -> str | None:
    try:
        return render(text, emoji=False).plain
    except MarkupError:
        return None


def test_the_styles_rendered_here_are_as_rich_normalises_them():
    assert all(Style.normalize(name) == name for name in _STYLES)


def test_plain_markup_is_what_rich_renders_or_none():
    rng = random.Random(7)
    handled = 0
    for _ in range(20000):
        text = "".join(rng.choice(TOKENS) for _ in range(rng.randint(0, 14)))
        ours = plain_markup(text)
        if ours is not None:
            handled += 1
            assert ours == rich_plain(text), text
    assert handled > 2000  # many are done here (the rest hold a tag rich must judge)


def test_the_built_in_templates_markup_is_done_without_rich():
    text = "[bold]Digest[/bold] \\[T12] [bold red]2 overdue[/bold red] [italic]x[/italic] [/]a"
    assert plain_markup(text) is None  # "[/]" with nothing open: rich's error, rich decides
    assert plain_markup(text[:-4]) == "Digest [T12] 2 overdue x " == rich_plain(text[:-4])
