"""Phriction publishing: one section replaced, the rest of the page untouched, one edit per change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clinicbot.conduit import ConduitClient, HTTPAnswer
from clinicbot.errors import ConduitAPIError
from clinicbot.wiki import normalize_slug, publish_page, publish_section, read_page, replace_section

SECTION = "= Current Clinic Duty Rotation =\n\n| Engineer |\n| --- |\n| alice |\n"
SECTION2 = "= Current Clinic Duty Rotation =\n\n| Engineer |\n| --- |\n| bob |\n"
PAGE = """\
= Core Platform Team =

Intro text the team wrote by hand.

= Current Clinic Duty Rotation =

Hand-edited, out of date:
* carol
* dave

== Sub-heading inside the old section ==

old details

= Escalation =

Call mona.
"""


# --------------------------------------------------------------------------------------------
# A fake Conduit client that behaves like the recorded Phorge server


class FakePhriction:
    def __init__(self, pages: dict[str, tuple[str, str]] | None = None):
        self.pages = {normalize_slug(k): v for k, v in (pages or {}).items()}  # slug -> (title, content)
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @property
    def writes(self) -> list[tuple[str, dict[str, Any]]]:
        return [c for c in self.calls if c[0] in ("phriction.edit", "phriction.create")]

    def search(self, method: str, constraints=None, attachments=None, **kw):
        self.calls.append((method, {"constraints": constraints, "attachments": attachments}))
        assert method == "phriction.document.search"
        for path in constraints["paths"]:
            if path in self.pages:
                title, content = self.pages[path]
                yield {"id": 1, "type": "WIKI", "phid": "PHID-WIKI-x",
                       "fields": {"path": path, "status": {"value": "active", "name": "Active"}},
                       "attachments": {"content": {"title": title, "path": path, "content": {"raw": content}}}}

    def call(self, method: str, **params):
        self.calls.append((method, params))
        slug = normalize_slug(params["slug"])
        if method == "phriction.edit":
            if slug not in self.pages:
                raise ConduitAPIError(method, "ERR-BAD-DOCUMENT", "No such document exists.")
            title, content = self.pages[slug]
            self.pages[slug] = (params.get("title", title), params.get("content", content))
        elif method == "phriction.create":
            if slug in self.pages:
                raise ConduitAPIError(method, "ERR-CONDUIT-CORE", "Document already exists!")
            self.pages[slug] = (params["title"], params["content"])
        return {"slug": slug, "uri": f"http://phab.test/w/{slug}", "title": self.pages[slug][0]}


# --------------------------------------------------------------------------------------------
# Slugs


@pytest.mark.parametrize("raw, slug", [
    ("Core Platform Team/Runbooks", "core_platform_team/runbooks/"),  # the recorded normalisation
    ("core_platform_team/", "core_platform_team/"),
    ("/", "/"),
    ("", "/"),
    ("a//b", "a/b/"),
    ("Team/Clinic Duty Rotation ", "team/clinic_duty_rotation/"),
    ("Core Platform Team / Runbooks", "core_platform_team/runbooks/"),
    ("a/./b/..", "a/dot/b/dotdot/"),
    ("What?", "what/"),
    ("??", "_/"),
])
def test_normalize_slug(raw, slug):
    assert normalize_slug(raw) == slug


# --------------------------------------------------------------------------------------------
# replace_section


def test_replace_section_replaces_only_that_section():
    out = replace_section(PAGE, SECTION)
    head, rest = PAGE.split("= Current Clinic Duty Rotation =")
    tail = rest[rest.index("= Escalation ="):]
    assert out.startswith(head) and out.endswith(tail)  # byte for byte
    assert "carol" not in out and "Sub-heading" not in out and "| alice |" in out
    assert out == head + SECTION + "\n" + tail


def test_replace_section_is_idempotent_and_updates():
    once = replace_section(PAGE, SECTION)
    assert replace_section(once, SECTION) == once
    updated = replace_section(once, SECTION2)
    assert "| bob |" in updated and "| alice |" not in updated
    assert replace_section(updated, SECTION) == once


def test_replace_section_appends_when_absent():
    page = "= Team =\n\nHello.\n"
    out = replace_section(page, SECTION)
    assert out == "= Team =\n\nHello.\n\n" + SECTION
    assert replace_section(out, SECTION) == out
    assert replace_section("", SECTION) == SECTION


def test_replace_section_at_the_end_of_the_page():
    page = "= Team =\n\n= Current Clinic Duty Rotation =\nold\n"
    assert replace_section(page, SECTION) == "= Team =\n\n" + SECTION


def test_replace_section_keeps_the_pages_header_level():
    page = "= Team =\n\n== current clinic duty rotation ==\nold\n\n=== deeper ===\nx\n\n== Other ==\nkeep\n"
    out = replace_section(page, SECTION + "\n== Details ==\nmore\n")
    assert out.startswith("= Team =\n\n== Current Clinic Duty Rotation ==\n")
    assert "=== Details ===" in out and "deeper" not in out and out.endswith("== Other ==\nkeep\n")


def test_replace_section_ignores_headers_in_code_blocks():
    page = "= Team =\n\n```\n= Current Clinic Duty Rotation =\n```\n\n= Current Clinic Duty Rotation =\nold\n"
    out = replace_section(page, SECTION)
    assert out.startswith("= Team =\n\n```\n= Current Clinic Duty Rotation =\n```\n\n")
    assert "old" not in out


def test_replace_section_keeps_crlf_pages_crlf():
    page = PAGE.replace("\n", "\r\n")
    out = replace_section(page, SECTION)
    assert out.endswith("= Escalation =\r\n\r\nCall mona.\r\n") and "\r\n| alice |\r\n" in out
    assert "\n" not in out.replace("\r\n", "")


def test_replace_section_needs_a_header():
    with pytest.raises(ValueError):
        replace_section(PAGE, "no header here")


# --------------------------------------------------------------------------------------------
# Publishing


def test_publishing_the_same_section_twice_makes_one_edit():
    client = FakePhriction({"core_platform_team/": ("Core Platform Team (CPT)", PAGE)})
    first = publish_section(client, "Core Platform Team", "ignored for existing pages", SECTION, apply=True)
    second = publish_section(client, "core_platform_team/", "x", SECTION, apply=True)
    assert (first.status, second.status) == ("edited", "unchanged")
    assert len(client.writes) == 1
    method, params = client.writes[0]
    assert method == "phriction.edit" and params["slug"] == "core_platform_team/"
    assert "title" not in params  # we own a section, not the page's title
    title, content = client.pages["core_platform_team/"]
    assert title == "Core Platform Team (CPT)"
    assert content == replace_section(PAGE, SECTION)
    assert content.startswith("= Core Platform Team =\n\nIntro text the team wrote by hand.\n\n")
    assert content.endswith("= Escalation =\n\nCall mona.\n")
    assert first.diff_summary.startswith("+") and second.diff_summary == "no change"
    assert client.calls[0] == ("phriction.document.search", {"constraints": {"paths": ["core_platform_team/"]},
                                                             "attachments": {"content": True}})


def test_dry_run_reads_but_never_writes():
    client = FakePhriction({"team/": ("Team", PAGE)})
    result = publish_section(client, "team", "Team", SECTION, apply=False)
    assert result.status == "planned" and not result.wrote
    assert client.writes == []
    assert "+| alice |" in result.diff and "-* carol" in result.diff
    assert client.pages["team/"] == ("Team", PAGE)


def test_missing_page_is_created_not_edited():
    client = FakePhriction()
    result = publish_section(client, "Team/Clinic", "Clinic duty", SECTION, apply=True)
    assert result.status == "created" and result.uri.endswith("team/clinic/")
    assert [m for m, _ in client.writes] == ["phriction.create"]
    assert client.pages["team/clinic/"] == ("Clinic duty", SECTION)
    assert publish_section(client, "Team/Clinic", "Clinic duty", SECTION, apply=True).status == "unchanged"
    assert len(client.writes) == 1


def test_publish_page_whole_content_and_title():
    client = FakePhriction({"r/": ("Old", "body\n")})
    assert publish_page(client, "r", "Old", "body", apply=True).status == "unchanged"  # trailing newline only
    result = publish_page(client, "r", "New", "body\n", apply=True)
    assert result.status == "edited" and "title" in result.diff_summary
    assert client.writes[-1][1]["title"] == "New"
    assert publish_page(client, "r", "New", "body\n", apply=True).status == "unchanged"
    assert len(client.writes) == 1


# --------------------------------------------------------------------------------------------
# Against the recorded wire shape


class RecordedTransport:
    """Answers phriction.document.search with the recording; records every POST."""

    def __init__(self, answers: dict[str, Any]):
        self.answers = answers
        self.posts: list[tuple[str, dict[str, Any]]] = []

    def post(self, url: str, data: dict[str, str], timeout: float) -> HTTPAnswer:
        method = url.rsplit("/", 1)[-1]
        self.posts.append((method, json.loads(data["params"])))
        return HTTPAnswer(200, json.dumps(self.answers[method]))

    def close(self) -> None:
        pass


def test_read_page_parses_the_recorded_answer(rec):
    search = rec("phriction.document.search--paths")["response"]
    edit = rec("phriction.edit--update-content")["response"]
    transport = RecordedTransport({"phriction.document.search": search, "phriction.edit": edit})
    client = ConduitClient("http://phab.test/", "api-" + "t" * 28, transport=transport)
    page = read_page(client, "Core Platform Team")
    assert page is not None and page.title == "Core Platform Team (CPT)"
    assert page.content.startswith("= Core Platform Team =")
    result = publish_section(client, "core_platform_team/", "CPT", SECTION, apply=True)
    assert result.status == "edited"
    methods = [m for m, _ in transport.posts]
    assert methods == ["phriction.document.search", "phriction.document.search", "phriction.edit"]
    sent = transport.posts[-1][1]
    assert sent["slug"] == "core_platform_team/" and sent["content"].endswith(SECTION)
    assert sent["content"].startswith("= Core Platform Team =\n\nWorkboard: #core_platform_team")


# --------------------------------------------------------------------------------------------
# Against the sandbox Phorge (same protocol, on loopback)


def test_publish_twice_against_the_sandbox_makes_one_edit():
    sandbox = pytest.importorskip("clinicbot.sandbox")
    from datetime import datetime, timezone

    from clinicbot.rotation import load_rotation
    from clinicbot.rotation_export import wiki_section

    now = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)
    sb = sandbox.Sandbox(scenario=sandbox.generate_scenario(now, size=30))
    url = sb.start()
    try:
        client = ConduitClient(url, sb.token)
        before = read_page(client, "Core Platform Team")
        assert before is not None
        section = wiki_section(load_rotation(Path(__file__).parent.parent / "rotation.yaml"), now)
        dry = publish_section(client, "Core Platform Team", "x", section, apply=False)
        first = publish_section(client, "Core Platform Team", "x", section, apply=True)
        second = publish_section(client, "core_platform_team", "x", section, apply=True)
        assert (dry.status, first.status, second.status) == ("planned", "edited", "unchanged")
        assert client.stats.calls["phriction.edit"] == 1 and client.stats.calls["phriction.create"] == 0
        history = client.call("phriction.history", slug="core_platform_team/")
        assert len(history) == 2  # the page as seeded, plus exactly one edit
        after = read_page(client, "core_platform_team/")
        assert after.title == before.title
        assert after.content.startswith(before.content.rstrip())  # the team's text is untouched
        assert after.content == replace_section(before.content, section)
        created = publish_section(client, "Core Platform Team/Clinic Duty", "Clinic duty", section, apply=True)
        assert created.status == "created" and read_page(client, created.slug).title == "Clinic duty"
    finally:
        sb.stop()
