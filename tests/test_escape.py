"""Hostile task text must stay plain text in every medium."""

from __future__ import annotations

import re

import pytest

from clinicbot import escape

HOSTILE = "@alice {F1} <script>alert(1)</script> <!channel> **bold**"


def no_live_mention(text: str) -> bool:
    return re.search(r"@[A-Za-z]", text) is None


def test_remarkup_is_inline_monospace_with_backticks_replaced():
    out = escape.remarkup(HOSTILE + " `x` %%% end\\")
    # one monospace span, nothing inside can end it; no %%% literal, no zero-width characters
    assert out == "`" + HOSTILE + " ´x´ %%% end\\`"
    assert out.count("`") == 2 and "\u200b" not in out


def test_remarkup_is_one_clean_line_and_empty_stays_empty():
    assert escape.remarkup("a\nb\x1b[2J\x07 \u202ec") == "`a b[2J c`"
    assert escape.remarkup("") == "" and escape.remarkup(None) == "" and escape.remarkup("\x1b") == ""


def test_remarkup_cell_cannot_split_or_swallow_a_table_row():
    out = escape.remarkup_cell("a | b [[ c")
    assert "|" not in out and "[[" not in out and out.startswith("`") and out.endswith("`")


@pytest.mark.parametrize("value, expected", [("T12", "[[ /T12 | T12 ]]"), (7, "[[ /T7 | T7 ]]"),
                                             ("t0042", "[[ /T42 | T42 ]]"), ("T1 @alice", "`T1 @alice`"),
                                             ("", "")])
def test_taskref_links_without_a_mention_edge(value, expected):
    assert escape.taskref(value) == expected


def test_chat_escapes_slack_controls_and_mentions():
    out = escape.chat(HOSTILE + " @here `x`")
    assert "<" not in out and ">" not in out and "<!channel>" not in out
    assert "&lt;!channel&gt;" in out
    assert no_live_mention(out)
    assert out.startswith("`") and out.endswith("`") and out.count("`") == 2


def test_plain_and_header():
    assert no_live_mention(escape.plain(HOSTILE))
    assert "\n" not in escape.header("Subject\r\nBcc: evil@example.com")


def test_markdown_escapes_emphasis_and_html():
    out = escape.markdown(HOSTILE)
    assert "**" not in out.replace("\\*", "") and "<script>" not in out and no_live_mention(out)


@pytest.mark.parametrize("fn", [escape.remarkup, escape.chat, escape.plain, escape.markdown])
def test_newlines_and_limits(fn):
    out = fn("line one\nline two " + "x" * 500, limit=40)
    assert "\n" not in out and len(out) < 80


def test_header_keeps_broken_mentions_broken_in_either_order():
    assert no_live_mention(escape.header(escape.plain("@alice ping")))
    assert no_live_mention(escape.plain(escape.header("@alice ping")))


HOSTILE_CONTROLS = "a\x1b[2J\x1b]0;pwned\x07b\x00\x08\x7f\x85\x9b31m\u202ec\u202a\u2066d\u2069\r\ne"
FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.mark.parametrize("fn", [escape.remarkup, escape.remarkup_cell, escape.chat, escape.plain, escape.header,
                                escape.markdown, escape.term, escape.html, escape.one_line, escape.taskref])
def test_every_medium_strips_control_characters_and_bidi_overrides(fn):
    out = str(fn(HOSTILE_CONTROLS))
    assert not FORBIDDEN.search(out) and "\n" not in out and "\t" not in out
    assert "pwned" in out  # the text itself is kept, only the controls go


def test_clean_keeps_lines_only_when_asked():
    assert escape.clean("a\tb\r\nc\x1bd\u202e", lines=True) == "a\tb\ncd"
    assert escape.clean("a\tb\r\nc\x1bd\u202e") == "a b  cd"
    assert escape.scrub({"t": ["x\x1b[0m", {"y": "\u2066z"}], "n": 3}) == {"t": ["x[0m", {"y": "z"}], "n": 3}


def test_template_finalize_cleans_values_even_without_a_filter():
    from clinicbot.reports.templating import make_environment

    env = make_environment()
    assert env.from_string("{{ t }}|{{ t|plain }}").render(t="a\x1b[2Jb\u202e\nc") == "a[2Jb\nc|a[2Jb c"


def test_outside_monospace_leaves_spans_alone():
    text = "@a `@b` x`@c` ##@d## @e\n`@f"
    assert escape.outside_monospace(text, str.upper) == "@A `@b` X`@C` ##@d## @E\n`@F"
