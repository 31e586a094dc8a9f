"""Phriction publishing: one section replaced, the rest of the page untouched, one edit per change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clinicbot.phab.conduit import ConduitClient, HTTPAnswer
from clinicbot.errors import ConduitAPIError, SafetyCapExceeded
from clinicbot.delivery.wiki import ANCESTOR_CONTENT, WikiWriter, publish_page, publish_section
from clinicbot.phab.wiki import (ancestors, normalize_slug,
                            read_page, replace_section)

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
    """As strict as the recorded Phorge: a page needs its parent (and the root ``/``) to exist, each
    missing one is listed (``error--phriction.create-*parent-missing*``); undefined parameters are
    refused; a no-change edit makes no version and answers ``version``/``dateCreated`` as strings
    (``phriction.edit--identical-content-*``). ``pages`` given without ``/`` get a root added, as
    on any wiki that already holds pages."""

    PARAMS = {"phriction.create": {"slug", "title", "content", "description"},
              "phriction.edit": {"slug", "title", "content", "description"}}

    def close(self) -> None:  # the CLI's boundary closes the App's client, as it closes a ConduitClient
        pass

    def __init__(self, pages: dict[str, tuple[str, str]] | None = None, *, fresh: bool = False):
        self.pages = {normalize_slug(k): v for k, v in (pages or {}).items()}  # slug -> (title, content)
        if self.pages and not fresh:
            self.pages.setdefault("/", ("Wiki", "The wiki's home."))
        self.versions = {slug: 1 for slug in self.pages}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @property
    def writes(self) -> list[tuple[str, dict[str, Any]]]:
        return [c for c in self.calls if c[0] in ("phriction.edit", "phriction.create")]

    def search(self, method: str, constraints=None, attachments=None, **kw):
        self.calls.append((method, {"constraints": constraints, "attachments": attachments}))
        assert method == "phriction.document.search" and not kw
        for path in constraints["paths"]:
            if path in self.pages:
                title, content = self.pages[path]
                yield {"id": 1, "type": "WIKI", "phid": "PHID-WIKI-x",
                       "fields": {"path": path, "status": {"value": "active", "name": "Active"}},
                       "attachments": {"content": {"title": title, "path": path, "content": {"raw": content}}}}

    def call(self, method: str, **params):
        self.calls.append((method, params))
        bogus = sorted(set(params) - self.PARAMS[method])
        if bogus:
            raise ConduitAPIError(method, "ERR-CONDUIT-CALL", f'API Method "{method}" does not define these '
                                  f"parameters: {', '.join(repr(b) for b in bogus)}.")
        slug = normalize_slug(params["slug"])
        if method == "phriction.edit":
            if slug not in self.pages:
                raise ConduitAPIError(method, "ERR-BAD-DOCUMENT", "No such document exists.")
            old = self.pages[slug]
            new = (params.get("title") or old[0], params.get("content", old[1]))
            if new == old:  # no new version; the stored values come back as strings
                return {"slug": slug, "uri": f"http://phab.test/w/{slug}", "title": old[0],
                        "version": str(self.versions[slug]), "dateCreated": "1796159821"}
            self.pages[slug] = new
            self.versions[slug] += 1
        elif method == "phriction.create":
            if slug in self.pages:
                raise ConduitAPIError(method, "ERR-CONDUIT-CORE", "Document already exists!")
            missing = [a for a in ancestors(slug) if a not in self.pages]
            if missing:
                raise ConduitAPIError(method, "ERR-CONDUIT-CORE", "Validation errors:\n" + "".join(
                    f'  - Can not create document because the parent document with slug <a href="/phriction/edit/'
                    f'?slug={a}">{a}</a> does not exist!\n' for a in missing)
                    + "  - You can not create a document which does not have a parent.")
            self.pages[slug] = (params["title"], params["content"])
            self.versions[slug] = 1
        return {"slug": slug, "uri": f"http://phab.test/w/{slug}", "title": self.pages[slug][0],
                "version": self.versions[slug], "dateCreated": 1796159821}


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
    # One read per publish: the page and its ancestors (to know which are missing) in one search.
    assert client.calls[0] == ("phriction.document.search", {"constraints": {"paths": ["/", "core_platform_team/"]},
                                                             "attachments": {"content": True}})


def test_dry_run_reads_but_never_writes():
    client = FakePhriction({"team/": ("Team", PAGE)})
    result = publish_section(client, "team", "Team", SECTION, apply=False)
    assert result.status == "planned" and not result.wrote
    assert client.writes == []
    assert "+| alice |" in result.diff and "-* carol" in result.diff
    assert client.pages["team/"] == ("Team", PAGE)


def test_missing_page_is_created_not_edited():
    client = FakePhriction({"team/": ("Team", "= Team =\n")})
    result = publish_section(client, "Team/Clinic", "Clinic duty", SECTION, apply=True)
    assert result.status == "created" and result.uri.endswith("team/clinic/")
    assert [m for m, _ in client.writes] == ["phriction.create"] and result.ancestors == ()
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


@pytest.mark.parametrize("slug, chain", [
    ("clinic/rotation", ["/", "clinic/"]),
    ("Core Platform Team/Runbooks/On Call", ["/", "core_platform_team/", "core_platform_team/runbooks/"]),
    ("clinic", ["/"]),
    ("/", []),
])
def test_ancestors_root_first(slug, chain):
    assert ancestors(slug) == chain


def test_fresh_wiki_gets_root_then_parents_then_the_page():
    client = FakePhriction(fresh=True)  # not even "/" exists
    result = publish_section(client, "Clinic/Rotation", "Clinic rotation", SECTION, apply=True)
    assert result.status == "created" and result.ancestors == ("/", "clinic/") and result.writes == 3
    assert [(m, p["slug"]) for m, p in client.writes] == [
        ("phriction.create", "/"), ("phriction.create", "clinic/"), ("phriction.create", "clinic/rotation/")]
    # Created ancestors get a short neutral title and content, nothing from the page itself.
    assert client.pages["/"] == ("Wiki", ANCESTOR_CONTENT)
    assert client.pages["clinic/"] == ("Clinic", ANCESTOR_CONTENT)
    assert client.pages["clinic/rotation/"] == ("Clinic rotation", SECTION)
    again = publish_section(client, "clinic/rotation/", "x", SECTION, apply=True)
    assert again.status == "unchanged" and len(client.writes) == 3


def test_only_the_missing_ancestors_are_created():
    client = FakePhriction({"a/": ("A", "= A =\n")})  # "/" and "a/" exist, "a/b/" does not
    result = publish_page(client, "A/B/C", "C", "text\n", apply=True)
    assert result.ancestors == ("a/b/",) and result.writes == 2
    assert [p["slug"] for _, p in client.writes] == ["a/b/", "a/b/c/"]
    assert client.pages["a/"] == ("A", "= A =\n")  # an existing parent is never touched


def test_dry_run_says_which_pages_it_would_create_and_writes_nothing():
    client = FakePhriction(fresh=True)
    result = publish_section(client, "clinic/rotation", "Clinic rotation", SECTION, apply=False)
    assert result.status == "planned" and result.ancestors == ("/", "clinic/") and result.writes == 3
    assert result.diff_summary.startswith("new page")
    assert client.writes == [] and client.pages == {}


@pytest.mark.parametrize("apply", [False, True])
def test_every_page_created_counts_against_the_cap(apply):
    client = FakePhriction(fresh=True)
    with pytest.raises(SafetyCapExceeded) as caught:
        publish_section(client, "clinic/rotation", "Clinic rotation", SECTION, apply=apply, cap=2)
    assert (caught.value.limit, caught.value.planned) == (2, 3)
    assert client.writes == []  # refused before the first write, dry run or not
    assert publish_section(client, "clinic/rotation", "R", SECTION, apply=apply, cap=3).writes == 3


def test_one_writer_counts_all_its_pages_against_one_cap():
    client = FakePhriction({"team/": ("Team", "= Team =\n")})
    writer = WikiWriter(client, apply=True, cap=2)
    assert writer.publish_page("team/a", "A", "a\n").status == "created"
    assert writer.publish_page("team/a", "A", "a\n").status == "unchanged"  # costs nothing
    assert writer.publish_page("team/b", "B", "b\n").status == "created"
    with pytest.raises(SafetyCapExceeded) as caught:
        writer.publish_page("team", "Team", "= Team =\nchanged\n")
    assert (caught.value.planned, caught.value.done) == (3, 2)
    assert len(client.writes) == 2


def test_slugs_are_compared_normalised():
    client = FakePhriction({"core_platform_team/runbooks/": ("Runbooks", "old\n")})
    result = publish_page(client, "Core Platform Team/Runbooks", "Runbooks", "new\n", apply=True)
    assert result.status == "edited" and result.slug == "core_platform_team/runbooks/"
    assert [(m, p["slug"]) for m, p in client.writes] == [("phriction.edit", "core_platform_team/runbooks/")]


def test_an_edit_the_server_finds_unchanged_is_reported_unchanged():
    # Our read is stale (someone wrote the same text meanwhile): Phorge makes no version and
    # answers strings. That is "unchanged", not "edited" (and not a crash on a str version).
    client = FakePhriction({"r/": ("R", "old\n")})
    writer = WikiWriter(client, apply=True)
    plan = writer.plan_page("r", "R", "new\n")
    client.pages["r/"] = ("R", "new\n")
    result = writer.execute(plan)
    assert result.status == "unchanged" and client.versions["r/"] == 1
    assert [m for m, _ in client.writes] == ["phriction.edit"]


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


PHRICTION = Path(__file__).parent / "fixtures" / "conduit-second"  # ../shared/conduit, second recording set


def phr(name: str) -> dict[str, Any]:
    return json.loads((PHRICTION / f"{name}.json").read_text())


class ReplayedPhorge:
    """A transport that answers only with recorded responses of the real Phorge.

    ``phriction.document.search`` answers the recorded items of the pages that exist;
    ``phriction.create`` answers the recorded success for a page whose parent exists and the
    recorded "parent document ... does not exist" error otherwise; ``phriction.edit`` answers
    the recording named in ``edit``.
    """

    def __init__(self, existing: dict[str, dict[str, Any]], creates: dict[str, str] | None = None,
                 edit: str | None = None):
        self.items = dict(existing)  # slug -> recorded document.search item
        self.creates = creates or {}  # slug -> recording answering its create
        self.edit = edit
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.refused: list[str] = []

    def post(self, url: str, data: dict[str, str], timeout: float) -> HTTPAnswer:
        method = url.rsplit("/", 1)[-1]
        params = json.loads(data["params"])
        params.pop("__conduit__", None)
        self.posts.append((method, params))
        if method == "phriction.document.search":
            wanted = params["constraints"]["paths"]
            answer = phr("phriction.document.search--clinic-after-failed-create")["response"]
            answer = json.loads(json.dumps(answer))
            answer["result"]["data"] = [self.items[w] for w in wanted if w in self.items]
        elif method == "phriction.create":
            assert set(params) <= {"slug", "title", "content", "description"}
            slug = normalize_slug(params["slug"])
            if any(a not in self.items for a in ancestors(slug)):
                self.refused.append(slug)
                answer = phr("error--phriction.create-nested-parent-missing-clinic-rotation")["response"]
            else:
                answer = phr(self.creates[slug])["response"]
                self.items[slug] = {"id": 9, "phid": answer["result"]["phid"],
                                    "fields": {"path": slug, "status": {"value": "active"}}}
        else:
            assert method == "phriction.edit" and self.edit is not None
            assert set(params) <= {"slug", "title", "content", "description"}
            answer = phr(self.edit)["response"]
        return HTTPAnswer(200, json.dumps(answer))

    def close(self) -> None:
        pass


def _recorded_items() -> dict[str, dict[str, Any]]:
    data = phr("phriction.document.search--all-after-recordings")["response"]["result"]["data"]
    return {d["fields"]["path"]: d for d in data}


def test_replayed_phorge_the_missing_parent_is_created_before_the_child():
    items = _recorded_items()
    existing = {"/": items["/"], "clinic_rotation/": items["clinic_rotation/"]}  # as before the recordings
    transport = ReplayedPhorge(existing, creates={"recscratch/": "phriction.create--parent-first-recscratch",
                                                  "recscratch/rotation/":
                                                      "phriction.create--child-after-parent-recscratch-rotation"})
    client = ConduitClient("http://phab.test/", "api-" + "t" * 28, transport=transport)
    result = publish_page(client, "recscratch/rotation", "Rotation", "Rotation page.\n\nVersion one.", apply=True,
                          description="clinicbot: publish")
    assert transport.refused == []  # the recorded "parent ... does not exist" never came back
    assert [(m, p.get("slug")) for m, p in transport.posts] == [
        ("phriction.document.search", None), ("phriction.create", "recscratch/"),
        ("phriction.create", "recscratch/rotation/")]
    assert transport.posts[0][1]["constraints"]["paths"] == ["/", "recscratch/", "recscratch/rotation/"]
    assert result.status == "created" and result.ancestors == ("recscratch/",)
    assert result.uri == "http://127.0.0.1:19280/w/recscratch/rotation/"


def test_replayed_phorge_refuses_a_child_without_its_parent():
    # The replay itself is faithful: creating clinic/rotation directly gets the recorded error.
    transport = ReplayedPhorge({"/": _recorded_items()["/"]})
    client = ConduitClient("http://phab.test/", "api-" + "t" * 28, transport=transport)
    with pytest.raises(ConduitAPIError) as caught:
        client.call("phriction.create", slug="clinic/rotation", title="Clinic rotation", content="Rotation page.")
    assert caught.value.code == "ERR-CONDUIT-CORE" and "clinic/" in caught.value.info


def test_replayed_phorge_identical_content_makes_no_call():
    page = phr("phriction.document.search--recscratch-rotation-before-noop-edit")["response"]["result"]["data"][0]
    items = {**_recorded_items(), "recscratch/rotation/": page}
    transport = ReplayedPhorge(items, edit="phriction.edit--identical-content-with-description")
    client = ConduitClient("http://phab.test/", "api-" + "t" * 28, transport=transport)
    result = publish_page(client, "RecScratch/Rotation", "Rotation", "Rotation page.\n\nVersion one.", apply=True)
    assert result.status == "unchanged"
    assert [m for m, _ in transport.posts] == ["phriction.document.search"]


@pytest.mark.parametrize("answer, status", [("phriction.edit--identical-content-with-description", "unchanged"),
                                            ("phriction.edit--identical-content-and-title", "unchanged"),
                                            ("phriction.edit--changed-content", "edited")])
def test_replayed_phorge_edit_answers_strings_for_no_change(answer, status):
    page = json.loads(json.dumps(
        phr("phriction.document.search--recscratch-rotation-before-noop-edit")["response"]["result"]["data"][0]))
    page["attachments"]["content"]["content"]["raw"] = "A stale read of the page."
    transport = ReplayedPhorge({**_recorded_items(), "recscratch/rotation/": page}, edit=answer)
    client = ConduitClient("http://phab.test/", "api-" + "t" * 28, transport=transport)
    result = publish_page(client, "recscratch/rotation", "Rotation", "Rotation page.\n\nVersion one.", apply=True,
                          description="clinicbot: publish")
    assert result.status == status and result.writes == 1
    sent = transport.posts[-1][1]
    assert sent == {"slug": "recscratch/rotation/", "content": "Rotation page.\n\nVersion one.",
                    "description": "clinicbot: publish"}  # same title: not sent


# --------------------------------------------------------------------------------------------
# Against the sandbox Phorge (same protocol, on loopback)


def test_publish_twice_against_the_sandbox_makes_one_edit():
    sandbox = pytest.importorskip("clinicbot.sandbox")
    from datetime import datetime, timezone

    from clinicbot.rotation import load_rotation
    from clinicbot.rotation.export import wiki_section

    now = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)
    sb = sandbox.Sandbox(scenario=sandbox.generate_scenario(now, size=30))
    url = sb.start()
    try:
        client = ConduitClient(url, sb.token)
        before = read_page(client, "Core Platform Team")
        assert before is not None
        section = wiki_section(load_rotation(Path(__file__).parent.parent / "rotation.yaml"))
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
