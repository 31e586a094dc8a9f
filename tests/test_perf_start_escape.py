"""Start-up (issue 12): a report renders without importing rich; its terminal escaping is rich's."""

from __future__ import annotations

from clinicbot import escape


def test_term_escapes_exactly_as_rich_markup_escape():
    """escape.term does rich.markup.escape's work itself (a report renders without importing rich)."""
    import random

    from rich.markup import escape as rich_escape

    rng = random.Random(12)
    tokens = ["[", "]", "\\", "[b]", "[/b]", "[/]", "[red on blue]", "[@click]", "[#fff]", "[link=x]", "[1]",
              "[ x]", "[A]", "a", " ", "é", "T12", "@bob", "\\[", "[[", "]]"]
    for _ in range(3000):
        text = "".join(rng.choice(tokens) for _ in range(rng.randint(0, 12)))
        assert escape.term(text) == rich_escape(escape.plain(text)), text
