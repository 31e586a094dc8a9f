"""Against the real Phorge: publishing the rotation to the wiki (issue 9 point 5) and the mover of a
task created straight into the Triage Meeting Inbox (point 6).

Each wiki test uses a slug unique to the session, so running the suite twice against one server passes.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from .realserver import PhorgeServer, run_clinicbot

pytestmark = pytest.mark.phorge


def _versions(phorge: PhorgeServer, slug: str) -> list[int]:
    return sorted(int(v["version"]) for v in phorge.call("phriction.history", slug=slug))


def test_rotation_publish_twice_creates_the_parent_and_leaves_one_version(phorge: PhorgeServer, phorge_config):
    top = f"clinicbot_{uuid.uuid4().hex[:10]}"
    slug = f"{top}/rotation/"
    dry = run_clinicbot(phorge_config, "rotation", "--publish", f"{top}/Rotation", now=phorge.now)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"would create wiki page {slug}" in dry.stdout and f"{top}/" in dry.stdout
    assert phorge.call("phriction.document.search", constraints={"paths": [slug, f"{top}/"]})["data"] == []

    first = run_clinicbot(phorge_config, "rotation", "--publish", f"{top}/Rotation", "--apply", "--format", "json",
                          now=phorge.now)
    assert first.returncode == 0, first.stdout + first.stderr
    assert json.loads(first.stdout)["publish"]["status"] == "created"
    # A day later, the same file: byte-identical text, no call that writes, still one version.
    second = run_clinicbot(phorge_config, "rotation", "--publish", f"{top}/Rotation", "--apply", "--format", "json",
                           now=phorge.now + timedelta(days=1))
    assert second.returncode == 0, second.stdout + second.stderr
    assert json.loads(second.stdout)["publish"]["status"] == "unchanged"
    assert _versions(phorge, slug) == [1]
    assert _versions(phorge, f"{top}/") == [1]
    page = phorge.call("phriction.document.search", constraints={"paths": [slug]},
                       attachments={"content": True})["data"][0]
    assert page["attachments"]["content"]["content"]["raw"].startswith("= Current Clinic Duty Rotation =")
    assert phorge.token("clinicbot") not in first.stdout + first.stderr + second.stdout + second.stderr


def test_a_task_created_into_the_meeting_inbox_has_no_mover(phorge: PhorgeServer, make_phorge_config, scratch):
    created = phorge.scratch_task("Created straight into the meeting inbox", column="Triage Meeting Inbox",
                                  author="dave")
    config = make_phorge_config("arrival", boards=phorge.scratch_board_config())
    # After the task's creation (it is not backdated: it was created just now, on the server's clock).
    now = datetime.fromtimestamp(created["created"], tz=timezone.utc) + timedelta(hours=1)
    result = run_clinicbot(config, "agenda", "--format", "json", now=now)
    assert result.returncode == 0, result.stdout + result.stderr
    items = {r["id"]: r for r in json.loads(result.stdout)["items"]}
    item = items[created["id"]]
    assert (item["moved_by"], item["arrival"]) == (None, "created")
