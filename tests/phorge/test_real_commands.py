"""Every read-only command end to end against the real Phorge, on the seeded boards.

`doctor`, `board` (text), `sync` cold and warm, `check` as a dry run, `digest`/`agenda`/`metrics` in
every format, and `serve --once` for each job. Expected numbers and findings are computed here from
the seed (``seed.TASKS``: who did what, how many days before the seed) and the harness's manifest
(ids, absolute times), with the rules of docs/checks.md and docs/reports.md, never from clinicbot's
own output. Nothing here writes to the server: each test has its own config and state directory.
"""

from __future__ import annotations

import json
import re
import statistics
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from . import seed
from .realserver import BOARD_ROLES, PhorgeServer, run_clinicbot

pytestmark = pytest.mark.phorge

DAY = 86400
HOUR = 3600
FORMATS = ["term", "md", "remarkup", "html", "json"]
JOBS = ["sync", "checks", "digest", "agenda", "metrics", "rotation"]
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


# ---------------------------------------------------------------------------------------------
# What the seed did, task by task (from seed.TASKS and the manifest, not from clinicbot)
# ---------------------------------------------------------------------------------------------

def _events(phorge: PhorgeServer, task: dict[str, Any]) -> list[dict[str, Any]]:
    """The seeded edits after creation: {at, actor, kind, value}, at = the backdated epoch."""
    spec = next(s for s in seed.TASKS if s["key"] == task["key"])
    seeded = phorge.manifest["seeded_at"]
    return [{"at": seeded - int(days * DAY), "actor": actor, "kind": kind, "value": value}
            for days, actor, kind, value in spec.get("events", [])]


def _places(task: dict[str, Any]) -> list[tuple[str, str, str, int]]:
    """(board, column, role, entered) of each place of a task on a seeded board."""
    return [(board, place["column"], _role(board, place["column"]), place["entered"])
            for board, place in task["boards"].items()]


def _role(board: str, column: str) -> str:
    return next(role for role, name in BOARD_ROLES[board].items() if name == column)


def _responded(phorge: PhorgeServer, task: dict[str, Any], after: int) -> bool:
    """A comment, move or status change by a team member other than the author, after ``after``."""
    team = set(phorge.manifest["team"])
    return any(e["actor"] in team and e["actor"] != task["author"] and e["at"] > after
               for e in _events(phorge, task))


def _last_activity(phorge: PhorgeServer, task: dict[str, Any]) -> int:
    """Every seeded actor is a person, and every seeded edit is activity."""
    return max([task["created"], *(e["at"] for e in _events(phorge, task))])


def _meeting(phorge: PhorgeServer) -> tuple[str, datetime]:
    """A weekly meeting (UTC) whose latest start lies 4.5–5.5 days before ``now``: the weekday and start."""
    day = (phorge.now - timedelta(days=5)).date()
    return WEEKDAYS[day.weekday()], datetime.combine(day, time(12, 0), timezone.utc)


def expected_findings(phorge: PhorgeServer) -> dict[str, dict[str, Any]]:
    """Finding key -> what the test knows about it, by the rules of docs/checks.md (default thresholds)."""
    now = int(phorge.now.timestamp())
    team = set(phorge.manifest["team"])
    _, meeting_at = _meeting(phorge)
    out: dict[str, dict[str, Any]] = {}
    leftovers: list[str] = []
    owned: dict[str, int] = {}
    for task in phorge.tasks:
        if task["closed"]:
            continue
        events = _events(phorge, task)
        # The seed changes no priority after creation, so every clock below starts at creation.
        assert all(e["kind"] in ("comment", "move", "status") for e in events)
        mono, prio = task["monogram"], task["priority"]["keyword"]
        if prio == "unbreak" and now - task["created"] >= 4 * HOUR:
            if not _responded(phorge, task, task["created"]):
                out[f"unbreak-now:{mono}:no-response"] = {}
            if task["owner"] is None:
                out[f"unbreak-now:{mono}:no-owner"] = {}
        if prio == "triage" and now - task["created"] >= 7 * DAY:
            out[f"unprioritised:{mono}"] = {}
        roles = set()
        for board, column, role, entered in _places(task):
            roles.add(role)
            if role == "inbox" and now - entered >= 48 * HOUR:
                out[f"untriaged:{mono}"] = {"column": column}
            if role == "review_needed" and now - entered >= 7 * DAY and not _responded(phorge, task, entered):
                out[f"review-needed:{mono}"] = {"column": column}
            if role == "waiting_for_review" and now - entered >= 7 * DAY:
                out[f"waiting-for-review:{mono}"] = {"column": column}
            if role in ("doing", "blocked") and now - _last_activity(phorge, task) >= 14 * DAY:
                out[f"stale-in-progress:{mono}"] = {"column": column}
            if role == "triage_meeting_inbox" and entered < meeting_at.timestamp():
                leftovers.append(mono)
            if role == "discussing" and _responded(phorge, task, entered):
                out[f"discussing-answered:{mono}"] = {"column": column}
            if role == "discussing" and now - entered >= 7 * DAY and not _responded(phorge, task, entered):
                out[f"discussing-unanswered:{mono}"] = {"column": column}
            # An internal board (no review or discussing column): every task past its inbox has a team owner.
            internal = not {"review_needed", "review_in_progress", "discussing"} & set(BOARD_ROLES[board])
            if (internal and role not in ("inbox", "triage_meeting_inbox", "done")
                    and task["owner"] not in team and now - entered >= 24 * HOUR):
                out[f"unassigned-on-internal-board:{mono}"] = {"column": column}
        owner = task["owner"]
        if owner in team and "done" not in roles:
            owned[owner] = owned.get(owner, 0) + 1
            excluded = {"doing", "blocked", "review_needed", "review_in_progress", "waiting_for_review",
                        "waiting_for_deployment", "done"}
            # Assigned at creation (the seed sets owners only then); the owner's own edits since.
            last = max([task["created"], *(e["at"] for e in events if e["actor"] == owner)])
            if not roles & excluded and now - last >= 14 * DAY:
                out[f"cookie-licking:{mono}:{owner}"] = {}
    for owner, count in owned.items():
        if count > 5:
            out[f"cookie-licking:-:{owner}"] = {}
    if leftovers:
        out[f"triage-meeting-leftovers:-:{meeting_at.date().isoformat()}"] = {"tasks": sorted(leftovers)}
    return out


def _open(phorge: PhorgeServer, role: str | None = None) -> list[dict[str, Any]]:
    return [t for t in phorge.tasks if not t["closed"]
            and (role is None or any(r == role for _, _, r, _ in _places(t)))]


def _config(phorge: PhorgeServer, make_phorge_config, name: str, **kwargs) -> Path:
    weekday, meeting_at = _meeting(phorge)
    team = {"name": "Core Platform Team", "timezone": "UTC", "members": list(phorge.manifest["team"]),
            "meeting_weekday": weekday, "meeting_time": meeting_at.strftime("%H:%M")}
    return make_phorge_config(name, extra={"team": team}, **kwargs)


def _json(result) -> Any:
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return json.loads(result.stdout)


# ---------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------

def test_the_expectations_are_not_empty(phorge: PhorgeServer):
    # The rules above must find every kind of seeded trouble, or comparing with them proves little.
    slugs = {k.split(":")[0] for k in expected_findings(phorge)}
    assert slugs == {"unbreak-now", "untriaged", "unprioritised", "review-needed", "waiting-for-review",
                     "stale-in-progress", "cookie-licking", "triage-meeting-leftovers", "discussing-answered",
                     "unassigned-on-internal-board"}  # discussing-unanswered: test_real_checks_discussing_hygiene
    assert len(expected_findings(phorge)) >= 20


def test_the_seeded_tasks_are_as_the_manifest_says(phorge: PhorgeServer):
    # Every expectation here is computed from the seed: no test may touch the seeded tasks (a comment
    # naming one of them, for instance, adds an edge and bumps its dateModified). Tests that write use
    # boards and tasks of their own.
    rows = phorge.call("maniphest.search", constraints={"ids": [t["id"] for t in phorge.tasks]}, limit=100)["data"]
    modified = {r["id"]: r["fields"]["dateModified"] for r in rows}
    assert {t["monogram"]: modified[t["id"]] for t in phorge.tasks} == \
        {t["monogram"]: t["modified"] for t in phorge.tasks}
    edges = phorge.edges([t["phid"] for t in phorge.tasks], ["mention", "mentioned-in"])
    assert edges == []


def test_doctor_exits_0_on_the_healthy_board(phorge: PhorgeServer, make_phorge_config):
    config = _config(phorge, make_phorge_config, "doctor")
    result = run_clinicbot(config, "doctor", now=phorge.now)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_board_text_counts_match_the_seed(phorge: PhorgeServer, make_phorge_config):
    config = _config(phorge, make_phorge_config, "board")
    result = run_clinicbot(config, "board", now=phorge.now)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for board in phorge.manifest["projects"]:
        expected = phorge.expected_columns(board)
        total = sum(c["open_tasks"] for c in expected.values())
        assert re.search(rf"^{re.escape(board)} \W+ {total} open tasks", out, re.M), out
        # The table rows of this board: the first line of each column's row holds the count.
        section = out.split(board, 1)[1].split("\n\n")[0]
        for other in phorge.manifest["projects"]:
            if other != board and other in section:
                section = section.split(other)[0]
        rows = [cells for cells in (re.split(r"\s*[│┃]\s*", line.strip("│┃ ")) for line in section.splitlines())
                if len(cells) == 5 and cells[2].isdigit()]
        assert [int(r[2]) for r in rows] == [c["open_tasks"] for c in expected.values()]
        for row, column in zip(rows, expected.values()):
            oldest = row[3].split(" ")[0]
            assert oldest == (column["oldest"] or "—")


def test_sync_cold_then_warm(phorge: PhorgeServer, make_phorge_config):
    config = _config(phorge, make_phorge_config, "sync")
    on_boards = [t for t in phorge.tasks if set(t["boards"]) & set(phorge.manifest["projects"])]
    cold = _json(run_clinicbot(config, "sync", "--format", "json", now=phorge.now))
    assert cold["mode"] == "full"
    assert cold["tasks"] == len(on_boards) == len(phorge.tasks)
    assert cold["histories_fetched"] == len(on_boards)
    # Nothing changed on the seeded boards since: one maniphest.search, no history read.
    warm = _json(run_clinicbot(config, "sync", "--format", "json", now=phorge.now))
    assert warm["mode"] == "incremental"
    assert warm["calls_by_method"] == {"maniphest.search": 1}, warm
    assert warm["histories_fetched"] == 0 and warm["removed"] == 0
    assert warm["tasks"] == len(on_boards)
    # The text form says the same in one line.
    text = run_clinicbot(config, "sync", now=phorge.now)
    assert text.returncode == 0, text.stdout + text.stderr
    assert re.search(r"\b0 histories\b", text.stdout) and re.search(r"\b1 Conduit call\b", text.stdout), text.stdout


def test_check_dry_run_lists_the_expected_findings(phorge: PhorgeServer, make_phorge_config):
    config = _config(phorge, make_phorge_config, "check")
    result = run_clinicbot(config, "check", "--format", "json", now=phorge.now)
    assert result.returncode == 1, result.stdout + result.stderr  # findings fired
    data = json.loads(result.stdout)
    expected = expected_findings(phorge)
    got = {f["key"]: f for f in data["findings"]}
    assert sorted(got) == sorted(expected), f"unexpected {sorted(set(got) - set(expected))}, missing {sorted(set(expected) - set(got))}"
    for key, want in expected.items():
        if "column" in want:
            assert got[key]["facts"]["column"] == want["column"], key
        if "tasks" in want:
            assert sorted(got[key]["facts"]["task_monograms"]) == want["tasks"], key
    assert data["failures"] == [] and data["on_duty"] == ["alice", "bob"]
    # A dry run: everything planned, nothing posted.
    assert data["actions"] and {a["status"] for a in data["actions"]} == {"planned"}
    assert data["apply"] is False


@pytest.mark.parametrize("command", ["digest", "agenda", "metrics"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_reports_in_every_format(phorge: PhorgeServer, make_phorge_config, command, fmt):
    config = _config(phorge, make_phorge_config, f"{command}-{fmt}")
    args = [command, "--format", fmt] + (["--no-record"] if command == "metrics" else [])
    result = run_clinicbot(config, *args, now=phorge.now)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.strip() and "Traceback" not in result.stderr
    for ch in ("\x1b", "\x07", "\u202e", "\u202c"):
        assert ch not in out, f"{command} --format {fmt} prints U+{ord(ch):04X} from a title"
    # Every format names the hostile tasks that the report lists.
    listed = {"digest": _open(phorge, "inbox"), "agenda": _open(phorge, "triage_meeting_inbox"),
              "metrics": [t for t in _open(phorge) if t["priority"]["keyword"] == "unbreak"]}[command]
    hostile = [t for t in listed if t["hostile"]]
    assert hostile, "the seed has a hostile title in every listed section"
    for task in hostile:
        assert re.search(rf"\b{task['monogram']}\b", out), (command, fmt, task["monogram"])
    if fmt == "json":
        json.loads(out)


def test_digest_numbers_match_the_seed(phorge: PhorgeServer, make_phorge_config):
    config = _config(phorge, make_phorge_config, "digest-numbers")
    data = _json(run_clinicbot(config, "digest", "--format", "json", now=phorge.now))
    ids = lambda rows: sorted(r["id"] for r in rows)  # noqa: E731
    assert ids(data["unbreak"]) == ids([t for t in _open(phorge) if t["priority"]["keyword"] == "unbreak"])
    assert ids(data["inbox"]) == ids(_open(phorge, "inbox"))
    assert ids(data["review_queue"]) == ids(_open(phorge, "review_needed") + _open(phorge, "waiting_for_review"))
    assert [p["username"] for p in data["on_duty"]] == ["alice", "bob"]
    for row in data["unbreak"]:
        task = next(t for t in phorge.tasks if t["id"] == row["id"])
        assert row["responded"] is _responded(phorge, task, task["created"])


def test_agenda_numbers_match_the_seed(phorge: PhorgeServer, make_phorge_config):
    config = _config(phorge, make_phorge_config, "agenda-numbers")
    data = _json(run_clinicbot(config, "agenda", "--format", "json", now=phorge.now))
    expected = _open(phorge, "triage_meeting_inbox")
    assert sorted(i["id"] for i in data["items"]) == sorted(t["id"] for t in expected)
    for item in data["items"]:
        task = next(t for t in expected if t["id"] == item["id"])
        moves = [e for e in _events(phorge, task) if e["kind"] == "move"]
        # Moved there by someone, or created there (then nobody moved it: issue 9 point 6).
        assert item["moved_by"] == (moves[-1]["actor"] if moves else None), task["key"]
        comments = task["comments"]
        assert (item["last_comment"] is None) == (not comments), task["key"]


def test_metrics_numbers_match_the_seed(phorge: PhorgeServer, make_phorge_config):
    config = _config(phorge, make_phorge_config, "metrics-numbers")
    data = _json(run_clinicbot(config, "metrics", "--format", "json", "--no-record", now=phorge.now))
    now = int(phorge.now.timestamp())
    start = now - 30 * DAY
    team = set(phorge.manifest["team"])
    open_tasks = _open(phorge)
    assert data["window_days"] == 30
    assert data["backlog"] == len(open_tasks)
    assert data["unsized"] == len(open_tasks)  # the seed gives no task points
    assert data["unprioritised"] == sum(t["priority"]["keyword"] == "triage" for t in open_tasks)
    assert data["created"] == sum(start <= t["created"] <= now for t in phorge.tasks)
    assert data["resolved"] == sum(t["closed_at"] is not None and start <= t["closed_at"] <= now
                                   for t in phorge.tasks)
    assert data["untouched_since_creation"] == sum(not _events(phorge, t) for t in open_tasks)
    assert data["untouched_recently"] == sum(now - _last_activity(phorge, t) > 14 * DAY for t in open_tasks)
    ubn = [t for t in phorge.tasks if t["priority"]["keyword"] == "unbreak" and start <= t["created"]]
    assert sorted(r["id"] for r in data["unbreak_tasks"]) == sorted(t["id"] for t in ubn)
    assert data["unbreak_unanswered"] == sum(not _responded(phorge, t, t["created"]) for t in ubn)
    # Review requests from outside the team on the review board, and the first team response to each.
    reviews = [t for t in phorge.tasks if seed.ER in t["boards"] and t["author"] not in team
               and start <= t["created"]]  # the seed puts every task on its boards when creating it
    assert sorted(r["id"] for r in data["review_tasks"]) == sorted(t["id"] for t in reviews)
    waits = []
    for task in reviews:
        asked = task["created"]
        answers = [e["at"] for e in _events(phorge, task) if e["actor"] in team and e["at"] > asked]
        if answers:
            waits.append((min(answers) - asked) / HOUR)
    assert data["review_unanswered"] == len(reviews) - len(waits)
    assert data["review_response"]["count"] == len(waits)
    assert data["review_response"]["median"] == pytest.approx(statistics.median(waits), abs=0.01)
    per_column = {(c["board"], c["column"]): c["open"] for c in data["per_column"]}
    for board in phorge.manifest["projects"]:
        for column, want in phorge.expected_columns(board).items():
            assert per_column[(board, column)] == want["open_tasks"], (board, column)


@pytest.mark.parametrize("job", JOBS)
def test_serve_once_runs_each_job(phorge: PhorgeServer, make_phorge_config, job):
    config = _config(phorge, make_phorge_config, f"serve-{job}")
    result = run_clinicbot(config, "serve", "--once", job, now=phorge.now)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    # Without --apply (the config says apply: false) a job writes nothing to the server.
    assert phorge.token("clinicbot") not in result.stdout + result.stderr
