"""Build the scenario that mirrors the recordings' server (``tests/fixtures/scenario-recorded.yaml``).

The recordings (``../shared/conduit``) were taken from a real Phorge seeded with 27 tasks
before the ``maniphest.edit--*`` and ``phriction.*`` calls ran. This builder reproduces that
*seed* state with the same ids and PHIDs (users, projects, columns, tasks), so the contract
tests can replay every recorded request, edits included, against a sandbox.

Histories: the recorded ones are kept transaction for transaction (T4, T6, T12, T15, T17,
T18, the creation of T26/T27, the project and column ones); the other tasks get a
plausible history consistent with their recorded final state, with ids fitted between the
recorded ones by date. Run ``python -m clinicbot.sandbox.recorded RECORDINGS OUT.yaml``.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from clinicbot.sandbox.scenario import Scenario
from clinicbot.sandbox.store import EDGE_PROJECT, Comment, Xaction

NOW = datetime(2026, 11, 22, 3, 25, tzinfo=timezone.utc)  # just before the recorded edits
BOT_PHID = "PHID-USER-sandboxc1inicbotbot"

# Board placement in the seed state for tasks no search recording shows with attachments
# (from the recordings' README table and the creation transactions of T26/T27).
COLUMNS_BY_NAME = {
    7: [("CPT External Code Reviews", "Review Completed")], 11: [("Clinic Duty Team", "Done")],
    13: [("Clinic Duty Team", "Inbox")], 20: [("CPT External Code Reviews", "Discussing")],
    21: [("Clinic Duty Team", "Inbox")], 22: [("Clinic Duty Team", "Ready")],
    23: [("CPT External Code Reviews", "Review Needed")], 26: [("Clinic Duty Team", "Inbox")],
    27: [("CPT External Code Reviews", "Review Needed")],
}
# Recordings made after the edits: their state is not the seed state.
AFTER_EDITS = {"maniphest.search--after-column-on-untagged-board.json",
               "maniphest.search--task-with-unconfigured-status.json"}
MODERN_TYPES = {"create": "core:create", "comment": "core:comment", "owner": "reassign",
                "subscribers": "core:subscribers", "projects": "core:edge"}


def _load(directory: Path) -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}


def _result(recs: dict[str, dict[str, Any]], name: str) -> Any:
    return recs[name]["response"]["result"]


def build_recorded_scenario(directory: str | Path) -> Scenario:
    recs = _load(Path(directory))
    users = _users(recs)
    projects, columns = _projects(recs), _columns(recs)
    col_by_name = {(next(p["name"] for p in projects if p["phid"] == c["project"]), c["name"]): c for c in columns}
    tasks = _tasks(recs, col_by_name)
    by_phid = {t["phid"]: t for t in tasks}
    xactions = _recorded_xactions(recs, by_phid)
    xactions += _synthesized_xactions(tasks, xactions, columns)
    xactions.sort(key=lambda x: (x.id, x.object))
    facts = {"tasks": {"rich_history": [4, 12, 15], "unbreak_now": 4, "cross_board": [12, 18],
                       "milestone_only": [9, 10],
                       "parent_subtask": [16, 17], "untriaged": [24, 25], "triage_meeting": 25, "review_stale": 23,
                       "unconfigured_status_target": 26, "created_by_recording": 28},
             "people": {"admin": "admin", "bot": "clinicbot", "team": ["alice", "bob", "carol", "dave"]}}
    return Scenario(now=NOW, users=users, projects=projects, columns=columns, tasks=tasks, transactions=xactions,
                    documents=[], facts=facts, salt="recorded",
                    description="seed state of the recorded Phorge server (../shared/conduit), before its edits")


def _users(recs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for u in sorted(_result(recs, "user.search--all.json")["data"], key=lambda u: u["id"]):
        f = u["fields"]
        out.append({"id": u["id"], "phid": u["phid"], "username": f["username"], "realName": f["realName"],
                    "email": f"{f['username']}@example.com", "admin": "admin" in f["roles"], "bot": False,
                    "disabled": False, "dateCreated": f["dateCreated"]})
    out.append({"id": len(out) + 1, "phid": BOT_PHID, "username": "clinicbot", "realName": "Clinic Bot",
                "email": "clinicbot@example.com", "admin": False, "bot": True, "disabled": False,
                "dateCreated": out[-1]["dateCreated"] + 60})
    return out


def _projects(recs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    watchers = {p["phid"]: [w["phid"] for w in reversed(p["attachments"]["watchers"]["watchers"])]
                for p in _result(recs, "project.search--phids-members-watchers.json")["data"]}
    aliases = {v["projectPHID"]: [] for v in _result(recs, "project.search--slugs.json")["maps"]["slugMap"].values()}
    aliases["PHID-PROJ-xvlu2w3dfxng35zunpfl"] = ["cpt"]
    out = []
    for p in sorted(_result(recs, "project.search--all.json")["data"], key=lambda p: p["id"]):
        f = p["fields"]
        out.append({"id": p["id"], "phid": p["phid"], "name": f["name"], "slug": f["slug"],
                    "aliases": aliases.get(p["phid"], []), "icon": f["icon"]["key"], "color": f["color"]["key"],
                    "description": f["description"], "parent": f["parent"]["phid"] if f["parent"] else None,
                    "milestone": f["milestone"],
                    "members": [m["phid"] for m in reversed(p["attachments"]["members"]["members"])],
                    "watchers": watchers.get(p["phid"], []), "dateCreated": f["dateCreated"],
                    "dateModified": f["dateModified"]})
    return out


def _columns(recs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    seen = {}
    for name in ("project.column.search--projects-CPT.json", "project.column.search--projects-multiple.json",
                 "project.column.search--milestone-proxy-columns.json"):
        for c in _result(recs, name)["data"]:
            f = c["fields"]
            seen[c["id"]] = {"id": c["id"], "phid": c["phid"], "project": f["project"]["phid"],
                             "name": "" if f["proxyPHID"] else f["name"], "sequence": f["sequence"],
                             "hidden": f["isHidden"], "default": f["isDefaultColumn"], "proxy": f["proxyPHID"],
                             "dateCreated": f["dateCreated"], "dateModified": f["dateModified"]}
    return [seen[i] for i in sorted(seen)]


def _tasks(recs: dict[str, dict[str, Any]], col_by_name: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    attach: dict[int, dict[str, Any]] = {}
    for name, rec in recs.items():
        if rec["method"] != "maniphest.search" or name in AFTER_EDITS or rec["response"]["error_code"]:
            continue
        for item in rec["response"]["result"]["data"]:
            attach.setdefault(item["id"], {}).update(item["attachments"])
    edges: dict[str, list[tuple[str, str]]] = {}
    for name in ("edge.search--subtasks-parents.json", "edge.search--task-parent-only.json"):
        for e in _result(recs, name)["data"]:
            edges.setdefault(e["sourcePHID"], []).append((e["edgeType"], e["destinationPHID"]))
    tasks = []
    for item in sorted(_result(recs, "maniphest.search--limit-max-100.json")["data"], key=lambda t: t["id"]):
        f, a, tid = item["fields"], attach.get(item["id"], {}), item["id"]
        if "projects" in a:
            projects = list(reversed(a["projects"]["projectPHIDs"]))  # stored oldest first
        else:
            projects = [col_by_name[(board, col)]["project"] for board, col in COLUMNS_BY_NAME[tid]]
        if "columns" in a:
            boards = a["columns"]["boards"] or {}
            columns = {b: v["columns"][0]["phid"] for b, v in reversed(list(boards.items()))}
        else:
            columns = {col_by_name[(board, col)]["project"]: col_by_name[(board, col)]["phid"]
                       for board, col in COLUMNS_BY_NAME.get(tid, [])}
        subscribers = (list(reversed(a["subscribers"]["subscriberPHIDs"])) if "subscribers" in a
                       else [f["authorPHID"]])
        task_edges = edges.get(item["phid"], [])
        tasks.append({"id": tid, "phid": item["phid"], "title": f["name"], "description": f["description"]["raw"],
                      "author": f["authorPHID"], "owner": f["ownerPHID"], "status": f["status"]["value"],
                      "priority": f["priority"]["value"], "points": None if f["points"] is None else float(f["points"]),
                      "dateCreated": f["dateCreated"], "dateModified": f["dateModified"],
                      "dateClosed": f["dateClosed"], "closer": f["closerPHID"], "projects": projects,
                      "columns": columns, "subscribers": subscribers,
                      "parents": [d for k, d in task_edges if k == "task.parent"],
                      "subtasks": [d for k, d in task_edges if k == "task.subtask"]})
    return tasks


# -- recorded histories -----------------------------------------------------------------

def _recorded_xactions(recs: dict[str, dict[str, Any]], tasks: dict[str, dict[str, Any]]) -> list[Xaction]:
    """Transactions as recorded, converted to the store's internal (legacy) vocabulary."""
    legacy: dict[int, dict[str, Any]] = {}
    for items in _result(recs, "maniphest.gettasktransactions.json").values():
        for item in items:
            legacy[int(item["transactionID"])] = item
    # Keyed by (id, object): projects, columns and tasks each have their own id sequence.
    modern: dict[tuple[int, str], dict[str, Any]] = {}
    for name, rec in recs.items():
        if rec["method"] == "transaction.search" and not rec["response"]["error_code"]:
            for item in rec["response"]["result"]["data"]:
                modern[(item["id"], item["objectPHID"])] = item
    # Seed state only: drop what the recorded edits wrote (T26's comment and later; the mention on T18).
    modern = {k: x for k, x in modern.items() if x["dateCreated"] < 1795318400}
    by_task_id = {k[0]: x for k, x in modern.items() if k[1].startswith("PHID-TASK-")}
    out = [_from_legacy(legacy[i], by_task_id.get(i)) for i in sorted(legacy)]
    # The rest (T12, T17, T18, T26, T27 and the project/column objects) only exist in modern form.
    subscribers: dict[str, list[str]] = {}
    for key in sorted(modern):
        if key[0] in legacy and key[1].startswith("PHID-TASK-"):
            continue
        out.append(_from_modern(modern[key], subscribers, modern))
    # T17 was created with "parent" = T16, which wrote an "unblock" transaction on T16.
    t17 = next(x for x in out if x.object == tasks_phid(tasks, 17) and x.type == "parent")
    out.append(Xaction(208, "", tasks_phid(tasks, 16), "unblock", t17.author, t17.date, t17.group,
                       {"childPHID": None}, {"childPHID": tasks_phid(tasks, 16)}))
    return out


def tasks_phid(tasks: dict[str, dict[str, Any]], task_id: int) -> str:
    return next(phid for phid, t in tasks.items() if t["id"] == task_id)


def _from_legacy(item: dict[str, Any], modern: dict[str, Any] | None) -> Xaction:
    meta = {k: v for k, v in item["meta"].items() if k != "core.groupID"} or None
    old, new = item["oldValue"], item["newValue"]
    if item["transactionType"] == "priority":
        old, new = (None if old is None else int(old)), int(new)
    comment = None
    if item["comments"] is not None:
        if modern and modern["comments"]:
            c = modern["comments"][0]
            comment = Comment(c["id"], c["phid"], c["content"]["raw"])
        else:
            comment = Comment(900 + int(item["transactionID"]), f"PHID-XCMT-synth{int(item['transactionID']):015d}",
                              item["comments"])
    task_phid = modern["objectPHID"] if modern else None
    return Xaction(int(item["transactionID"]), item["transactionPHID"], task_phid or _LEGACY_TASKS[item["taskID"]],
                   item["transactionType"], item["authorPHID"], int(item["dateCreated"]), item["meta"]["core.groupID"],
                   old, new, meta, comment)


_LEGACY_TASKS = {"4": "PHID-TASK-7fkq3iwtsts43qopruks", "6": "PHID-TASK-d3hmkmgzi4iely6lxj6o",
                 "15": "PHID-TASK-yz5rj3w4botss2c43sut"}


def _from_modern(item: dict[str, Any], subscribers: dict[str, list[str]],
                 modern: dict[tuple[int, str], dict[str, Any]]) -> Xaction:
    obj, kind, fields = item["objectPHID"], item["type"], item["fields"]
    create_groups = {x["groupID"] for x in modern.values() if x["type"] == "create" and x["objectPHID"] == obj}
    created = item["groupID"] in create_groups and obj.startswith("PHID-TASK-")
    meta: dict[str, Any] | None = {"core.create": True} if created else None
    old: Any = None
    new: Any = None
    comment = None
    if kind is None:
        internal = "parent" if obj.startswith("PHID-TASK-") else "opaque"
        if internal == "parent":
            new = "PHID-TASK-klkkljd2mh6iecrnmwdy"  # T17's parent, see the recording's note
    elif kind in ("subscribers", "projects"):
        internal = MODERN_TYPES[kind]
        added = [o["phid"] for o in fields["operations"] if o["operation"] == "add"]
        removed = [o["phid"] for o in fields["operations"] if o["operation"] == "remove"]
        if kind == "subscribers":
            before = subscribers.get(obj, [])
            after = [p for p in before if p not in removed] + [p for p in added if p not in before]
            subscribers[obj] = after
            old, new = before, after
        else:
            old, new = removed, added
            meta = {"edge:type": EDGE_PROJECT, **({"core.create": True} if created else {})}
    elif kind == "priority":
        internal, old, new = "priority", fields["old"]["value"], fields["new"]["value"]
    elif kind == "core:customfield":
        internal, new = kind, fields
    else:
        internal = MODERN_TYPES.get(kind, kind)
        old, new = fields.get("old"), fields.get("new")
    if item["comments"]:
        c = item["comments"][0]
        comment = Comment(c["id"], c["phid"], c["content"]["raw"])
    return Xaction(item["id"], item["phid"], obj, internal, item["authorPHID"], item["dateCreated"], item["groupID"],
                   old, new, meta, comment)


# -- synthesized histories ---------------------------------------------------------------

def _synthesized_xactions(tasks: list[dict[str, Any]], recorded: list[Xaction], columns: list[dict[str, Any]]
                          ) -> list[Xaction]:
    """A creation and (if the task changed later) an update for every task without a recorded history.

    Tasks are created in their boards' default columns and moved to their recorded column
    by the later edit, so "time in column" has something to measure. Ids are fitted into
    the gaps the real server left between the recorded transactions, in date order.
    """
    have = {x.object for x in recorded if x.type == "core:create"}
    default = {c["project"]: c["phid"] for c in columns if c["default"]}
    create = {"core.create": True}
    groups: list[tuple[int, int, int, str, str, str, list[tuple[str, Any, Any, Any, Comment | None]]]] = []

    # T27's creation was recorded only in part (projects, columns, subscribers: 307-309).
    t27 = next(t for t in tasks if t["id"] == 27)
    head = next(x for x in recorded if x.object == t27["phid"])
    out = [Xaction(xid, "", t27["phid"], kind, head.author, head.date, head.group, old, new, create)
           for xid, (kind, old, new) in zip((304, 305, 306), (("core:create", None, None), ("title", "", t27["title"]),
                                                               ("description", "", t27["description"])))]

    touched = {x.object: x.date for x in recorded}  # e.g. T16's "unblock" explains its dateModified
    for t in tasks:
        if t["phid"] in have or t["id"] == 27:
            continue
        created, author = t["dateCreated"], t["author"]
        closed = t["status"] not in ("open", "stalled")
        claimed_on_close = closed and t["closer"] == t["owner"] and t["status"] in ("resolved", "declined")
        later = t["dateClosed"] or (t["dateModified"] if t["dateModified"] > created + 1 else None)
        if later is not None and abs(touched.get(t["phid"], 0) - later) <= 1:
            later = None
        first = {b: (default[b] if later else c) for b, c in t["columns"].items() if b in default}
        items: list[tuple[str, Any, Any, Any, Comment | None]] = [
            ("core:create", None, None, create, None), ("title", "", t["title"], create, None)]
        if t["description"]:
            items.append(("description", "", t["description"], create, None))
        if t["priority"] != 90:
            items.append(("priority", 90, t["priority"], create, None))
        items.append(("core:edge", [], list(t["projects"]), {"edge:type": EDGE_PROJECT, "core.create": True}, None))
        if first:
            items.append(("core:columns", None, [{"columnPHID": c, "beforePHIDs": [], "afterPHIDs": [],
                                                  "boardPHID": b, "fromColumnPHIDs": []} for b, c in first.items()],
                          create, None))
        if t["owner"] and not claimed_on_close:
            items.append(("reassign", None, t["owner"], create, None))
        if t["points"] is not None:
            p = t["points"]
            items.append(("points", None, int(p) if float(p).is_integer() else p, create, None))
        items.append(("core:subscribers", [], list(t["subscribers"]), create, None))
        groups.append((created, t["id"], 0, t["phid"], author, f"seed{t['id']:02d}created".ljust(32, "x"), items))

        if later is None:
            continue
        moves = [{"columnPHID": c, "beforePHIDs": [], "afterPHIDs": [], "boardPHID": b,
                  "fromColumnPHIDs": {first[b]: first[b]}} for b, c in t["columns"].items() if first.get(b) != c]
        items = []
        if t["status"] != "open":
            items.append(("status", "open", t["status"], None, None))
            if claimed_on_close:
                items.append(("reassign", None, t["owner"], None, None))
        if moves:
            items.append(("core:columns", None, moves, None, None))
        if not items:
            text = "Update: still on it." if t["owner"] else "Any news on this?"
            items.append(("core:comment", None, None, None,
                          Comment(700 + t["id"], f"PHID-XCMT-seedcomment{t['id']:09d}", text)))
        groups.append((later, t["id"], 1, t["phid"], t["closer"] or t["owner"] or author,
                       f"seed{t['id']:02d}updated".ljust(32, "x"), items))

    taken = {x.id for x in recorded if x.object.startswith("PHID-TASK-")} | {304, 305, 306}
    dated = sorted((x.date, x.id) for x in recorded if x.object.startswith("PHID-TASK-"))
    overflow = 1000
    fell_back: set[int] = set()
    for date, task_id, _, phid, actor, group, items in sorted(groups, key=lambda g: g[:3]):
        # Like the server's auto-increment: after everything older, before everything newer.
        lo = max((i for d, i in dated if d < date), default=0)
        hi = min((i for d, i in dated if d > date), default=10**9)
        free = [c for c in range(lo + 1, hi) if c not in taken][:len(items)]
        if len(free) < len(items) or task_id in fell_back:
            fell_back.add(task_id)  # keep this task's later edits after its earlier ones
            free = list(range(overflow, overflow + len(items)))
            overflow += len(items)
        else:
            dated = sorted(dated + [(date, xid) for xid in free])
        for xid, (kind, old, new, meta, comment) in zip(free, items):
            taken.add(xid)
            out.append(Xaction(xid, "", phid, kind, actor, date, group, old, new, meta, comment))
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m clinicbot.sandbox.recorded RECORDINGS_DIR OUT.yaml", file=sys.stderr)
        return 2
    build_recorded_scenario(argv[0]).save(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
