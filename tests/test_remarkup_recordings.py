"""escape.remarkup / escape.taskref against what a real Phorge did with each form.

The fixtures in ``tests/fixtures/conduit-second/`` are copies of ``../shared/conduit/`` recordings from
a real Phorge (commit 07c1a51): ``remarkup.process`` renderings of a hostile title in every
quoting form, ``maniphest.edit`` comments referencing tasks in every form with the mention edges
(``edge.search``) and ``dateModified`` bumps they caused, and control characters in a comment.

Each test takes the text from a recording, runs clinicbot's escaping on it, and checks that the
result is exactly a form the recordings show inert (and that the old form is the one shown live).
"""

from __future__ import annotations

import html
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from clinicbot import escape
from tests.remarkup_scan import edge_forms, live_mentions

FIXTURES = Path(__file__).parent / "fixtures" / "conduit-second"

# Markers of live markup in remarkup.process HTML.
LIVE = {
    "person tag": "phui-tag-type-person",
    "object tag": "phui-tag-type-object",
    "external link": "remarkup-link-ext",
    "embedded file": "phabricator-remarkup-embed",
    "bold": "<strong>",
    "italic": "<em>",
    "stray %%%": "%%%",
}


@lru_cache(maxsize=None)
def recording(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def renderings() -> list[tuple[str, str, str, str]]:
    """(file, context, input, HTML output) of every recorded remarkup.process pair."""
    out = []
    for path in sorted(FIXTURES.glob("remarkup.process--*.json")):
        rec = recording(path.stem)
        params, result = rec["request_params"], rec["response"]["result"]
        for text, rendered in zip(params["contents"], result, strict=True):
            out.append((path.stem, params["context"], text, rendered["content"]))
    return out


def rendering_of(text: str, context: str | None = None) -> list[tuple[str, str]]:
    return [(f, html_) for f, ctx, t, html_ in renderings() if t == text and context in (None, ctx)]


def live_markers(rendered: str) -> set[str]:
    return {name for name, marker in LIVE.items() if marker in rendered}


# The hostile title and the column name, as the recordings used them.
_A = recording("remarkup.process--title-a-bare-in-sentence")["request_params"]["contents"]
TITLE = _A[0].removeprefix("Stale: ").removesuffix(" — please triage.")
COLUMN = _A[1].removeprefix("Stale: ").removesuffix(" — please triage.")
MONOSPACE_OPEN = '<tt class="remarkup-monospaced">'


def test_the_fixtures_are_the_recorded_title_and_column():
    assert "@alice" in TITLE and "{F1}" in TITLE and "{T1}" in TITLE and "**bold**" in TITLE
    assert COLUMN == "Clinic Team: Inbox"
    # left bare, everything in the title is live on a real Phorge
    [(_, bare)] = rendering_of(_A[0])
    assert live_markers(bare) >= {"person tag", "object tag", "external link", "embedded file", "bold", "italic"}


@pytest.mark.parametrize("text", [TITLE, COLUMN])
def test_escape_remarkup_is_a_recorded_inert_form_in_every_position(text):
    quoted = escape.remarkup(text)
    uses = [(f, ctx, t, out) for f, ctx, t, out in renderings() if quoted in t]
    # recorded in a sentence, a list item, a header, italics, after bold, and in Phriction
    assert len(uses) >= (6 if text == TITLE else 2), uses
    assert {ctx for _, ctx, _, _ in uses} >= ({"maniphest", "phriction"} if text == TITLE else {"maniphest"})
    for f, ctx, t, out in uses:
        # the whole text is one monospace span: plain, escaped, nothing stray
        assert MONOSPACE_OPEN + html.escape(text, quote=False) + "</tt>" in out, (f, t)
        outside = out.replace(MONOSPACE_OPEN + html.escape(text, quote=False) + "</tt>", "")
        rest = t.replace(quoted, "")
        assert "%%%" not in outside and "\u200b" not in out
        assert "/p/alice/" not in outside and "evil.example" not in outside and "PHID-FILE" not in outside
        # an object tag outside the span can only come from a bare monogram outside it in the input
        assert outside.count("phui-tag-type-object") == len(re.findall(r"\bT\d+\b", rest)), (f, t)


def test_backticks_inside_the_text_are_replaced_so_the_span_cannot_end_early():
    text = "a ` **b** @alice ` c"
    quoted = escape.remarkup(text)
    [(_, raw)] = rendering_of("Stale: `a ` **b** @alice ` c` — backtick inside the title")
    assert {"bold", "person tag"} <= live_markers(raw)  # a real backtick ends the span: live
    [(_, replaced)] = rendering_of(f"Stale: {quoted} — backtick replaced by U+00B4")
    assert quoted == "`a ´ **b** @alice ´ c`" and not live_markers(replaced)


@pytest.mark.parametrize("text, note", [("a %%% **b** %%% c", "%%% inside backticks"),
                                        ("trailing backslash \\", "backslash at the end")])
def test_percent_signs_and_a_trailing_backslash_do_no_harm(text, note):
    [(_, out)] = rendering_of(f"Stale: {escape.remarkup(text)} — {note}")
    span = MONOSPACE_OPEN + html.escape(text, quote=False) + "</tt>"
    assert out == f"<p>Stale: {span} — {note}</p>"  # the span, then the plain note: nothing live


def test_the_old_inline_literal_is_the_form_recorded_live():
    old = "%%%" + TITLE.replace("@", "@\u200b") + "%%%"  # what escape.remarkup() produced before
    assert escape.remarkup(TITLE) != old and "%%%" not in escape.remarkup(TITLE)
    [(_, out)] = rendering_of(f"Stale: {old} — please triage.")
    assert live_markers(out) >= {"stray %%%", "external link", "embedded file", "object tag", "bold"}
    for name in ("remarkup.process--title-b-literal-inline", "remarkup.process--title-b2-literal-in-list-item"):
        rec = recording(name)
        for text, result in zip(rec["request_params"]["contents"], rec["response"]["result"]):
            assert "%%%" in result["content"], text  # the delimiters print
    # the old form posted in a comment made a mention edge and attached F1; the new one did not
    assert recording("edge.search--hostile-title-clinicbot-current-escape")["response"]["result"]["data"]
    assert not recording("edge.search--hostile-title-in-backticks")["response"]["result"]["data"]


def test_the_recorded_digest_line_in_backticks_is_what_escape_remarkup_makes():
    value = recording("maniphest.edit--comment-hostile-title-in-backticks")["request_params"]["transactions"][0]["value"]
    title = re.fullmatch(r"- T45 `(.*)` — 3 days old", value).group(1)
    assert value == f"- T45 {escape.remarkup(title)} — 3 days old"
    assert len(recording("maniphest.edit--comment-hostile-title-in-backticks")["response"]["result"]["transactions"]) == 1
    old = recording("maniphest.edit--comment-hostile-title-clinicbot-current-escape")
    assert len(old["response"]["result"]["transactions"]) == 3  # comment + mention edge + file


# -- task references ---------------------------------------------------------------------------


def _ref_forms() -> dict[str, tuple[str, int, bool]]:
    """form -> (comment text, target task id, edge created?), from the recordings."""
    edges = {e["destinationPHID"] for e in recording("edge.search--mention-from-source")["response"]["result"]["data"]}
    before = {t["id"]: t for t in recording("maniphest.search--mention-targets-before")["response"]["result"]["data"]}
    after = {t["id"]: t for t in recording("maniphest.search--mention-targets-after")["response"]["result"]["data"]}
    forms = {}
    for path in sorted(FIXTURES.glob("maniphest.edit--comment-ref-*.json")):
        rec = recording(path.stem)
        form = path.stem.removeprefix("maniphest.edit--comment-ref-")
        value = rec["request_params"]["transactions"][0]["value"]
        [target] = [i for i, t in before.items() if t["fields"]["name"].endswith(f"form {form}")]
        created = before[target]["phid"] in edges
        # the three recorded facts agree: 2 transactions, an edge and a dateModified bump go together
        assert (len(rec["response"]["result"]["transactions"]) == 2) == created, form
        assert (after[target]["fields"]["dateModified"] > before[target]["fields"]["dateModified"]) == created, form
        forms[form] = (value, target, created)
    return forms


def test_taskref_is_the_recorded_form_that_creates_no_edge():
    forms = _ref_forms()
    assert {f for f, (_, _, created) in forms.items() if created} == {"bare", "braces", "with-title", "self-url"}
    value, target, created = forms["link-relative"]
    assert value == f"Digest line: {escape.taskref(f'T{target}')} needs triage." and not created
    assert escape.taskref(target) == escape.taskref(f"T{target}")
    # bare monograms (what the report templates wrote before) are recorded as edge-creating
    value, target, created = forms["bare"]
    assert value == f"Digest line: T{target} needs triage." and created
    # and it renders as a plain link, not an object tag with a hovercard
    [(_, out)] = rendering_of(escape.taskref("T1"))
    assert 'class="remarkup-link"' in out and not live_markers(out)


def test_the_scanner_flags_exactly_the_recorded_edge_forms():
    for form, (value, _, created) in _ref_forms().items():
        assert bool(edge_forms(value)) == created, (form, value, edge_forms(value))
    assert not edge_forms(f"- {escape.taskref('T5')} {escape.remarkup(TITLE)} — 3 days old")
    assert live_mentions(f"@carol: {escape.remarkup(TITLE)}") == {"carol"}


# -- control characters ------------------------------------------------------------------------


def test_control_characters_are_posted_and_rendered_verbatim_so_clinicbot_removes_them():
    [(_, text, out)] = [(f, t, o) for f, _, t, o in renderings() if f == "remarkup.process--control-chars"]
    for ch in ("\x1b", "\x07", "\u202e", "\u202c"):
        assert ch in text and ch in out  # Phorge keeps them: the only defence is ours
    stored = recording("transaction.search--control-chars-task")["response"]["result"]["data"]
    assert any("\x1b" in c["content"]["raw"] for x in stored for c in x["comments"])
    for fn in (escape.remarkup, escape.chat, escape.plain, escape.markdown, escape.term, escape.header):
        cleaned = fn(text)
        assert not re.search("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", cleaned), fn.__name__
        assert "RED" in cleaned and "abc" in cleaned
