"""What a real Phorge would still interpret in a piece of Remarkup clinicbot posts.

Mirrors the rules that matter, as the recordings in ``tests/fixtures/conduit-second/`` show them
(and ``test_remarkup_recordings.py`` checks this module against those recordings):

* inline monospace (PhutilRemarkupMonospaceRule: ``##…##`` or `` `…` `` after a non-word
  character, within a line) shows its content as plain text;
* a whole-line ``%%%…%%%`` is a literal;
* ``[[ target | name ]]`` is a plain link: no object tag, no mention edge;
* everything else is live: a bare ``T1`` or ``{T1}`` or a bare task URL creates a mention edge,
  ``{F1}`` embeds a file, ``@name`` mentions (and subscribes).
"""

from __future__ import annotations

import re

MONOSPACE = re.compile(r"##(.+?)##|\B`(.+?)`", re.ASCII)
LINK = re.compile(r"\[\[.*?\]\]")
WHOLE_LINE_LITERAL = re.compile(r"^%%%.*%%%\s*$")

# Reference forms that create a mention edge (maniphest.edit--comment-ref-*.json): bare monogram,
# braces, a bare URL of a task. File embeds ({F1}, bare F1) attach the file to the task.
EDGE_FORMS = {
    "bare monogram": re.compile(r"(?<![\w@#/-])[TF]\d+\b"),
    "braces": re.compile(r"\{[A-Z]+\d+[^}]*\}"),
    "task URL": re.compile(r"https?://\S+/T\d+\b"),
}
MENTION = re.compile(r"(?<![\w@.<])@([A-Za-z][\w.-]*)")
STRAY_LITERAL = "%%%"


def live_text(remarkup: str) -> str:
    """The parts of ``remarkup`` a real Phorge would interpret: monospace spans, plain links and
    whole-line literals removed (each replaced by a space so words do not join)."""
    out = []
    for line in remarkup.split("\n"):
        if WHOLE_LINE_LITERAL.match(line.strip()):
            continue
        line = MONOSPACE.sub(" ", line)
        out.append(LINK.sub(" ", line))
    return "\n".join(out)


def edge_forms(remarkup: str) -> list[str]:
    """Every reference in ``remarkup`` that would create a mention edge (or attach a file)."""
    live = live_text(remarkup)
    return [f"{name}: {m.group(0)}" for name, rx in EDGE_FORMS.items() for m in rx.finditer(live)]


def live_mentions(remarkup: str) -> set[str]:
    return {m.rstrip("._-") for m in MENTION.findall(live_text(remarkup))}


def problems(remarkup: str, *, allowed_mentions: set[str] = frozenset()) -> list[str]:
    """Edge-creating references, unintended mentions, stray ``%%%``, control characters."""
    found = edge_forms(remarkup)
    found += [f"mention: @{m}" for m in live_mentions(remarkup) - set(allowed_mentions)]
    found += ["stray %%%" for line in live_text(remarkup).split("\n") if STRAY_LITERAL in line]
    found += [f"control character U+{ord(c):04X}" for c in remarkup
              if re.match("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", c)]
    for line in remarkup.split("\n"):
        # An opening backtick right after a word character is not a monospace span on Phorge.
        stripped = MONOSPACE.sub(" ", line)
        if "`" in stripped:
            found.append(f"unbalanced or glued backtick: {line!r}")
    return found
