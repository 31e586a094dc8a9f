"""Seed a fresh real Phorge for clinicbot's scenarios, then describe it in a JSON manifest.

Accounts, tokens and workboard columns are made by ``seed.php`` (Conduit cannot create them); projects
and tasks through Conduit (``project.edit``, ``maniphest.edit``) as the users who own them, so authors
vary; then every task edit is backdated in MariaDB so ages matter. The manifest is the machine-readable
truth the real-server tests compute their expectations from (never from clinicbot's own output).

Standard library only (the harness runs before clinicbot's dependencies are installed).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
DAY = 86400

# Wikimedia-like statuses, as on the server the recordings came from.
STATUSES: dict[str, dict[str, Any]] = {
    "open": {"name": "Open", "special": "default", "prefixes": ["open", "opens", "reopen", "reopens"]},
    "stalled": {"name": "Stalled", "name.full": "Open, Stalled"},
    "resolved": {"name": "Resolved", "name.full": "Closed, Resolved", "closed": True, "special": "closed",
                 "prefixes": ["closed", "closes", "close", "fix", "fixes", "fixed", "resolve", "resolves"]},
    "declined": {"name": "Declined", "name.full": "Closed, Declined", "closed": True},
    "invalid": {"name": "Invalid", "name.full": "Closed, Invalid", "closed": True, "claim": False},
    "duplicate": {"name": "Duplicate", "name.full": "Closed, Duplicate", "closed": True,
                  "special": "duplicate", "claim": False},
}
CLOSED = {k for k, v in STATUSES.items() if v.get("closed")}
PRIORITIES = {"unbreak": (100, "Unbreak Now!"), "triage": (90, "Needs Triage"), "high": (80, "High"),
              "normal": (50, "Normal"), "low": (25, "Low"), "wish": (0, "Wishlist")}

USERS = [
    {"username": "admin", "realname": "Ada Admin", "admin": True},
    {"username": "clinicbot", "realname": "Clinic Bot", "bot": True},
    {"username": "alice", "realname": "Alice Anderson"},
    {"username": "bob", "realname": "Bob Brown"},
    {"username": "carol", "realname": "Carol Chen"},
    {"username": "dave", "realname": "Dave Davis"},
    {"username": "erin", "realname": "Erin Evans"},
    {"username": "mallory", "realname": "Mallory Outsider"},  # not a team member
]
TEAM = ["alice", "bob", "carol", "dave", "erin"]
CPT = "Core Platform Team"
ER = "CPT External Code Reviews"
BOARDS = {
    CPT: ["Inbox", "Triage Meeting Inbox", "Ready", "Doing", "Waiting for Review", "Done"],
    ER: ["Review Needed", "In Progress", "Review Completed", "Discussing"],
}

# Titles that would be live markup, pings, embeds or terminal escapes if echoed carelessly.
HOSTILE_TITLES = {
    "hostile-mention": "Ping @alice and @bob about **bold** //italic// [[ http://evil.example | click ]]",
    "hostile-embeds": "Embeds {F1} and {T1} and a bare T1 with %%%literal%%% and a `backtick",
    "hostile-control": "Terminal \x1b[2J clear, bell \x07 and \u202eRTL override\u202c here",
    "hostile-all": "@alice **bold** [[ http://evil.example | click ]] {F1} {T1} T1 %%% ` \x1b[2J \x07 \u202e",
}

# One entry per task. created: days before the seed time. events: later edits, each backdated:
# (days ago, actor, kind, value) with kind comment | move (value = (board, column)) | status.
TASKS: list[dict[str, Any]] = [
    # Core Platform Team: Inbox (untriaged)
    {"key": "inbox-fresh", "title": "Flaky integration test: test_job_queue_retry", "author": "mallory",
     "cols": {CPT: "Inbox"}, "priority": "triage", "created": 0.05},
    {"key": "inbox-3d", "title": "Export to CSV times out for large projects", "author": "alice",
     "cols": {CPT: "Inbox"}, "priority": "triage", "created": 3},
    {"key": "inbox-10d-answered", "title": "Login page renders incorrectly on Safari 17", "author": "mallory",
     "cols": {CPT: "Inbox"}, "priority": "triage", "created": 10,
     "events": [(9.5, "carol", "comment", "Can you attach a screenshot?")]},
    {"key": "inbox-30d", "title": "Broken link in footer of help center", "author": "mallory",
     "cols": {CPT: "Inbox"}, "priority": "triage", "created": 30},
    {"key": "inbox-normal-20d", "title": "Evaluate replacing cron jobs with systemd timers", "author": "dave",
     "cols": {CPT: "Inbox"}, "priority": "normal", "created": 20},
    {"key": "hostile-mention", "title": HOSTILE_TITLES["hostile-mention"], "author": "mallory",
     "cols": {CPT: "Inbox"}, "priority": "triage", "created": 5},
    {"key": "hostile-embeds", "title": HOSTILE_TITLES["hostile-embeds"], "author": "mallory",
     "cols": {CPT: "Inbox"}, "priority": "triage", "created": 6},
    {"key": "hostile-control", "title": HOSTILE_TITLES["hostile-control"], "author": "mallory",
     "cols": {CPT: "Triage Meeting Inbox"}, "priority": "normal", "created": 14},  # the column's oldest
    {"key": "hostile-all", "title": HOSTILE_TITLES["hostile-all"], "author": "mallory",
     "cols": {CPT: "Inbox"}, "priority": "unbreak", "created": 2},
    # Unbreak Now!
    {"key": "ubn-unowned-2d", "title": "API gateway returns 502 under sustained load", "author": "bob",
     "cols": {CPT: "Inbox"}, "priority": "unbreak", "created": 2},
    {"key": "ubn-owned-6h", "title": "Checkout fails for carts over 100 items", "author": "mallory",
     "cols": {CPT: "Doing"}, "priority": "unbreak", "owner": "dave", "created": 0.25},
    # Triage Meeting Inbox
    {"key": "tmi-8d", "title": "Rate limiter misconfigured for internal clients", "author": "erin",
     "cols": {CPT: "Inbox"}, "priority": "high", "created": 12,
     "events": [(8, "erin", "move", (CPT, "Triage Meeting Inbox")),
                (7.5, "alice", "comment", "Let us discuss this in the meeting.")]},
    {"key": "tmi-2d", "title": "Decide on the retention period for audit logs", "author": "carol",
     "cols": {CPT: "Triage Meeting Inbox"}, "priority": "normal", "created": 2},
    # Ready
    {"key": "ready-owned", "title": "Migrate session store from memcached to Redis", "author": "bob",
     "cols": {CPT: "Ready"}, "priority": "high", "owner": "bob", "created": 15},
    {"key": "ready-stalled", "title": "Quarterly dependency audit (Q4)", "author": "erin",
     "cols": {CPT: "Ready"}, "priority": "low", "status": "stalled", "owner": "erin", "created": 25},
    {"key": "ready-unprioritised", "title": "Job runner: emit JSON logs for retries", "author": "dave",
     "cols": {CPT: "Ready"}, "priority": "triage", "created": 9},
    # Doing
    {"key": "doing-stale-20d", "title": "Add structured logging to the job runner", "author": "carol",
     "cols": {CPT: "Ready"}, "priority": "normal", "owner": "carol", "created": 30,
     "events": [(20, "carol", "move", (CPT, "Doing"))]},
    {"key": "doing-fresh", "title": "Upgrade PHP runtime to 8.3 on app servers", "author": "bob",
     "cols": {CPT: "Doing"}, "priority": "normal", "owner": "bob", "created": 4,
     "events": [(0.5, "bob", "comment", "Halfway through the app servers.")]},
    {"key": "cookie-licked", "title": "Rotate TLS certificates for internal service mesh", "author": "alice",
     "cols": {CPT: "Doing"}, "priority": "high", "owner": "alice", "created": 40},
    # Waiting for Review
    {"key": "wfr-9d", "title": "Deploy tooling: add canary stage before full rollout", "author": "dave",
     "cols": {CPT: "Doing"}, "priority": "high", "owner": "dave", "created": 14,
     "events": [(9, "dave", "move", (CPT, "Waiting for Review"))]},
    {"key": "wfr-1d", "title": "Avatar upload fails for files larger than 1MB", "author": "carol",
     "cols": {CPT: "Waiting for Review"}, "priority": "normal", "owner": "carol", "created": 1},
    # Done
    {"key": "done-3d", "title": "Database connection pool exhaustion during nightly batch", "author": "dave",
     "cols": {CPT: "Doing"}, "priority": "high", "owner": "dave", "created": 10,
     "events": [(3, "dave", "move", (CPT, "Done")), (3, "dave", "status", "resolved")]},
    {"key": "done-40d", "title": "Document on-call escalation paths", "author": "alice",
     "cols": {CPT: "Done"}, "priority": "low", "owner": "alice", "status": "resolved", "created": 45},
    {"key": "declined-inbox", "title": "Rewrite everything in a new language", "author": "mallory",
     "cols": {CPT: "Inbox"}, "priority": "wish", "created": 18,
     "events": [(16, "carol", "status", "declined")]},
    # External code reviews
    {"key": "review-needed-1d", "title": "Review: Growth team feature flag SDK bump", "author": "mallory",
     "cols": {ER: "Review Needed"}, "priority": "normal", "created": 1},
    {"key": "review-needed-4d", "title": "Review: Analytics event schema v2", "author": "mallory",
     "cols": {ER: "Review Needed"}, "priority": "normal", "created": 4},
    {"key": "review-needed-15d", "title": "Review: Search team indexing pipeline refactor", "author": "erin",
     "cols": {ER: "Review Needed"}, "priority": "high", "created": 15},
    {"key": "review-in-progress", "title": "Review: Payments webhook retry/backoff patch (v3)", "author": "mallory",
     "cols": {ER: "Review Needed"}, "priority": "normal", "owner": "bob", "created": 8,
     "events": [(6, "bob", "move", (ER, "In Progress")), (6, "bob", "comment", "Taking this one.")]},
    {"key": "review-completed", "title": "Review: Mobile team API client pagination change", "author": "mallory",
     "cols": {ER: "Review Completed"}, "priority": "normal", "owner": "erin", "status": "resolved",
     "created": 11},
    {"key": "review-discussing", "title": "Review: Data team warehouse connector", "author": "mallory",
     "cols": {ER: "Discussing"}, "priority": "low", "created": 12,
     "events": [(10, "alice", "comment", "We need to talk about the connection limits.")]},
    # On both boards
    {"key": "cross-board", "title": "Rate limits for the partner API need review", "author": "erin",
     "cols": {CPT: "Inbox", ER: "Review Needed"}, "priority": "triage", "created": 7},
]


class SeedError(Exception):
    pass


class Conduit:
    """Minimal Conduit client (JSON encoding, as arcanist sends it)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, token: str, method: str, **params: Any) -> Any:
        body = dict(params, __conduit__={"token": token})
        data = urllib.parse.urlencode({"params": json.dumps(body), "output": "json", "__conduit__": "1"})
        req = urllib.request.Request(self.url + "api/" + method, data=data.encode())
        with urllib.request.urlopen(req, timeout=120) as resp:
            answer = json.load(resp)
        if answer.get("error_code"):
            raise SeedError(f"{method}: {answer['error_code']}: {answer.get('error_info')}")
        return answer["result"]


def php(phorge: Path, mode: str, spec: dict[str, Any]) -> Any:
    proc = subprocess.run(["php", str(HERE / "seed.php"), str(phorge), mode], input=json.dumps(spec),
                          capture_output=True, text=True, cwd=phorge)
    if proc.returncode != 0:
        raise SeedError(f"seed.php {mode} failed: {(proc.stderr or proc.stdout).strip()[-800:]}")
    return json.loads(proc.stdout[proc.stdout.index("{"):])


_PHID = re.compile(r"^PHID-[A-Z]{4}(-[A-Z]{4})?-[a-z0-9]+$")


def phid_list(phids: list[str]) -> str:
    for p in phids:
        if not _PHID.match(p):
            raise SeedError(f"unexpected PHID {p!r}")
    return ",".join(f"'{p}'" for p in phids)


def seed(phorge: Path, url: str, manifest_path: Path, sql: Callable[[str], str]) -> dict[str, Any]:
    marker = manifest_path.with_name(".seeding")
    if marker.exists():
        raise SeedError(f"an earlier seed stopped halfway: remove {manifest_path.parent} and start again")
    marker.write_text("started")
    now = int(time.time())
    conduit = Conduit(url)

    users = php(phorge, "accounts", {"users": USERS})
    token = {name: u["token"] for name, u in users.items()}
    phid = {name: u["phid"] for name, u in users.items()}

    projects: dict[str, dict[str, Any]] = {}
    for name in BOARDS:
        found = conduit.call(token["admin"], "project.search", constraints={"name": name})["data"]
        found = [p for p in found if p["fields"]["name"] == name]
        if found:
            pphid = found[0]["phid"]
        else:
            res = conduit.call(token["admin"], "project.edit", transactions=[
                {"type": "name", "value": name},
                {"type": "members.add", "value": [phid[u] for u in TEAM]},
            ])
            pphid = res["object"]["phid"]
        projects[name] = {"phid": pphid}
    columns = php(phorge, "columns", {"actor": "admin", "projects": [
        {"phid": projects[name]["phid"], "columns": cols} for name, cols in BOARDS.items()]})
    for name, cols in BOARDS.items():
        projects[name]["columns"] = {c: columns[projects[name]["phid"]][c] for c in cols}
        projects[name]["column_order"] = cols

    tasks = [seed_task(conduit, spec, token, phid, projects, now) for spec in TASKS]

    backdate(sql, tasks, now)
    subprocess.run([str(phorge / "bin" / "search"), "index", "--type", "TASK", "--force"],
                   capture_output=True, text=True, cwd=phorge)
    sql("UPDATE phabricator_maniphest.maniphest_task_fdocument d JOIN phabricator_maniphest.maniphest_task t"
        " ON d.objectPHID = t.phid SET d.epochCreated = t.dateCreated, d.epochModified = t.dateModified")

    manifest = {
        "url": url,
        "phorge_commit": "07c1a51",
        "seeded_at": now,
        "users": {name: {"phid": phid[name], "token": token[name],
                         "realname": next(u["realname"] for u in USERS if u["username"] == name),
                         "admin": name == "admin", "bot": name == "clinicbot",
                         "team": name in TEAM} for name in phid},
        "team": TEAM,
        "projects": projects,
        "statuses": {k: {"name": v["name"], "closed": bool(v.get("closed"))} for k, v in STATUSES.items()},
        "tasks": [{k: v for k, v in t.items() if not k.startswith("_")} for t in tasks],
    }
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    tmp.chmod(0o600)
    tmp.replace(manifest_path)
    marker.unlink()
    return manifest


def seed_task(conduit: Conduit, spec: dict[str, Any], token: dict[str, str], phid: dict[str, str],
              projects: dict[str, dict[str, Any]], now: int) -> dict[str, Any]:
    author = spec["author"]
    created = now - int(spec["created"] * DAY)
    cols = dict(spec["cols"])
    xactions: list[dict[str, Any]] = [
        {"type": "title", "value": spec["title"]},
        {"type": "description", "value": f"Seeded scenario task `{spec['key']}`."},
        {"type": "priority", "value": spec["priority"]},
        {"type": "projects.add", "value": [projects[b]["phid"] for b in cols]},
        {"type": "column", "value": [projects[b]["columns"][c] for b, c in cols.items()]},
    ]
    if spec.get("owner"):
        xactions.append({"type": "owner", "value": phid[spec["owner"]]})
    status = spec.get("status", "open")
    if status != "open":
        xactions.append({"type": "status", "value": status})
    res = conduit.call(token[author], "maniphest.edit", transactions=xactions)
    task_id, task_phid = res["object"]["id"], res["object"]["phid"]
    edits = [(created, [x["phid"] for x in res["transactions"]])]
    entered = {b: created for b in cols}
    closed_at = created if status in CLOSED else None
    comments = []
    modified = created
    for days, actor, kind, value in spec.get("events", []):
        when = now - int(days * DAY)
        if kind == "comment":
            tx = [{"type": "comment", "value": value}]
            comments.append({"author": actor, "epoch": when, "text": value})
        elif kind == "move":
            board, column = value
            tx = [{"type": "column", "value": [projects[board]["columns"][column]]}]
            cols[board] = column
            entered[board] = when
        else:
            tx = [{"type": "status", "value": value}]
            status = value
            closed_at = when if value in CLOSED else None
        res = conduit.call(token[actor], "maniphest.edit", objectIdentifier=task_phid, transactions=tx)
        edits.append((when, [x["phid"] for x in res["transactions"]]))
        modified = max(modified, when)
    value, name = PRIORITIES[spec["priority"]]
    return {
        "key": spec["key"], "id": task_id, "monogram": f"T{task_id}", "phid": task_phid,
        "title": spec["title"], "author": author, "owner": spec.get("owner"),
        "priority": {"value": value, "name": name, "keyword": spec["priority"]},
        "status": status, "closed": status in CLOSED,
        "boards": {b: {"project_phid": projects[b]["phid"], "column": c, "column_phid": projects[b]["columns"][c],
                       "entered": entered[b]} for b, c in cols.items()},
        "created": created, "modified": modified, "closed_at": closed_at,
        "comments": comments, "hostile": spec["key"].startswith("hostile"),
        "_edits": edits,
    }


def backdate_tasks(sql: Callable[[str], str], tasks: list[dict[str, Any]]) -> None:
    """Every edit of these tasks at its planned time: transactions, comments, the task's own dates."""
    db = "phabricator_maniphest"
    stmts = []
    for t in tasks:
        for when, xphids in t["_edits"]:
            if not xphids:
                continue
            ids = phid_list(xphids)
            stmts.append(f"UPDATE {db}.maniphest_transaction SET dateCreated={when}, dateModified={when}"
                         f" WHERE phid IN ({ids});")
            stmts.append(f"UPDATE {db}.maniphest_transaction_comment SET dateCreated={when}, dateModified={when}"
                         f" WHERE transactionPHID IN ({ids});")
        closed = "NULL" if t["closed_at"] is None else str(t["closed_at"])
        stmts.append(f"UPDATE {db}.maniphest_task SET dateCreated={t['created']}, dateModified={t['modified']},"
                     f" closedEpoch={closed} WHERE phid IN ({phid_list([t['phid']])});")
        stmts.append(f"UPDATE {db}.maniphest_task_fdocument SET epochCreated={t['created']},"
                     f" epochModified={t['modified']} WHERE objectPHID IN ({phid_list([t['phid']])});")
    if stmts:
        sql("\n".join(stmts))


def backdate(sql: Callable[[str], str], tasks: list[dict[str, Any]], now: int) -> None:
    """The seed's tasks, and users (60 days ago) and projects with their columns (59 days ago)."""
    backdate_tasks(sql, tasks)
    old = now - 60 * DAY
    sql(f"UPDATE phabricator_user.user SET dateCreated={old}, dateModified={old};"
        f"UPDATE phabricator_project.project SET dateCreated={old + DAY}, dateModified={old + DAY};"
        f"UPDATE phabricator_project.project_column SET dateCreated={old + DAY}, dateModified={old + DAY};"
        f"UPDATE phabricator_project.project_transaction SET dateCreated={old + DAY}, dateModified={old + DAY};"
        f"UPDATE phabricator_project.project_columntransaction SET dateCreated={old + DAY},"
        f" dateModified={old + DAY};")
