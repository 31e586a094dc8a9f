"""Fixed lookups (issue 12, item 5): a cold sync resolves every board named by its name with one
``project.search`` (it used to spend one per board); a project whose hashtag no longer follows
its name is still found by the name search. Calls counted, never timed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

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


# --------------------------------------------------------------------------------------------
# Kept across runs (issue 12, item 2): user.whoami, the team projects and users come from the cache


FIXED = ("user.whoami", "project.search", "user.search")


def fixed_calls(app) -> dict[str, int]:
    return {m: app.client().stats.calls.get(m, 0) for m in FIXED}


def fresh_app(path):
    from clinicbot.jobs.context import App

    return App(config_path=path, now_override=NOW)


def test_a_warm_job_in_a_fresh_process_asks_for_no_fixed_lookup(sandbox, tmp_path):
    from clinicbot.jobs.context import load_snapshot

    path = write_sandbox_config(tmp_path / "clinicbot.yaml", sandbox.url, sandbox.token)
    first = fresh_app(path)
    try:
        snap1 = load_snapshot(first, open_only=True)
        # A cold sync resolves the boards with their members (one project.search), asks for the
        # bot's account and the users it met (by PHID); the snapshot asks for the people who can
        # be pinged (by user name: their availability). One of each.
        assert fixed_calls(first) == {"user.whoami": 1, "project.search": 1, "user.search": 2}
        load_snapshot(first, open_only=True)  # a second job in the same process (serve)
        assert fixed_calls(first) == {"user.whoami": 1, "project.search": 1, "user.search": 2}
    finally:
        first.close()
    second = fresh_app(path)  # the next cron run: a new process, the same state directory
    try:
        snap2 = load_snapshot(second, open_only=True)
        # A warm job within PEOPLE_MINUTES: the sync's one call and nothing else.
        assert second.client().stats.calls == {"maniphest.search": 1}
        assert snap2.users == snap1.users and snap2.bot_phid == snap1.bot_phid
        assert snap2.team_member_phids == snap1.team_member_phids
        assert snap2.team_project_phids == snap1.team_project_phids
    finally:
        second.close()
    # The same snapshot as without any kept lookup (every one asked for, no cache at all).
    third = fresh_app(path)
    try:
        snap3 = load_snapshot(third, open_only=True, use_cache=False)
        assert snap3.users == snap1.users and snap3.bot_phid == snap1.bot_phid
        assert snap3.team_member_phids == snap1.team_member_phids
        assert snap3.team_project_phids == snap1.team_project_phids
    finally:
        third.close()


def test_a_sync_that_cannot_fill_the_lookups_leaves_them_to_the_job(sandbox, tmp_path, monkeypatch):
    from clinicbot.jobs.context import load_snapshot
    from clinicbot.phab import snapshot

    path = write_sandbox_config(tmp_path / "clinicbot.yaml", sandbox.url, sandbox.token)
    real = snapshot.whoami
    monkeypatch.setattr(snapshot, "whoami", lambda client: (_ for _ in ()).throw(OSError("boom")))
    client = ConduitClient(sandbox.url, sandbox.token)
    try:
        assert sync(client, load_config(path), now=NOW).mode == "full"  # the sync itself succeeds
    finally:
        client.close()
    monkeypatch.setattr(snapshot, "whoami", real)
    app = fresh_app(path)
    try:
        load_snapshot(app, open_only=True)
        assert fixed_calls(app) == {"user.whoami": 1, "project.search": 1, "user.search": 2}
    finally:
        app.close()


def test_kept_lookups_expire_and_a_reconcile_fills_them_anew(sandbox, tmp_path):
    import sqlite3
    import time

    from clinicbot.jobs.context import load_snapshot
    from clinicbot.state.cache import cache_path
    from clinicbot.state.lookups import LOOKUP_HOURS, LOOKUPS_KEY, PEOPLE_MINUTES, Lookups

    path = write_sandbox_config(tmp_path / "clinicbot.yaml", sandbox.url, sandbox.token)
    app = fresh_app(path)
    try:
        load_snapshot(app, open_only=True)
    finally:
        app.close()
    db = cache_path(load_config(path))

    def age(hours: float) -> None:  # make every kept lookup `hours` older
        with sqlite3.connect(db) as conn:
            data = Lookups.loads(conn.execute("SELECT value FROM meta WHERE key = ?", (LOOKUPS_KEY,)).fetchone()[0],
                                 now=time.time())
            for entry in [*data.entries.values(), *data.users.values()]:
                entry[0] -= hours * 3600
            data.unknown = {k: v - hours * 3600 for k, v in data.unknown.items()}
            conn.execute("UPDATE meta SET value = ? WHERE key = ?", (data.dumps(), LOOKUPS_KEY))

    def job_calls() -> dict[str, int]:  # a warm job in a fresh process
        app = fresh_app(path)
        try:
            load_snapshot(app, open_only=True)
            return fixed_calls(app)
        finally:
            app.close()

    assert job_calls() == {"user.whoami": 0, "project.search": 0, "user.search": 0}  # all fresh
    age(PEOPLE_MINUTES / 60 + 0.01)  # the people who can be pinged (availability) are asked for again
    assert job_calls() == {"user.whoami": 0, "project.search": 0, "user.search": 1}
    age(LOOKUP_HOURS - 1)  # the rest still fresh
    assert job_calls() == {"user.whoami": 0, "project.search": 0, "user.search": 1}
    age(1.1)  # now older than LOOKUP_HOURS: the account, projects and users by PHID again
    assert job_calls() == {"user.whoami": 1, "project.search": 1, "user.search": 2}
    # A reconcile (periodic, here run by `clinicbot sync`) fills them again, for a day: the next
    # job asks only for the people who can be pinged.
    age(LOOKUP_HOURS + 1)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM meta WHERE key = 'last_reconcile'")
    client = ConduitClient(sandbox.url, sandbox.token)
    try:
        result = sync(client, load_config(path), now=datetime.now(timezone.utc))
    finally:
        client.close()
    assert result.mode == "reconcile"
    assert {m: result.calls_by_method.get(m, 0) for m in FIXED} == {"user.whoami": 1, "project.search": 1,
                                                                   "user.search": 1}
    assert job_calls() == {"user.whoami": 0, "project.search": 0, "user.search": 1}
    # A reconcile that finds the boards changed (a column without a role renamed) fills them anew.
    config = load_config(path)
    with_roles = {n.casefold() for b in config.boards for names in b.columns.values() for n in names}
    watched = {p.phid for p in sandbox.store.projects.values() if p.name in {b.project for b in config.boards}}
    column = next(c for c in sandbox.store.columns.values()
                  if c.name.casefold() not in with_roles and c.project in watched)
    column.name += " (renamed)"
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM meta WHERE key = 'last_reconcile'")
    client = ConduitClient(sandbox.url, sandbox.token)
    try:
        assert sync(client, config, now=NOW).mode == "reconcile"
    finally:
        client.close()
    with sqlite3.connect(db) as conn:
        kept = Lookups.loads(conn.execute("SELECT value FROM meta WHERE key = ?", (LOOKUPS_KEY,)).fetchone()[0],
                             now=NOW.timestamp())
    assert kept.get("whoami") is not None and kept.get("team") is not None and kept.users
    assert all(entry[0] == NOW.timestamp() for entry in kept.entries.values())  # asked for anew, not kept
    # And `sync --full` asks for them anew too (nothing kept from before is reused).
    later = NOW + timedelta(hours=1)
    client = ConduitClient(sandbox.url, sandbox.token)
    try:
        sync(client, config, now=later, full=True)
    finally:
        client.close()
    with sqlite3.connect(db) as conn:
        kept = Lookups.loads(conn.execute("SELECT value FROM meta WHERE key = ?", (LOOKUPS_KEY,)).fetchone()[0],
                             now=later.timestamp())
    assert {entry[0] for entry in [*kept.entries.values(), *kept.users.values()]} == {later.timestamp()}


def test_tag_names_are_kept_with_the_lookups(sandbox):
    """The agenda's tag names (project.search by PHID): asked once, then kept a day; a PHID the
    server does not know is not asked for again."""
    from clinicbot.phab.snapshot import project_names
    from clinicbot.state.lookups import LOOKUP_HOURS, Lookups

    tags = sorted(p.phid for p in sandbox.store.projects.values())[:3]
    unknown = "PHID-PROJ-doesnotexistxxxxxxxx"
    client = ConduitClient(sandbox.url, sandbox.token)
    calls = counting(client)
    try:
        first = Lookups(now=NOW.timestamp())
        names = project_names(client, first, [*tags, unknown])
        assert names == {p: sandbox.store.projects[p].name for p in tags}
        assert [m for m, _ in calls] == ["project.search"]
        kept = Lookups.loads(first.dumps(), now=NOW.timestamp() + 3600)  # the next run
        assert project_names(client, kept, [*tags, unknown]) == names and len(calls) == 1
        later = Lookups.loads(first.dumps(), now=NOW.timestamp() + LOOKUP_HOURS * 3600 + 1)
        assert project_names(client, later, tags) == names and len(calls) == 2  # expired: asked again
    finally:
        client.close()


def test_stale_people_are_asked_for_while_the_sync_waits(sandbox, tmp_path):
    """A job whose kept availability is older than PEOPLE_MINUTES asks for the people in a thread
    of their own while its sync's call is in flight (two round trips at once), and uses the answer."""
    import sqlite3
    import threading

    from clinicbot.jobs.context import load_snapshot
    from clinicbot.state.cache import cache_path
    from clinicbot.state.lookups import LOOKUPS_KEY, PEOPLE_MINUTES, Lookups

    path = write_sandbox_config(tmp_path / "clinicbot.yaml", sandbox.url, sandbox.token)
    first = fresh_app(path)
    try:
        snap1 = load_snapshot(first, open_only=True)
    finally:
        first.close()
    db = cache_path(load_config(path))
    with sqlite3.connect(db) as conn:
        kept = Lookups.loads(conn.execute("SELECT value FROM meta WHERE key = ?", (LOOKUPS_KEY,)).fetchone()[0],
                             now=0)
        kept.entries["people"][0] -= PEOPLE_MINUTES * 60 + 1
        conn.execute("UPDATE meta SET value = ? WHERE key = ?", (kept.dumps(), LOOKUPS_KEY))
    app = fresh_app(path)
    try:
        threads: list[tuple[str, str]] = []
        real = app.client().call

        def call(method, **params):
            threads.append((method, threading.current_thread().name))
            return real(method, **params)

        app.client().call = call  # type: ignore[method-assign]
        snap2 = load_snapshot(app, open_only=True)
        assert sorted(m for m, _ in threads) == ["maniphest.search", "user.search"]
        assert dict(threads)["user.search"] == "people-ahead"
        assert snap2.users == snap1.users and snap2.team_member_phids == snap1.team_member_phids
    finally:
        app.close()
    # What that call raises, the job raises (as when it was asked for after the sync).
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = ?", (kept.dumps(), LOOKUPS_KEY))
    from clinicbot.errors import ConduitTransportError

    app = fresh_app(path)
    try:
        real = app.client().call

        def failing(method, **params):
            if method == "user.search":
                raise ConduitTransportError("user.search", "the server went away")
            return real(method, **params)

        app.client().call = failing  # type: ignore[method-assign]
        with pytest.raises(ConduitTransportError, match="went away"):
            load_snapshot(app, open_only=True)
    finally:
        app.close()
