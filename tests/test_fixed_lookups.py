"""Fixed lookups (issue 12, item 5): a cold sync resolves every board named by its name with one
``project.search`` (it used to spend one per board); a project whose hashtag no longer follows
its name is still found by the name search. Calls counted, never timed."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from clinicbot.config import load_config
from clinicbot.errors import ConfigError
from clinicbot.jobs.demo import write_sandbox_config
from clinicbot.phab.boards import resolve_projects
from clinicbot.phab.conduit import ConduitClient
from clinicbot.sandbox import Sandbox, generate_scenario
from clinicbot.sync import sync

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def sandbox():
    sb = Sandbox(scenario=generate_scenario(NOW, size=60))
    sb.start()
    yield sb
    sb.stop()


def counting(client: ConduitClient) -> list[tuple[str, dict]]:
    calls: list[tuple[str, dict]] = []
    real = client.call

    def call(method, **params):
        calls.append((method, params))
        return real(method, **params)

    client.call = call  # type: ignore[method-assign]
    return calls


def test_cold_sync_resolves_all_boards_with_one_project_search(sandbox, tmp_path):
    config = load_config(write_sandbox_config(tmp_path / "clinicbot.yaml", sandbox.url, sandbox.token))
    names = [b.project for b in config.boards]
    assert len(names) >= 3 and not any(n.startswith(("PHID-", "#")) for n in names)
    client = ConduitClient(sandbox.url, sandbox.token)
    try:
        result = sync(client, config, now=NOW)
    finally:
        client.close()
    assert result.calls_by_method["project.search"] == 1, result.calls_by_method  # was one per board


def test_a_project_renamed_away_from_its_hashtag_is_found_by_name(sandbox):
    client = ConduitClient(sandbox.url, sandbox.token)
    calls = counting(client)
    try:
        projects = [p for p in sandbox.store.projects.values() if p.slug]
        renamed, kept = projects[0], projects[1]
        renamed.name = "Quite Another Name"  # its hashtag stays the old one
        found = resolve_projects(client, [("a.project", renamed.name), ("b.project", kept.name)], "cfg.yaml")
        assert found[renamed.name]["phid"] == renamed.phid and found[kept.name]["phid"] == kept.phid
        searches = [p["constraints"] for m, p in calls if m == "project.search"]
        assert searches[0] == {"slugs": [renamed.name, kept.name]}
        assert searches[1:] == [{"name": renamed.name}]  # only the one the hashtags did not give
        with pytest.raises(ConfigError, match="no project 'Nothing Like It'"):
            resolve_projects(client, [("c.project", "Nothing Like It")], "cfg.yaml")
    finally:
        client.close()
