"""A deterministic, realistic team for the sandbox: ``generate_scenario(now, size, seed)``.

The Core Platform Team (8 engineers, a manager, a product manager), the boards of the
recordings (Core Platform Team, Clinic Duty Team, CPT External Code Reviews,
Infrastructure Releases with two milestones, a Security tag), outside authors, two bots,
one engineer away, one disabled account, and ``size`` tasks created over the ~4 months
before ``now``. Every task history is produced by replaying edits through the same engine
as ``maniphest.edit`` in global time order, so ids grow with time and every transaction
looks exactly like one the server would have written.

A fixed set of hand-made tasks (``Scenario.facts`` names them) guarantees the situations
clinicbot's checks and reports must find; the rest are random but seeded. Same
``(now, size, seed)`` -> byte-identical scenario file.
"""

from __future__ import annotations

import gc
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from clinicbot.sandbox import texts
from clinicbot.sandbox.engine import apply_edit
from clinicbot.sandbox.scenario import Scenario, to_epoch
from clinicbot.sandbox.store import Column, Project, Store, Xaction

MIN = 60
HOUR = 3600
DAY = 86400
SPAN_DAYS = 120
# Above this size histories are kept to a creation and (for closed tasks) a closing edit.
COMPACT_ABOVE = 3000

ENGINEERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
OUTSIDERS = ["oscar", "quinn", "rita"]
USERS: list[tuple[str, str, dict[str, Any]]] = [
    ("admin", "Ada Admin", {"admin": True}),
    ("alice", "Alice Anderson", {}), ("bob", "Bob Brown", {}), ("carol", "Carol Chen", {}),
    ("dave", "Dave Davis", {}), ("erin", "Erin Evans", {}), ("frank", "Frank Fischer", {}),
    ("grace", "Grace Garcia", {}), ("heidi", "Heidi Hughes", {}),
    ("mona", "Mona Martinez", {}),  # engineering manager
    ("pete", "Pete Patel", {}),  # product manager
    ("oscar", "Oscar Olsen", {}),  # Payments team
    ("quinn", "Quinn Quinlan", {}),  # Search team
    ("rita", "Rita Romero", {}),  # Mobile team
    ("victor", "Victor Vance", {"disabled": True}),  # left the company; still owns a task
    ("clinicbot", "Clinic Bot", {"bot": True}),
    ("phab-automation", "Phabricator Automation", {"bot": True}),
]

# short name -> name, slug, aliases, icon, color, description, members, watchers
PROJECTS: list[tuple[str, str, str, list[str], str, str, str, list[str], list[str]]] = [
    ("cpt", "Core Platform Team", "core_platform_team", ["cpt"], "group", "blue",
     "Core Platform Team: owns the shared platform services, deploy tooling and the API gateway.",
     ENGINEERS + ["mona"], ["alice", "carol"]),
    ("clinic", "Clinic Duty Team", "clinic_duty_team", [], "group", "green",
     "Rotating clinic duty: small fixes, triage of incoming bugs, and user support escalations.",
     ["carol", "erin", "frank", "grace"], ["erin"]),
    ("ext", "CPT External Code Reviews", "cpt_external_code_reviews", [], "policy", "violet",
     "Code reviews requested from the Core Platform Team by other teams.", ["alice", "bob", "dave", "erin"],
     ["bob", "frank"]),
    ("rel", "Infrastructure Releases", "infrastructure_releases", [], "release", "orange",
     "Release train for infrastructure components (has milestones).", ["dave", "frank"], []),
    ("sec", "Security", "security", [], "tag", "red", "Security-related work (tag project, no workboard).",
     ["bob", "heidi"], []),
]
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "cpt": [("inbox", "Inbox"), ("tmi", "Triage Meeting Inbox"), ("ready", "Ready"), ("doing", "Doing"),
            ("blocked", "Blocked Externally"), ("review", "Waiting for Review"), ("deploy", "Waiting for Deployment"),
            ("done", "Done"), ("icebox", "Icebox (archived)")],
    "clinic": [("inbox", "Inbox"), ("ready", "Ready"), ("doing", "Doing"), ("review", "Waiting for Review"),
               ("done", "Done")],
    "ext": [("needed", "Review Needed"), ("progress", "In Progress"), ("completed", "Review Completed"),
            ("discussing", "Discussing")],
    "rel": [("backlog", "Backlog")],
}


@dataclass
class Plan:
    """One task's life: edits as (at, actor, fields) in time order."""

    key: str
    edits: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)

    def at(self, when: int | float, actor: str, **fields: Any) -> "Plan":
        self.edits.append((int(when), actor, fields))
        return self


class _World:
    def __init__(self, now: int, seed: int, size: int):
        self.now = now
        self.start = now - SPAN_DAYS * DAY
        self.rng = random.Random(f"clinicbot-sandbox:{seed}:{size}")
        self.store = Store(salt=f"clinicbot-sandbox:{seed}", now=now)
        self.proj: dict[str, str] = {}
        self.col: dict[str, str] = {}
        self.task_phid: dict[str, str] = {}

    def ago(self, days: float = 0, hours: float = 0, minutes: float = 0) -> int:
        return int(self.now - days * DAY - hours * HOUR - minutes * MIN)

    # -- the team ----------------------------------------------------------------------

    def build_team(self) -> None:
        store = self.store
        for i, (username, real, flags) in enumerate(USERS):
            store.add_user(username, real, date_created=self.start - (40 - i) * DAY, **flags)
        store.set_availability("heidi", "away", self.now + 5 * DAY)
        created = self.start - 20 * DAY
        phid = store.users_by_name["admin"].phid
        for short, name, slug, aliases, icon, color, description, members, watchers in PROJECTS:
            project = store.add_project(Project(
                id=store.take_id("project"), phid=store.new_phid("PROJ"), name=name, slug=slug, aliases=aliases,
                icon=icon, color=color, description=description, members=[store.user(m).phid for m in members],
                watchers=[store.user(w).phid for w in watchers], date_created=created, date_modified=created))
            self.proj[short] = project.phid
            self._object_history(project.phid, "PROJ", phid, created, 4)
            for seq, (key, label) in enumerate(COLUMNS.get(short, [])):
                column = store.add_column(Column(
                    id=store.take_id("column"), phid=store.new_phid("PCOL"), project=project.phid, name=label,
                    sequence=seq, hidden=(key == "icebox"), default=(seq == 0), date_created=created + 1 + seq,
                    date_modified=created + 1 + seq))
                self.col[f"{short}.{key}"] = column.phid
                self._object_history(column.phid, "PCOL", phid, created + 1 + seq, 1)
            created += 60
        # Two release milestones of Infrastructure Releases, named after the coming weeks.
        for n, offset in ((1, 0), (2, 7)):
            when = datetime.fromtimestamp(self.now, tz=timezone.utc) + timedelta(days=offset)
            year, week, _ = when.isocalendar()
            milestone = store.add_project(Project(
                id=store.take_id("project"), phid=store.new_phid("PROJ"), name=f"{year}.{week:02d} Release", slug=None,
                icon="milestone", color="orange", parent=self.proj["rel"], milestone=n,
                members=[store.user(m).phid for m in ("dave", "frank")], date_created=created, date_modified=created))
            self.proj[f"m{n}"] = milestone.phid
            column = store.add_column(Column(
                id=store.take_id("column"), phid=store.new_phid("PCOL"), project=self.proj["rel"],
                name=milestone.name, sequence=n, proxy=milestone.phid, date_created=created + 1,
                date_modified=created + 1))
            self.col[f"rel.m{n}"] = column.phid
            created += 60

    def _object_history(self, phid: str, kind: str, author: str, at: int, count: int) -> None:
        # Project and column transactions come back from transaction.search with type null
        # (except "create"); a few per object is enough to page through.
        group = self.store.new_group()
        for i in range(count):
            self.store.add_xaction(Xaction(self.store.take_id("xaction"), "", phid,
                                           "core:create" if (i == 0 and kind == "PROJ") else "opaque", author, at,
                                           group))

    # -- applying plans ------------------------------------------------------------------

    def txs(self, fields: dict[str, Any]) -> list[dict[str, Any]]:
        store = self.store
        out: list[dict[str, Any]] = []

        def put(kind: str, value: Any) -> None:
            out.append({"type": kind, "value": value})

        for key, value in fields.items():
            if key == "title":
                put("title", value)
            elif key == "desc":
                put("description", value)
            elif key == "prio":
                put("priority", value)
            elif key == "status":
                put("status", value)
            elif key == "tags":
                put("projects.add", [self.proj[p] for p in value])
            elif key == "untag":
                put("projects.remove", [self.proj[p] for p in value])
            elif key == "col":
                put("column", [self.col[c] for c in ([value] if isinstance(value, str) else value)])
            elif key == "owner":
                put("owner", store.user(value).phid if value else None)
            elif key == "points":
                put("points", value)
            elif key == "parent":
                put("parent", self.task_phid[value])
            elif key == "subs":
                put("subscribers.add", [store.user(u).phid for u in value])
            elif key == "comment":
                put("comment", value)
            else:
                raise KeyError(key)
        return out

    def run(self, plans: list[Plan]) -> dict[str, int]:
        events = []
        for order, plan in enumerate(plans):
            for step, (when, actor, fields) in enumerate(plan.edits):
                events.append((min(when, self.now - 30), order, step, plan, actor, fields))
        events.sort(key=lambda e: (e[0], e[1], e[2]))
        ids: dict[str, int] = {}
        users = self.store.users_by_name
        for when, _, step, plan, actor, fields in events:
            task = self.store.tasks[ids[plan.key]] if step else None
            task, _ = apply_edit(self.store, task, users[actor], self.txs(fields), when)
            if not step:
                ids[plan.key] = task.id
                self.task_phid[plan.key] = task.phid
        return ids

    def wiki(self) -> None:
        mona = self.store.users_by_name["mona"]
        self.store.phriction_create(mona, "/", "Engineering Wiki", "Welcome to the engineering wiki.\n\n"
                                    "* [[ core_platform_team/ | Core Platform Team ]]", "", self.start - 10 * DAY)
        self.store.phriction_create(mona, "core_platform_team/", "Core Platform Team",
                                    "= Core Platform Team =\n\nWorkboard: #core_platform_team\n\n"
                                    "Clinic duty rotates weekly; see the rotation in the team calendar.",
                                    "Initial team page", self.start - 9 * DAY)


def generate_scenario(now: datetime, size: int = 300, seed: int = 1) -> Scenario:
    """A deterministic scenario of ``size`` tasks ending at ``now`` (same arguments, same bytes)."""
    if size < 0:
        raise ValueError("size must be >= 0")
    # Millions of small immutable tuples: cyclic GC passes over them are pure overhead.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _generate(now, size, seed)
    finally:
        if was_enabled:
            gc.enable()


def _generate(now: datetime, size: int, seed: int) -> Scenario:
    now_epoch = to_epoch(now)
    world = _World(now_epoch, seed, size)
    world.build_team()
    world.wiki()
    specials, facts = special_plans(world)
    specials = specials[:size]
    plans = specials + [bulk_plan(world, i, compact=size > COMPACT_ABOVE) for i in range(size - len(specials))]
    ids = world.run(plans)
    task_facts: dict[str, Any] = {}
    for name, keys in facts.items():
        found = [ids[k] for k in keys if k in ids]
        if found:
            task_facts[name] = found if len(keys) > 1 else found[0]
    people = {"team": ENGINEERS, "manager": "mona", "product_manager": "pete", "outsiders": OUTSIDERS,
              "bot": "clinicbot", "other_bots": ["phab-automation"], "away_user": "heidi",
              "disabled_user": "victor", "overloaded_engineer": "bob", "admin": "admin"}
    when = datetime.fromtimestamp(now_epoch, tz=timezone.utc)
    return Scenario.from_store(world.store, when, facts={"tasks": task_facts, "people": people},
                               salt=f"clinicbot-sandbox:{seed}",
                               description=f"generated: size={size} seed={seed} now={when.isoformat()}")


# -- hand-made tasks -------------------------------------------------------------------------

def special_plans(w: _World) -> tuple[list[Plan], dict[str, list[str]]]:
    """The situations the checks must find, relative to ``now``. Returns (plans, fact -> keys)."""
    a = w.ago
    plans: list[Plan] = []
    facts: dict[str, list[str]] = {}

    def new(key: str, *fact_names: str) -> Plan:
        plan = Plan(key)
        plans.append(plan)
        for name in fact_names or (key,):
            facts.setdefault(name, []).append(key)
        return plan

    # Unbreak Now!: unanswered for > 1 day; answered but unowned; answered promptly; resolved.
    new("ubn_unanswered").at(a(2, 3), "oscar", title="Checkout fails for EU cards since the 3DS gateway update",
                             desc="Since this morning ~8% of EU card payments fail with `GATEWAY_TIMEOUT`.\n\n"
                                  "Impact: lost revenue, support queue growing.", prio="unbreak", tags=["cpt"]) \
        .at(a(1, 1), "oscar", comment="Any update? Still failing, support has 40 tickets now.")
    new("ubn_unowned").at(a(0, 9), "pete", title="Login loop on the mobile web app after the session cookie change",
                          desc="Users get redirected back to the login page after signing in.", prio="unbreak",
                          tags=["cpt"]) \
        .at(a(0, 8, 20), "bob", comment="Looking into it, this looks related to yesterday's cookie SameSite change.")
    new("ubn_answered").at(a(3), "rita", title="Push notification service returns 500 for all iOS devices",
                           desc="All iOS pushes fail since the certificate rotation.", prio="unbreak", tags=["cpt"]) \
        .at(a(2, 23, 45), "alice", comment="On it. The new APNs certificate was uploaded without the chain.",
            owner="alice", col="cpt.doing", points=3) \
        .at(a(1), "alice", comment="Fix deployed to canary, looks good so far.") \
        .at(a(0, 6), "alice", col="cpt.deploy")
    new("ubn_resolved").at(a(40), "quinn", title="Search API returns empty results for every query",
                           desc="Started after the index alias switch.", prio="unbreak", tags=["cpt"]) \
        .at(a(39, 23, 50), "dave", comment="Alias points at the empty index, switching back.", owner="dave",
            col="cpt.doing") \
        .at(a(38), "dave", comment="Fixed and a guard added to the alias switch script.", status="resolved",
            col="cpt.done")

    # Untriaged Inbox tasks (Needs Triage, no owner): several older than 2 days, two fresh.
    for key, days, author, title in (
            ("inbox_old_1", 3.1, "pete", "Nightly report e-mail arrives twice for some managers"),
            ("inbox_old_2", 5, "quinn", "Search indexer drops documents with emoji in the title"),
            ("inbox_old_3", 9, "rita", "Mobile API returns 404 for avatars of renamed users"),
            ("inbox_old_4", 16, "oscar", "Payment webhooks are retried without backoff after 5xx")):
        plan = new(key, "untriaged_old").at(a(days), author, title=title, desc=texts.description(w.rng),
                                            tags=["cpt"])
        if key == "inbox_old_3":
            plan.at(a(4), author, comment="Still happening, any chance someone can look at this?")
    for key, hours, author, title in (("inbox_fresh_1", 4, "alice", "Deploy tool prints the wrong target region"),
                                      ("inbox_fresh_2", 20, "oscar", "Refund job logs full card numbers at DEBUG")):
        new(key, "untriaged_fresh").at(a(0, hours), author, title=title, desc=texts.description(w.rng), tags=["cpt"])
    new("escaping_title").at(a(1, 2), "quinn", title="@alice {F1} <script>alert(1)</script> <!channel> **bold**",
                             desc="Title and text full of markup: `{F1}`, <b>html</b>, [[ wiki ]], @here.",
                             tags=["cpt"])

    # External review requests: two waiting > 7 days without a team response, one fresh, others.
    new("review_stale_1", "review_stale").at(a(12), "oscar", title="Review: Payments ledger reconciliation job (v2)",
                                             desc="Payments asks CPT to review the reconciliation job before launch.",
                                             tags=["ext"]) \
        .at(a(5), "oscar", comment="Friendly ping: we would like to ship this next week.")
    new("review_stale_2", "review_stale").at(a(9), "quinn", title="Review: Search indexer backpressure patch",
                                             desc="Adds a bounded queue between crawler and indexer.", tags=["ext"])
    new("review_fresh").at(a(1), "rita", title="Review: Mobile API client pagination change",
                           desc="Cursor-based pagination for the mobile client.", tags=["ext"])
    new("review_in_progress").at(a(6), "oscar", title="Review: Payments webhook signature verification",
                                 desc="Please review the HMAC verification change.", tags=["ext"]) \
        .at(a(5), "erin", owner="erin", col="ext.progress", comment="Taking this one.") \
        .at(a(2), "erin", comment="First pass done, two questions inline.")
    new("review_completed").at(a(20), "quinn", title="Review: Search query logging sampler",
                               desc="Sampling for query logs.", tags=["ext"]) \
        .at(a(18), "bob", owner="bob", col="ext.progress") \
        .at(a(15), "bob", col="ext.completed", status="resolved", comment="Looks good, approved.")
    # Discussing: the team has given its input (the process takes it off the board; the digest lists it).
    new("discussing_answered").at(a(8), "rita", title="Review: Mobile API rate limit headers",
                                  desc="Should the mobile client honour Retry-After?", tags=["ext"]) \
        .at(a(7), "rita", col="ext.discussing", comment="We need CPT's advice on the header semantics first.") \
        .at(a(3), "alice", comment="Our advice: honour Retry-After and cap it at 60 seconds.")

    # Waiting for Review for more than 7 days (and one recent).
    new("wfr_stale_1", "waiting_for_review_stale").at(a(25), "dave", title="Add canary stage to the deploy pipeline",
                                                      desc=texts.description(w.rng), tags=["cpt"], prio="high") \
        .at(a(20), "dave", owner="dave", col="cpt.doing", points=5) \
        .at(a(9), "dave", col="cpt.review", comment="Patch is up for review: D1234.")
    new("wfr_stale_2", "waiting_for_review_stale").at(a(30), "grace", title="Rotate TLS certificates for the mesh",
                                                      desc=texts.description(w.rng), tags=["cpt", "sec"]) \
        .at(a(29), "grace", owner="grace", col="cpt.doing", prio="high", points=3) \
        .at(a(15), "grace", col="cpt.review")
    new("wfr_recent").at(a(8), "carol", title="Make the job runner pool size configurable", tags=["cpt"],
                         desc=texts.description(w.rng)) \
        .at(a(6), "carol", owner="carol", col="cpt.doing", prio="normal", points=2) \
        .at(a(2), "carol", col="cpt.review")

    # Triage Meeting Inbox: two moved there more than a week ago, one recently.
    new("tmi_old_1", "triage_meeting_old").at(a(14), "pete", title="Decide on the log retention period for GDPR",
                                              desc=texts.description(w.rng), tags=["cpt"]) \
        .at(a(10), "mona", col="cpt.tmi", comment="Let's discuss this in the triage meeting.")
    new("tmi_old_2", "triage_meeting_old").at(a(11), "quinn", title="Shared Redis cluster is running out of memory",
                                              desc=texts.description(w.rng), tags=["cpt"]) \
        .at(a(8), "alice", col="cpt.tmi")
    new("tmi_recent").at(a(3), "rita", title="Rate limits for internal clients", desc=texts.description(w.rng),
                         tags=["cpt", "sec"]) \
        .at(a(2), "erin", col="cpt.tmi")

    # bob holds more than five open tasks; one claimed 20 days ago and untouched since.
    new("bob_untouched", "claimed_untouched", "bob_open").at(a(22), "pete", title="Upgrade the API gateway to 3.x",
                                                              desc=texts.description(w.rng), tags=["cpt"]) \
        .at(a(20), "bob", owner="bob", col="cpt.ready", prio="normal", points=5)
    for i, (days, col, title) in enumerate((
            (12, "cpt.doing", "Migrate session store from memcached to Redis"),
            (9, "cpt.ready", "Remove the legacy XML export endpoint"),
            (7, "cpt.doing", "Add request tracing to the auth service"),
            (6, "cpt.ready", "Split the monolith's cron jobs into systemd timers"),
            (4, "cpt.blocked", "Vendor SDK upgrade for the SMS provider"),
            (3, "cpt.ready", "Alert on certificate expiry 30 days ahead"))):
        new(f"bob_{i}", "bob_open").at(a(days), "mona", title=title, desc=texts.description(w.rng), tags=["cpt"]) \
            .at(a(days - 0.5), "bob", owner="bob", col=col, prio="high" if i % 2 else "normal", points=i % 3 + 1) \
            .at(a(days / 3), "bob", comment=texts.comment(w.rng))

    # In Doing / Blocked with no human activity for > 14 days, but a recent bot comment.
    new("doing_stale_bot", "stale_with_bot_activity").at(a(30), "frank", title="Move backups to the new object store",
                                                         desc=texts.description(w.rng), tags=["cpt"]) \
        .at(a(18), "frank", owner="frank", col="cpt.doing", prio="normal", points=3,
            comment="Starting on this now.") \
        .at(a(2), "clinicbot", comment="This task has been in Doing for 16 days without activity.")
    new("blocked_stale_bot", "stale_with_bot_activity").at(a(40), "carol", title="Upgrade PHP runtime to 8.3",
                                                           desc=texts.description(w.rng), tags=["cpt"]) \
        .at(a(25), "carol", owner="carol", col="cpt.blocked", status="stalled", prio="normal", points=5,
            comment="Blocked: the 8.3 packages are not in our mirror yet.") \
        .at(a(1), "phab-automation", comment="Upstream ticket MIRROR-4411 is still open.")
    new("doing_stale_away", "stale_owner_away").at(a(26), "heidi", title="Harden the secrets vault audit log",
                                                   desc=texts.description(w.rng), tags=["cpt", "sec"]) \
        .at(a(16), "heidi", owner="heidi", col="cpt.doing", prio="high", points=3)

    # Needs Triage older than 7 days on the clinic board.
    new("clinic_triage_old_1", "needs_triage_old").at(a(10), "pete", title="Typo in the password reset e-mail",
                                                      desc="'recieve' instead of 'receive'.", tags=["clinic"])
    new("clinic_triage_old_2", "needs_triage_old").at(a(20), "rita", title="Help center search ignores accents",
                                                      desc=texts.description(w.rng), tags=["clinic"])

    # On two boards at once; milestones only; parent and subtask; disabled owner; hidden column.
    new("cross_board").at(a(15), "frank", title="Avatar upload fails for files larger than 1MB",
                          desc="nginx client_max_body_size is 1m.", tags=["clinic", "cpt"]) \
        .at(a(12), "carol", owner="carol", col=["cpt.doing", "clinic.review"], prio="high", points=2)
    new("milestone_1", "milestone_only").at(a(18), "dave", title="Release: roll out the Redis session store",
                                            desc="Release checklist.", tags=["m1"], owner="dave")
    new("milestone_2", "milestone_only").at(a(17), "frank", title="Release: PHP 8.3 rollout", desc="Release checklist.",
                                            tags=["m2"], owner="frank", prio="low")
    new("parent_task").at(a(21), "grace", title="Structured logging for the job runner", tags=["cpt"],
                          desc=texts.description(w.rng), owner="grace", prio="normal", col="cpt.ready")
    new("subtask").at(a(20), "grace", title="Job runner: emit JSON logs for retries", tags=["cpt"],
                      desc="Subtask: the retry path still uses legacy logging.", parent="parent_task", prio="normal",
                      col="cpt.ready", points=1)
    new("disabled_owner").at(a(70), "victor", title="Clean up unused IAM roles", desc=texts.description(w.rng),
                             tags=["cpt"], owner="victor", col="cpt.ready", prio="low")
    new("icebox").at(a(80), "pete", title="Evaluate a service mesh dashboard", desc=texts.description(w.rng),
                     tags=["cpt"]) \
        .at(a(50), "mona", col="cpt.icebox", prio="wish", comment="Parking this for now.")
    # Discussing, unanswered: an outsider asked for the team's advice 10 days ago and nobody on the team
    # has answered since (last, so the tasks before it keep their ids).
    new("discussing_unanswered").at(a(12), "quinn", title="Review: Webhook retry backoff for partner APIs",
                                    desc="Which backoff schedule does CPT recommend for partner webhooks?",
                                    tags=["ext"]) \
        .at(a(10), "quinn", col="ext.discussing", comment="Moving this to Discussing: we need CPT's advice.")
    return plans, facts


# -- random tasks ----------------------------------------------------------------------------

BOARDS = [("cpt", 55), ("clinic", 20), ("ext", 12), ("cpt+clinic", 5), ("cpt+sec", 8)]
PRIORITY_WEIGHTS = [("high", 20), ("normal", 45), ("low", 22), ("wish", 5), ("unbreak", 2), ("triage", 6)]
CLOSE_STATUSES = [("resolved", 80), ("declined", 8), ("invalid", 6), ("duplicate", 6)]


def _pick(rng: random.Random, weighted: list[tuple[Any, int]]) -> Any:
    return rng.choices([w[0] for w in weighted], weights=[w[1] for w in weighted])[0]


def bulk_plan(w: _World, index: int, compact: bool) -> Plan:
    rng = w.rng
    plan = Plan(f"bulk_{index}")
    created = w.now - int(rng.uniform(2 * HOUR, SPAN_DAYS * DAY))
    board = _pick(rng, BOARDS)
    tags = board.split("+")
    author = rng.choice(OUTSIDERS + ["pete"] if rng.random() < 0.45 else ENGINEERS + ["mona"])
    home = "ext" if board == "ext" else tags[0]
    title = texts.title(rng, home)
    age = w.now - created
    closed = rng.random() < (0.8 if age > 21 * DAY else 0.5 if age > 5 * DAY else 0.15)
    owner = rng.choice(ENGINEERS[:7])  # heidi is away; she gets no new random work
    prio = _pick(rng, PRIORITY_WEIGHTS)
    points = rng.choice([None, 1, 2, 3, 5, 8, 0.5])
    first = {"title": title, "desc": texts.description(rng), "tags": tags}
    cols = {"cpt": ("cpt.ready", "cpt.doing", "cpt.review", "cpt.done"),
            "clinic": ("clinic.ready", "clinic.doing", "clinic.review", "clinic.done"),
            "ext": ("ext.progress", "ext.progress", "ext.discussing", "ext.completed")}[home]

    if compact:
        # Big scenarios: the task is created already triaged; closed ones get one more edit.
        first.pop("desc")
        if rng.random() < 0.8:
            first.update(prio=prio, owner=owner, col=cols[1])
            if points is not None and rng.random() < 0.4:
                first["points"] = points
        plan.at(created, author, **first)
        if closed:
            plan.at(created + rng.uniform(HOUR, min(age - MIN, 20 * DAY)), owner,
                    status=_pick(rng, CLOSE_STATUSES), col=cols[3])
        return plan

    plan.at(created, author, **first)
    t = created + rng.expovariate(1 / (1.5 * DAY))
    end = w.now - 10 * MIN
    if t > end:
        return plan
    triager = rng.choice(ENGINEERS[:7] + ["mona"])
    step: dict[str, Any] = {"prio": prio, "col": cols[0]}
    if rng.random() < 0.3:
        step["comment"] = texts.comment(rng)
    plan.at(t, triager, **step)
    t += rng.expovariate(1 / (3 * DAY))
    if t > end or (not closed and rng.random() < 0.25):
        return plan
    step = {"owner": owner, "col": cols[1]}
    if points is not None:
        step["points"] = points
    plan.at(t, owner, **step)
    if home == "cpt" and rng.random() < 0.12:
        # Stalled on someone else for a while (stalled counts as open).
        t += rng.expovariate(1 / (2 * DAY))
        if t > end:
            return plan
        plan.at(t, owner, status="stalled", col="cpt.blocked", comment=texts.blocked_comment(rng))
        t += rng.expovariate(1 / (6 * DAY))
        if t > end or not closed:
            return plan
        plan.at(t, owner, status="open", col=cols[1], comment="Unblocked, picking this up again.")
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
        t += rng.expovariate(1 / (2 * DAY))
        if t > end:
            return plan
        who = rng.choice([owner, owner, author, rng.choice(ENGINEERS[:7])])
        plan.at(t, who, comment=texts.comment(rng))
    t += rng.expovariate(1 / (3 * DAY))
    if t > end:
        return plan
    if rng.random() < 0.5:
        plan.at(t, owner, col=cols[2])
        t += rng.expovariate(1 / (2 * DAY))
        if t > end:
            return plan
    if closed:
        status = _pick(rng, CLOSE_STATUSES)
        step = {"status": status}
        if status == "resolved":
            step["col"] = cols[3]
        if rng.random() < 0.4:
            step["comment"] = texts.closing_comment(rng, status)
        plan.at(t, owner, **step)
    elif rng.random() < 0.1:
        plan.at(t, "clinicbot", comment=texts.bot_comment(rng))
    return plan
