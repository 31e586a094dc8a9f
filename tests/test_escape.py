"""Hostile task text must stay plain text in every medium."""

from __future__ import annotations

import re

import pytest

from clinicbot import escape

HOSTILE = "@alice {F1} <script>alert(1)</script> <!channel> **bold**"


def no_live_mention(text: str) -> bool:
    return re.search(r"@[A-Za-z]", text) is None


def test_remarkup_is_one_literal_without_live_mentions():
    out = escape.remarkup(HOSTILE)
    assert out.startswith("%%%") and out.endswith("%%%") and out.count("%%%") == 2
    assert no_live_mention(out)
    assert "{F1}" in out  # shown, but inside the literal


def test_remarkup_cannot_close_the_literal_early():
    out = escape.remarkup("a %%% @bob %%% b %")
    assert out.count("%%%") == 2 and no_live_mention(out)
    assert not out[:-3].endswith("%")


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
