"""The reports end to end against the sandbox's default scenario (loopback only).

Every expected number is computed here from the scenario's raw data (tasks, transactions,
users as the sandbox stores them), not taken from clinicbot's output.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from clinicbot.cli import cli
from clinicbot.jobs.demo import write_sandbox_config
from clinicbot.sandbox import Sandbox, generate_scenario

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)  # a Tuesday
NOW_ISO = NOW.isoformat()
DAY = 86400
WATCHED = ("Core Platform Team", "Clinic Duty Team", "CPT External Code Reviews")
OPEN = {"open", "stalled"}
TEAM = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
ROTATION = """\
name: Sandbox clinic duty
timezone: UTC
handoff: "09:00"
on_duty: {min: 2, max: 3}
members:
%s
manager: mona
product_manager: pete
cycle:
  start: 2026-11-02
  order: [alice, bob, carol, dave, erin, frank, grace, heidi]
  shift_length: 3w
  per_shift: 3
  stagger: 1w
""" % "\n".join(f"  - username: {u}\n    email: {u}@example.org" for u in TEAM)


@pytest.fixture(scope="module")
def sandbox():
    sb = Sandbox(scenario=generate_scenario(NOW))
    sb.start()
    yield sb
    sb.stop()


@pytest.fixture
def config(sandbox, tmp_path) -> Path:
    (tmp_path / "rotation.yaml").write_text(ROTATION)
    return write_sandbox_config(tmp_path / "clinicbot.yaml", sandbox.url, sandbox.token)


def run(config: Path, *args: str, now: str = NOW_ISO):
    result = CliRunner().invoke(cli, ["--config", str(config), "--now", now, *args], catch_exceptions=False)
    return result


def run_json(config: Path, *args: str) -> dict:
    result = run(config, *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --------------------------------------------------------------------------------------------
# The scenario, read directly


class World:
    def __init__(self, sc):
        self.sc = sc
        self.now = int(NOW.timestamp())
        self.users = {u["phid"]: u for u in sc.users}
        proj = {p["name"]: p["phid"] for p in sc.projects}
        self.boards = {proj[n] for n in WATCHED}
        self.cpt, self.clinic, self.ext = (proj[n] for n in WATCHED)
        self.col = {(c["project"], c["name"]): c["phid"] for c in sc.columns}
        self.tasks = [t for t in sc.tasks if set(t["columns"]) & self.boards]
        self.by_id = {t["id"]: t for t in sc.tasks}
        self.xactions = defaultdict(list)
        for x in sc.transactions:
            self.xactions[x.object].append(x)
        for xs in self.xactions.values():
            xs.sort(key=lambda x: (x.date, x.id))
        self.team = {p for p, u in self.users.items() if u["username"] in TEAM}

    def name(self, phid):
        return self.users[phid]["username"]

    def human(self, phid):
        u = self.users.get(phid)
        return u is not None and not u["bot"]

    def open_in(self, *cols):
        return [t for t in self.tasks if t["status"] in OPEN and any(t["columns"].get(b) == c for b, c in cols)]

    def moves_into(self, task, board, column):
        return [x for x in self.xactions[task["phid"]] if x.type == "core:columns"
                for m in x.new if m["boardPHID"] == board and m["columnPHID"] == column
                and column not in (m.get("fromColumnPHIDs") or [])]

    def ubn_start(self, task):
        prio = [x for x in self.xactions[task["phid"]] if x.type == "priority"]
        if prio and prio[0].old == 100:
            return task["dateCreated"]
        for x in prio:
            if x.new == 100:
                return x.date
        return task["dateCreated"] if task["priority"] == 100 and not prio else None

    def first_response(self, task, start, team_only):
        for x in self.xactions[task["phid"]]:
            if x.date <= start or x.author == task["author"] or not self.human(x.author):
                continue
            if team_only and x.author not in self.team:
                continue
            if x.type in ("core:comment", "reassign", "priority", "status"):
                if x.type == "core:comment" and not (x.comment and x.comment.text):
                    continue
                return x
            if x.type == "core:columns" and any(m["columnPHID"] not in (m.get("fromColumnPHIDs") or [])
                                                 for m in x.new):
                return x
        return None


@pytest.fixture(scope="module")
def world(sandbox):
    return World(sandbox.scenario)


def p90(values):
    return statistics.quantiles(values, n=10, method="inclusive")[8] if len(values) > 1 else values[0]


# --------------------------------------------------------------------------------------------


def test_digest_json_matches_the_scenario(config, world):
    import yaml

    # Every row, not the first reports.digest.max_rows (tests/test_digest_scale.py covers the cap).
    data = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**data, "reports": {"digest": {"max_rows": 0}}}))
    since = NOW - timedelta(days=3)
    d = run_json(config, "digest", "--since", since.isoformat())
    assert [p["username"] for p in d["on_duty"]] == ["dave", "erin", "frank"]  # cycle week 4: carol rotated off

    ubn = [t for t in world.tasks if t["status"] in OPEN and t["priority"] == 100]
    assert sorted(r["id"] for r in d["unbreak"]) == sorted(t["id"] for t in ubn)
    for row in d["unbreak"]:
        task = world.by_id[row["id"]]
        resp = world.first_response(task, world.ubn_start(task), team_only=False)
        assert row["responder"] == (world.name(resp.author) if resp else None), row["task"]
        assert row["response_hours"] == (round((resp.date - world.ubn_start(task)) / 3600, 2) if resp else None)
    facts = world.sc.facts["tasks"]
    assert {r["id"]: r["responded"] for r in d["unbreak"]}[facts["ubn_unanswered"]] is False

    inbox = world.open_in((world.cpt, world.col[(world.cpt, "Inbox")]), (world.clinic, world.col[(world.clinic, "Inbox")]))
    assert [r["id"] for r in d["inbox"]] == [t["id"] for t in sorted(inbox, key=lambda t: (t["dateCreated"], t["id"]))]

    queue_cols = [(world.cpt, world.col[(world.cpt, "Waiting for Review")]),
                  (world.clinic, world.col[(world.clinic, "Waiting for Review")]),
                  (world.ext, world.col[(world.ext, "Review Needed")])]
    queue = world.open_in(*queue_cols)
    assert sorted(r["id"] for r in d["review_queue"]) == sorted(t["id"] for t in queue)
    rows = {r["id"]: r for r in d["review_queue"]}
    for tid in facts["review_stale"]:
        task = world.by_id[tid]
        moves = world.moves_into(task, world.ext, world.col[(world.ext, "Review Needed")])
        entered = moves[-1].date if moves else task["dateCreated"]
        assert rows[tid]["waiting_hours"] == round((world.now - entered) / 3600, 2)
    waits = [r["waiting_hours"] for r in d["review_queue"]]
    assert waits == sorted(waits, reverse=True)

    tmi = world.col[(world.cpt, "Triage Meeting Inbox")]
    moved = sorted((x.date, t["id"]) for t in world.sc.tasks for x in world.moves_into(t, world.cpt, tmi)
                   if since.timestamp() < x.date <= world.now)
    assert [(int(datetime.fromisoformat(r["at"]).timestamp()), r["id"]) for r in d["moved_to_meeting"]] == moved
    assert facts["tmi_recent"] in [r["id"] for r in d["moved_to_meeting"]]
    assert d["rotation_changes"] and all(r["username"] in TEAM for r in d["rotation_changes"])


def test_agenda_json_and_carry_over(config, world):
    previous = run_json(config, "agenda", "--date", "2026-11-19")
    a = run_json(config, "agenda")
    assert a["meeting_date"] == "2026-11-26" and a["previous_meeting"] == "2026-11-19"
    tmi = world.col[(world.cpt, "Triage Meeting Inbox")]
    expected = world.open_in((world.cpt, tmi))
    assert sorted(r["id"] for r in a["items"]) == sorted(t["id"] for t in expected)
    for row in a["items"]:
        moves = world.moves_into(world.by_id[row["id"]], world.cpt, tmi)
        assert row["moved_by"] == (world.name(moves[-1].author) if moves else None)
        assert row["carried_over"] is True  # the same tasks were in the column a week "before"
        assert row["age_hours"] == round((world.now - world.by_id[row["id"]]["dateCreated"]) / 3600, 2)
    assert [r["id"] for r in previous["items"]] == [r["id"] for r in a["items"]]
    assert [p["username"] for p in a["attendees"]["on_duty"]] == ["dave", "erin", "frank"]
    assert a["attendees"]["manager"]["username"] == "mona"
    assert a["attendees"]["product_manager"]["username"] == "pete"
    commented = [r for r in a["items"] if r["last_comment"]]
    for row in commented:
        last = [x for x in world.xactions[world.by_id[row["id"]]["phid"]]
                if x.type == "core:comment" and x.comment and x.comment.text and world.human(x.author)][-1]
        assert row["last_comment"]["author"] == world.name(last.author)


def test_metrics_json_matches_the_scenario(config, world):
    m = run_json(config, "metrics")
    start = world.now - 30 * DAY
    team_open = [t for t in world.tasks if t["status"] in OPEN]
    assert m["backlog"] == len(team_open)
    assert m["unsized"] == sum(1 for t in team_open if t["points"] is None)
    assert m["unprioritised"] == sum(1 for t in team_open if t["priority"] == 90)
    assert m["created"] == sum(1 for t in world.tasks if start <= t["dateCreated"] <= world.now)
    assert m["resolved"] == sum(1 for t in world.tasks if t["status"] not in OPEN and t["dateClosed"]
                                and start <= t["dateClosed"] <= world.now)
    def activity(t):  # human activity after the creation second; (un)subscribing and relations are not
        return [x.date for x in world.xactions[t["phid"]] if x.date > t["dateCreated"] and world.human(x.author)
                and (x.type in ("title", "description", "status", "priority", "reassign", "points", "core:columns")
                     or (x.type == "core:comment" and x.comment and x.comment.text)
                     or (x.type == "core:edge" and (x.meta or {}).get("edge:type") == 41))]

    assert m["untouched_since_creation"] == sum(1 for t in team_open if not activity(t)) > 0
    assert m["untouched_recently"] == sum(1 for t in team_open
                                          if max(activity(t) or [t["dateCreated"]]) < world.now - 14 * DAY) > 0
    ages = [(world.now - t["dateCreated"]) / 3600 for t in team_open]
    assert m["age"]["count"] == len(ages)
    assert m["age"]["median"] == pytest.approx(statistics.median(ages), abs=0.01)
    assert m["age"]["p90"] == pytest.approx(p90(ages), abs=0.01)

    hours = []
    for t in world.tasks:
        s = world.ubn_start(t)
        if s is not None and start <= s <= world.now:
            resp = world.first_response(t, s, team_only=True)
            if resp:
                hours.append((resp.date - s) / 3600)
    assert m["unbreak_response"]["count"] == len(hours) > 0
    assert m["unbreak_response"]["median"] == pytest.approx(statistics.median(hours), abs=0.01)
    assert m["unbreak_response"]["mean"] == pytest.approx(statistics.mean(hours), abs=0.01)
    assert m["unbreak_response"]["p90"] == pytest.approx(p90(hours), abs=0.01)

    needed = world.col[(world.ext, "Review Needed")]
    review = []
    for t in world.tasks:
        if t["author"] in world.team or not world.human(t["author"]):
            continue
        moves = world.moves_into(t, world.ext, needed)
        s = moves[0].date if moves else (t["dateCreated"] if world.ext in t["columns"] else None)
        if s is not None and start <= s <= world.now:
            resp = world.first_response(t, s, team_only=True)
            review.append(None if resp is None else (resp.date - s) / 3600)
    answered = [h for h in review if h is not None]
    assert m["review_response"]["count"] == len(answered) > 0
    assert m["review_unanswered"] == review.count(None)
    if answered:
        assert m["review_response"]["median"] == pytest.approx(statistics.median(answered), abs=0.01)
    # Every task that arrived in the window is in exactly one duty shift.
    assert sum(s["created"] for s in m["per_shift"]) == m["created"] and len(m["per_shift"]) > 1
    assert sum(c["open"] for c in m["per_column"]) == sum(
        1 for t in world.tasks if t["status"] in OPEN for b in t["columns"] if b in world.boards)


def test_metrics_history_and_page(config, tmp_path):
    for day in (3, 2, 1):
        assert run(config, "metrics", "--format", "json", now=(NOW - timedelta(days=day)).isoformat()).exit_code == 0
    out = tmp_path / "page"
    result = run(config, "metrics", "--format", "html", "--output", str(out))
    assert result.exit_code == 0, result.output
    html = (out / "index.html").read_text()
    assert html.count("<svg") == 6 and "<script" not in html
    from clinicbot.state.metrics_history import MetricsStore

    with MetricsStore(config.parent / "state") as store:
        assert len(store.history()) == 4


def test_metrics_page_escapes_task_titles(tmp_path):
    """The page lists Unbreak Now! tasks by title: give one the scenario's hostile title."""
    sc = generate_scenario(NOW)
    hostile = next(t for t in sc.tasks if "<script>" in t["title"])["title"]
    answered = sc.facts["tasks"]["ubn_answered"]
    next(t for t in sc.tasks if int(t["id"]) == answered)["title"] = hostile
    with Sandbox(scenario=sc) as sb:
        (tmp_path / "rotation.yaml").write_text(ROTATION)
        config = write_sandbox_config(tmp_path / "clinicbot.yaml", sb.url, sb.token)
        result = run(config, "metrics", "--format", "html", "--output", str(tmp_path / "page"))
    assert result.exit_code == 0, result.output
    html = (tmp_path / "page" / "index.html").read_text()
    assert f">T{answered}</a>" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &lt;!channel&gt;" in html
    assert "<script" not in html and "<!channel>" not in html


def test_agenda_published_twice_is_one_page_and_one_edit(config, sandbox):
    slug = "clinic/triage_meeting/2026-11-26/"
    dry = run(config, "agenda", "--to", "wiki")
    assert dry.exit_code == 0 and "planned" in dry.stderr
    assert not [d for d in sandbox.store.documents.values() if d.slug == slug]
    first = run(config, "agenda", "--to", "wiki", "--apply")
    assert first.exit_code == 0, first.output
    assert "wiki: created" in first.stderr
    second = run(config, "agenda", "--to", "wiki", "--apply", now=(NOW + timedelta(hours=2)).isoformat())
    assert second.exit_code == 0 and "wiki: skipped" in second.stderr
    pages = [d for d in sandbox.store.documents.values() if d.slug == slug]
    assert len(pages) == 1 and len(pages[0].versions) == 1
    content = pages[0].versions[-1].content
    assert "Triage meeting agenda" in content and "%%%" not in content  # no stray literal markers


@pytest.fixture
def fresh_wiki(tmp_path):
    """A sandbox of its own whose wiki is empty: not even the root page "/" exists."""
    sb = Sandbox(scenario=generate_scenario(NOW, size=30))
    sb.start()
    sb.store.documents.clear()
    sb.store.documents_by_phid.clear()
    (tmp_path / "rotation.yaml").write_text(ROTATION)
    yield sb, write_sandbox_config(tmp_path / "clinicbot.yaml", sb.url, sb.token)
    sb.stop()


def _set_cap(config: Path, cap: int) -> None:
    import yaml

    data = yaml.safe_load(config.read_text())
    data["max_writes_per_run"] = cap
    config.write_text(yaml.safe_dump(data))


def test_digest_to_a_fresh_wiki_creates_every_parent_within_the_cap(fresh_wiki):
    sb, config = fresh_wiki
    slug = "clinic/digest/2026-11-24/"
    dry = run(config, "digest", "--to", "wiki")
    assert dry.exit_code == 0, dry.output
    said = " ".join(dry.stderr.split())  # the console may wrap long lines
    assert f"wiki: planned — {slug}" in said and "parent pages to create: /, clinic/, clinic/digest/" in said
    assert sb.store.documents == {}
    # Four pages to create (/, clinic/, clinic/digest/ and the digest) are four writes.
    _set_cap(config, 3)
    capped = run(config, "digest", "--to", "wiki", "--apply")
    assert capped.exit_code == 4 and "wants 4 writes but max_writes_per_run is 3" in " ".join(capped.stderr.split())
    assert sb.store.documents == {}
    # The cap is one for the run: pages and a task comment share it, checked before any write.
    _set_cap(config, 4)
    shared = run(config, "digest", "--to", "wiki", "--to", "task:T1", "--apply")
    assert shared.exit_code == 4 and "wants 5 writes but max_writes_per_run is 4" in " ".join(shared.stderr.split())
    assert sb.store.documents == {}
    first = run(config, "digest", "--to", "wiki", "--apply")
    assert first.exit_code == 0, first.output
    said = " ".join(first.stderr.split())
    assert "wiki: created" in said and "parent pages created: /, clinic/, clinic/digest/" in said
    docs = sb.store.documents
    assert sorted(docs) == ["/", "clinic/", "clinic/digest/", slug]
    assert [docs[s].latest.title for s in ("/", "clinic/", "clinic/digest/")] == ["Wiki", "Clinic", "Digest"]
    assert all(len(d.versions) == 1 for d in docs.values())


def test_digest_to_chat_and_task_dry_run_and_idempotent_keys(config, world):
    result = run(config, "digest", "--to", "task:T1", "--to", "file:" + str(config.parent / "d.md"))
    assert result.exit_code == 0, result.output
    assert "task:T1: planned" in result.stderr and "dry run" in result.stderr
    text = (config.parent / "d.md").read_text()
    assert text.startswith("# Daily triage digest") and "@\u200balice \\{F1\\}" in text
    first = run(config, "digest", "--to", "task:T1", "--apply")
    assert first.exit_code == 0 and "task:T1: posted" in first.stderr
    again = run(config, "digest", "--to", "task:T1", "--apply")
    assert "task:T1: skipped" in again.stderr and "already delivered" in again.stderr


def test_demo_shows_the_daily_digest():
    result = CliRunner().invoke(cli, ["--now", NOW_ISO, "demo", "--size", "120"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Daily triage digest" in result.output and "Unbreak Now!" in result.output


def test_scheduled_jobs_deliver_to_the_configured_targets(config):
    import yaml

    from clinicbot.jobs.context import App
    from clinicbot.jobs.reports import agenda_job as run_agenda_job, digest_job as run_digest_job, metrics_job as run_metrics_job

    data = yaml.safe_load(config.read_text())
    data["reports"] = {"digest_to": ["file:out/digest.md"], "agenda_to": ["file:out/agenda.html"],
                       "metrics_to": [], "metrics_output": "page"}  # relative to the config file
    config.write_text(yaml.safe_dump(data))
    app = App(config_path=config, now_override=NOW)
    try:
        assert run_digest_job(app, apply=False) == 0
        assert run_agenda_job(app, apply=False) == 0
        assert run_metrics_job(app, apply=False) == 0
    finally:
        app.close()
    assert (config.parent / "out" / "digest.md").read_text().startswith("# Daily triage digest")
    assert (config.parent / "out" / "agenda.html").read_text().startswith("<!DOCTYPE html>")
    assert (config.parent / "page" / "index.html").read_text().count("<svg") == 6
