"""`rotation --publish` with a slug two levels deep, against the real Phorge (issue 9 point 5).

Complements test_real_wiki_and_arrival.py (one level): every missing ancestor is created, a second
publish of the same facts on a later day writes no version (counted with `phriction.content.search`),
and a change of the facts writes exactly one new version of the page and none of its parents. The
slug is unique to the session, so a reused server starts from a fresh wiki branch.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from .realserver import PhorgeServer, run_clinicbot

pytestmark = pytest.mark.phorge


def _versions(phorge: PhorgeServer, path: str) -> list[int]:
    docs = phorge.call("phriction.document.search", constraints={"paths": [path]})["data"]
    assert len(docs) == 1, f"no page {path}"
    rows = phorge.call("phriction.content.search", constraints={"documentPHIDs": [docs[0]["phid"]]},
                       limit=100)["data"]
    return sorted(int(r["fields"]["version"]) for r in rows)


def _content(phorge: PhorgeServer, path: str) -> str:
    [doc] = phorge.call("phriction.document.search", constraints={"paths": [path]},
                        attachments={"content": True})["data"]
    return doc["attachments"]["content"]["content"]["raw"]


def test_publish_nested_twice_then_after_a_change(phorge: PhorgeServer, make_phorge_config):
    top = f"cbrot_{uuid.uuid4().hex[:10]}"
    slug = f"{top}/team/rotation"
    pages = [f"{top}/", f"{top}/team/", f"{slug}/"]
    assert phorge.call("phriction.document.search", constraints={"paths": pages})["data"] == []
    config = make_phorge_config("rotation-a", on_duty=("alice", "bob"))

    for day in (0, 1):  # the same rotation, published again a day later
        result = run_clinicbot(config, "rotation", "--publish", slug, "--apply", "--format", "json",
                               now=phorge.now + timedelta(days=day))
        assert result.returncode == 0, result.stdout + result.stderr
        assert json.loads(result.stdout)["publish"]["status"] == ("created" if day == 0 else "unchanged")
    for page in pages:
        assert _versions(phorge, page) == [1], page
    first = _content(phorge, f"{slug}/")

    # Other engineers on duty: the facts changed, so the page (only the page) gets one new version.
    changed = make_phorge_config("rotation-b", on_duty=("carol", "dave"))
    for _ in range(2):
        result = run_clinicbot(changed, "rotation", "--publish", slug, "--apply", now=phorge.now)
        assert result.returncode == 0, result.stdout + result.stderr
    assert _versions(phorge, f"{slug}/") == [1, 2]
    assert _versions(phorge, f"{top}/") == [1] and _versions(phorge, f"{top}/team/") == [1]
    second = _content(phorge, f"{slug}/")
    assert second != first and "carol" in second and "carol" not in first
