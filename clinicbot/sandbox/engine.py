"""maniphest.edit: turn a list of ``{type, value}`` edits into stored transactions.

This is the one place that changes tasks, used by the Conduit method, by the scenario
generator (so generated histories are exactly what the server would have recorded) and by
tests. The rules follow the recordings in ``../shared/conduit/``:

* one edit = one ``groupID``, one author, one date; comments go last;
* no-op edits (same value, empty comment, column on an untagged board) produce nothing;
* the actor is implicitly subscribed when commenting unless already subscribed, the task's
  owner or a bot (that subscription comes first in the group); ``@user`` in a comment or a
  new description subscribes that user (not bots, not the owner);
* task references in a comment or a new description (``T123``, ``{T123}``, a bare link to
  ``http://<this host>/T123``; not in monospace, literal or code blocks, ``[[ … ]]`` links:
  see ``mentions.py``) add a "mention" edge on the task and a "mentioned-in" edge on the
  target, whose ``dateModified`` moves to the edit's time; never to the task itself;
* on creation: ``create``, ``title``, ``description`` first, then the rest in order, the
  board placement as one ``core:columns`` right after ``projects``, subscribers last;
* later project tags place the task in the board's default column silently (no xaction);
* ``column`` must be a list of column PHIDs; closing an unowned task as resolved/declined
  makes the closer its owner; statuses are not validated (``wontfix`` is accepted).
"""

from __future__ import annotations

from typing import Any

from clinicbot.sandbox.mentions import Mentions, find_mentions
from clinicbot.sandbox.store import (
    CLAIMING_STATUSES,
    EDGE_DEPENDED_ON_BY,
    EDGE_DEPENDS_ON,
    EDGE_MENTIONED_IN,
    EDGE_MENTIONS,
    EDGE_PROJECT,
    PRIORITY_BY_KEYWORD,
    ConduitFault,
    Comment,
    Store,
    Task,
    User,
    Xaction,
    is_open,
    validation_error,
)

VALID_TYPES = [
    "parent", "column", "space", "title", "owner", "status", "priority", "points", "description",
    "parents.add", "parents.remove", "parents.set", "subtasks.add", "subtasks.remove", "subtasks.set",
    "commits.add", "commits.remove", "commits.set", "view", "edit", "projects.add", "projects.remove",
    "projects.set", "subscribers.add", "subscribers.remove", "subscribers.set", "subtype", "comment", "mfa",
]
# Accepted but without effect in the sandbox (policies, spaces, commits, MFA).
IGNORED_TYPES = {"space", "commits.add", "commits.remove", "commits.set", "view", "edit", "subtype", "mfa"}
LIST_TYPES = {t for t in VALID_TYPES if t.endswith((".add", ".remove", ".set"))} | {"column"}
STRING_TYPES = {"title", "description", "status", "comment", "priority", "parent"}

PRIORITY_KEYWORDS = "unbreak, triage, high, normal, low, wish"

_CREATE = {"core.create": True}
_EDGE_META = {(t, c): ({"edge:type": t, "core.create": True} if c else {"edge:type": t})
              for t in (EDGE_DEPENDS_ON, EDGE_DEPENDED_ON_BY, EDGE_PROJECT, EDGE_MENTIONED_IN, EDGE_MENTIONS)
              for c in (False, True)}


def _type_error(tx_type: str, where: str, what: str) -> ConduitFault:
    return ConduitFault("ERR-CONDUIT-CORE", f'Exception when processing transaction of type "{tx_type}": '
                                            f'Error while reading "{where}": {what}')


def _check_value(tx_type: str, value: Any) -> Any:
    """Conduit's parameter types for each edit type (the errors are the recorded ones)."""
    if tx_type in LIST_TYPES:
        if not isinstance(value, list):
            raise _type_error(tx_type, "value", "Expected a list, but value is not a list.")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise _type_error(tx_type, f"value[{i}]", "Expected string, got something else.")
    elif tx_type in STRING_TYPES:
        if not isinstance(value, str):
            raise _type_error(tx_type, "value", "Expected string, got something else.")
    elif tx_type == "owner":
        if value is not None and not isinstance(value, str):
            raise _type_error(tx_type, "value", "Expected PHID or null, got something else.")
    elif tx_type == "points":
        if isinstance(value, bool) or not (value is None or isinstance(value, (int, float, str))):
            raise _type_error(tx_type, "value", "Expected a number or null, got something else.")
    return value


def _points_value(value: float | None) -> int | float | None:
    """Points as transaction values: numbers, ints when whole (``{"old": 3, "new": 5}``)."""
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


class _Plan:
    """The transactions an edit will write, in order, plus the edits' effects on the task."""

    def __init__(self, store: Store, task: Task | None, actor: User, at: int):
        self.store = store
        self.task = task
        self.actor = actor
        self.at = at
        self.creating = task is None
        self.items: list[list[Any]] = []  # [type, old, new, meta] ; ["@columns", [col phids]] placeholders
        self.comments: list[str] = []
        self.errors: list[str] = []
        self.others: list[tuple[Task, str, Any, Any, dict[str, Any]]] = []  # xactions on other tasks
        src = task
        self.title = src.title if src else ""
        self.description = src.description if src else ""
        self.owner = src.owner if src else None
        self.status = src.status if src else "open"
        self.priority = src.priority if src else 90
        self.points = src.points if src else None
        self.projects = list(src.projects) if src else []
        self.columns = dict(src.columns) if src else {}
        self.subscribers = list(src.subscribers) if src else []
        self.parents = list(src.parents) if src else []
        self.subtasks = list(src.subtasks) if src else []
        self.explicit_owner = False
        self.unsubscribed: set[str] = set()

    def meta(self, edge: int | None = None) -> dict[str, Any] | None:
        if edge is not None:
            return _EDGE_META[(edge, self.creating)]
        return _CREATE if self.creating else None

    def add(self, xtype: str, old: Any, new: Any, edge: int | None = None) -> None:
        self.items.append([xtype, old, new, self.meta(edge)])

    # -- individual edit types -------------------------------------------------------

    def apply(self, tx_type: str, value: Any) -> None:
        getattr(self, "_" + tx_type.replace(".", "_"))(value)

    def _title(self, value: str) -> None:
        if not value.strip():
            self.errors.append("Tasks must have a title.")
        elif value != self.title:
            self.add("title", self.title, value)
            self.title = value

    def _description(self, value: str) -> None:
        if value != self.description:
            self.add("description", self.description, value)
            self.description = value

    def _owner(self, value: str | None) -> None:
        value = value or None
        self.explicit_owner = True
        if value is not None and value not in self.store.users:
            self.errors.append(f'User "{value}" is not a valid user.')
        elif value != self.owner:
            self.add("reassign", self.owner, value)
            self.owner = value

    def _status(self, value: str) -> None:
        if value == self.status:
            return
        old = self.status
        self.add("status", old, value)
        self.status = value
        if is_open(old) and not is_open(value) and self.owner is None and value in CLAIMING_STATUSES \
                and not self.explicit_owner:
            self.add("reassign", None, self.actor.phid)
            self.owner = self.actor.phid

    def _priority(self, value: str) -> None:
        number = PRIORITY_BY_KEYWORD.get(value.strip().lower())
        if number is None:
            self.errors.append(f'Task priority "{value}" is not a valid task priority. Use a priority keyword '
                               f"to choose a task priority: {PRIORITY_KEYWORDS}.")
        elif number != self.priority:
            self.add("priority", self.priority, number)
            self.priority = number

    def _points(self, value: Any) -> None:
        if value is None or (isinstance(value, str) and not value.strip()):
            number = None
        else:
            try:
                number = float(value)
            except ValueError:
                self.errors.append("Points value must be numeric or empty.")
                return
            if number < 0:
                self.errors.append("Points value must be nonnegative.")
                return
        if number != self.points:
            self.add("points", _points_value(self.points), _points_value(number))
            self.points = number

    def _comment(self, value: str) -> None:
        if value.strip():  # an empty comment is silently dropped
            self.comments.append(value)

    def _column(self, value: list[str]) -> None:
        for phid in value:
            if phid not in self.store.columns:
                self.errors.append(f'Column move transaction specifies column PHID "{phid}", but there is no '
                                   f"corresponding column with this PHID.")
        # Resolved once all project changes of this edit are known.
        self.items.append(["@columns", value])

    def _edge_phids(self, value: list[str], kind: str) -> list[str]:
        table = {"project": self.store.projects, "task": self.store.tasks_by_phid}[kind]
        bad = [p for p in value if p not in table]
        for p in bad:
            self.errors.append(f'Invalid {kind} PHID "{p}".')
        return [p for p in value if p in table]

    def _projects(self, add: list[str], remove: list[str]) -> None:
        before = list(self.projects)
        for phid in add:
            project = self.store.projects[phid]
            if project.milestone is not None and project.parent:
                # Tagging a milestone replaces the parent (and sibling milestones).
                siblings = {p.phid for p in self.store.projects.values() if p.parent == project.parent}
                remove = remove + [p for p in self.projects if p == project.parent or p in siblings]
            else:
                remove = remove + [p for p in self.projects if self.store.projects[p].parent == phid]
        result = [p for p in self.projects if p not in remove or p in add]
        result += [p for p in dict.fromkeys(add) if p not in result]
        added = [p for p in result if p not in before]
        removed = [p for p in before if p not in result]
        if added or removed:
            self.add("core:edge", removed, added, EDGE_PROJECT)
            self.projects = result

    def _projects_add(self, value: list[str]) -> None:
        self._projects(self._edge_phids(value, "project"), [])

    def _projects_remove(self, value: list[str]) -> None:
        self._projects([], self._edge_phids(value, "project"))

    def _projects_set(self, value: list[str]) -> None:
        wanted = self._edge_phids(value, "project")
        self._projects(wanted, [p for p in self.projects if p not in wanted])

    def _subscriber_phids(self, value: list[str]) -> list[str]:
        bad = [p for p in value if p not in self.store.users and p not in self.store.projects]
        for p in bad:
            self.errors.append(f'Subscriber "{p}" is not a valid user or project.')
        return [p for p in value if p not in bad]

    def _subscribers(self, new: list[str]) -> None:
        new = list(dict.fromkeys(new))
        if new != self.subscribers and set(new) != set(self.subscribers):
            self.unsubscribed |= set(self.subscribers) - set(new)
            if not self.creating:  # on creation all subscriptions become one transaction at the end
                self.add("core:subscribers", list(self.subscribers), new)
            self.subscribers = new

    def _subscribers_add(self, value: list[str]) -> None:
        phids = self._subscriber_phids(value)
        self._subscribers(self.subscribers + [p for p in phids if p not in self.subscribers])

    def _subscribers_remove(self, value: list[str]) -> None:
        phids = set(self._subscriber_phids(value))
        self._subscribers([p for p in self.subscribers if p not in phids])

    def _subscribers_set(self, value: list[str]) -> None:
        self._subscribers(self._subscriber_phids(value))

    def _relatives(self, mine: list[str], add: list[str], remove: list[str], edge: int, reverse: int) -> list[str]:
        me = self.task.phid if self.task else None
        result = [p for p in mine if p not in remove] + [p for p in dict.fromkeys(add) if p not in mine and p != me]
        added = [p for p in result if p not in mine]
        removed = [p for p in mine if p not in result]
        if added or removed:
            self.add("core:edge", removed, added, edge)
            for p in added:
                self.others.append((self.store.tasks_by_phid[p], "core:edge", [], ["@self"], {"edge:type": reverse}))
            for p in removed:
                self.others.append((self.store.tasks_by_phid[p], "core:edge", ["@self"], [], {"edge:type": reverse}))
        return result

    def _parent(self, value: str) -> None:
        if value not in self.store.tasks_by_phid:
            self.errors.append(f'Invalid task PHID "{value}".')
        elif value not in self.parents:
            # Reported with type null on the child; the parent gets an "unblock" transaction.
            self.add("parent", None, value)
            self.parents.append(value)
            self.others.append((self.store.tasks_by_phid[value], "unblock", None, "@self", {}))

    def _parents_add(self, value: list[str]) -> None:
        self.parents = self._relatives(self.parents, self._edge_phids(value, "task"), [], EDGE_DEPENDED_ON_BY,
                                       EDGE_DEPENDS_ON)

    def _parents_remove(self, value: list[str]) -> None:
        self.parents = self._relatives(self.parents, [], value, EDGE_DEPENDED_ON_BY, EDGE_DEPENDS_ON)

    def _parents_set(self, value: list[str]) -> None:
        wanted = self._edge_phids(value, "task")
        self.parents = self._relatives(self.parents, wanted, [p for p in self.parents if p not in wanted],
                                       EDGE_DEPENDED_ON_BY, EDGE_DEPENDS_ON)

    def _subtasks_add(self, value: list[str]) -> None:
        self.subtasks = self._relatives(self.subtasks, self._edge_phids(value, "task"), [], EDGE_DEPENDS_ON,
                                        EDGE_DEPENDED_ON_BY)

    def _subtasks_remove(self, value: list[str]) -> None:
        self.subtasks = self._relatives(self.subtasks, [], value, EDGE_DEPENDS_ON, EDGE_DEPENDED_ON_BY)

    def _subtasks_set(self, value: list[str]) -> None:
        wanted = self._edge_phids(value, "task")
        self.subtasks = self._relatives(self.subtasks, wanted, [p for p in self.subtasks if p not in wanted],
                                        EDGE_DEPENDS_ON, EDGE_DEPENDED_ON_BY)

    # -- what happens after all edits were read --------------------------------------

    def resolve_columns(self) -> None:
        store = self.store
        boards = [p for p in self.projects if store.has_board(p)]
        for gone in [b for b in self.columns if b not in boards]:
            del self.columns[gone]  # untagging removes the task from that board, silently
        new_boards = [b for b in boards if b not in self.columns]
        for item in self.items:
            if item[0] != "@columns":
                continue
            moves = []
            for phid in item[1]:
                col = store.columns.get(phid)
                if col is None or col.project not in boards or col.proxy:
                    continue  # a column on a board the task is not tagged with is ignored
                current = self.columns.get(col.project)
                if current == phid:
                    continue
                moves.append({"columnPHID": phid, "beforePHIDs": [], "afterPHIDs": [], "boardPHID": col.project,
                              "fromColumnPHIDs": {current: current} if current else []})
                self.columns[col.project] = phid
            item[:] = ["core:columns", None, moves, self.meta()] if moves and not self.creating else ["@drop"]
        for board in new_boards:
            if board not in self.columns:
                default = store.default_column(board)
                if default is not None:
                    self.columns[board] = default.phid
        if self.creating and self.columns:
            # One core:columns for the initial placement on every board, right after projects.
            entry = ["core:columns", None, [
                {"columnPHID": col, "beforePHIDs": [], "afterPHIDs": [], "boardPHID": board, "fromColumnPHIDs": []}
                for board, col in self.columns.items()], _CREATE]
            at = next((i + 1 for i, it in enumerate(self.items)
                       if it[0] == "core:edge" and it[3] and it[3].get("edge:type") == EDGE_PROJECT), len(self.items))
            self.items.insert(at, entry)
        self.items = [it for it in self.items if it[0] != "@drop"]

    def remarkup_mentions(self) -> Mentions:
        """What the edit's new Remarkup (comments, a changed description) mentions.

        Like Phorge, users mentioned only in the old description are not mentioned again;
        task edges cannot be undone, so the old description does not matter for them.
        """
        host = self.store.self_host()
        found = Mentions()
        old_users: set[str] = set()
        texts = list(self.comments)
        old_description = self.task.description if self.task else ""
        if self.description != old_description:
            texts.append(self.description)
            old_users = set(find_mentions(old_description, host).users) if old_description else set()
        for text in texts:
            part = find_mentions(text, host)
            for task_id in part.tasks:
                found.add_task(task_id)
            for name in part.users:
                if name not in old_users:
                    found.add_user(name)
        return found

    def resolve_subscribers(self, found: Mentions) -> None:
        store, actor = self.store, self.actor
        by_name = {u.username.lower(): u for u in store.users.values()} if found.users else {}
        mentioned = []
        for name in found.users:
            user = by_name.get(name)
            # Mentioned bots and the owner (automatically subscribed) are not subscribed.
            if user and not user.bot and user.phid != self.owner and user.phid not in self.subscribers \
                    and user.phid not in mentioned:
                mentioned.append(user.phid)
        if self.creating:
            final = list(dict.fromkeys([actor.phid] + self.subscribers + mentioned))
            self.add("core:subscribers", [], final)
            self.subscribers = final
            return
        implied = (bool(self.comments) and actor.phid not in self.subscribers and actor.phid not in self.unsubscribed
                   and actor.phid != (self.task.owner if self.task else None) and not actor.bot)
        if implied:
            new = self.subscribers + [actor.phid] + [m for m in mentioned if m != actor.phid]
            self.items.insert(0, ["core:subscribers", list(self.subscribers), new, None])
            self.subscribers = new
        elif mentioned:
            new = self.subscribers + mentioned
            self.add("core:subscribers", list(self.subscribers), new)
            self.subscribers = new

    def resolve_mentions(self, found: Mentions) -> None:
        me = self.task.phid if self.task else None
        known = set(self.task.mentions) if self.task else set()
        targets = []
        for number in found.tasks:
            target = self.store.tasks.get(number)
            if target is None or target.phid == me or target.phid in known:
                continue  # unknown tasks, the task itself and existing edges make nothing
            known.add(target.phid)
            targets.append(target)
        if targets:
            # One edge transaction for all targets, then one inverse on each target.
            self.add("core:edge", [], [t.phid for t in targets], EDGE_MENTIONS)
            for target in targets:
                self.others.append((target, "core:edge", [], ["@self"], {"edge:type": EDGE_MENTIONED_IN}))


def _swap_self(value: Any, phid: str) -> Any:
    """Reciprocal transactions are planned before the new task has a PHID: fill it in."""
    if value == "@self":
        return phid
    if isinstance(value, list):
        return [phid if v == "@self" else v for v in value]
    return value


def parse_transactions(transactions: Any) -> list[tuple[str, Any]]:
    if not isinstance(transactions, list):
        raise ConduitFault("ERR-CONDUIT-CORE", 'Parameter "transactions" must be a list of transactions.')
    parsed = []
    for key, tx in enumerate(transactions):
        if not isinstance(tx, dict):
            raise ConduitFault("ERR-CONDUIT-CORE", f'Parameter "transactions" must contain a list of transaction '
                                                   f'descriptions, but item with key "{key}" is not a dictionary.')
        tx_type = tx.get("type")
        if tx_type not in VALID_TYPES:
            raise ConduitFault("ERR-CONDUIT-CORE", f'Transaction with key "{key}" has invalid type "{tx_type}". '
                                                   f"This type is not recognized. Valid types are: "
                                                   f"{', '.join(VALID_TYPES)}.")
        if "value" not in tx:
            raise ConduitFault("ERR-CONDUIT-CORE", f'Parameter "transactions" must contain a list of transaction '
                                                   f'descriptions, but item with key "{key}" is missing a '
                                                   f'"value" field.')
        parsed.append((tx_type, _check_value(tx_type, tx["value"])))
    return parsed


def apply_edit(store: Store, task: Task | None, actor: User, transactions: Any, at: int) -> tuple[Task, list[Xaction]]:
    """Apply one maniphest.edit; returns the task and the transactions written on it ([] for a no-op)."""
    parsed = parse_transactions(transactions)
    plan = _Plan(store, task, actor, at)
    if plan.creating:
        plan.add("core:create", None, None)
        # title and description always come first on creation, whatever the request order
        parsed.sort(key=lambda tx: {"title": 0, "description": 1}.get(tx[0], 2))
        if not any(t == "title" for t, _ in parsed):
            plan.errors.append("Tasks must have a title.")
    for tx_type, value in parsed:
        if tx_type not in IGNORED_TYPES:
            plan.apply(tx_type, value)
    if plan.errors:
        raise validation_error(*plan.errors)
    plan.resolve_columns()
    found = plan.remarkup_mentions()
    plan.resolve_subscribers(found)
    plan.resolve_mentions(found)
    if not plan.items and not plan.comments:
        return task, []  # type: ignore[return-value]

    if plan.creating:
        task = Task(id=store.take_id("task"), phid=store.new_phid("TASK"), title=plan.title, author=actor.phid,
                    date_created=at)
        store.add_task(task)
    assert task is not None
    task.title, task.description, task.owner = plan.title, plan.description, plan.owner
    was_open = is_open(task.status) if not plan.creating else True
    task.status, task.priority, task.points = plan.status, plan.priority, plan.points
    if was_open and not is_open(task.status):
        task.closer, task.date_closed = actor.phid, at
    elif not was_open and is_open(task.status):
        task.closer, task.date_closed = None, None
    # Copies: the plan's lists may also be old/new values of the (immutable) transactions.
    task.projects, task.columns, task.subscribers = list(plan.projects), dict(plan.columns), list(plan.subscribers)
    task.parents, task.subtasks = list(plan.parents), list(plan.subtasks)
    task.date_modified = at

    group = store.new_group()
    written = []
    for xtype, old, new, meta in plan.items:
        written.append(Xaction(store.take_id("xaction"), "", task.phid, xtype, actor.phid,
                               at, group, old, new, meta))
    for text in plan.comments:
        comment = Comment(store.take_id("comment"), store.new_phid("XCMT"), text)
        written.append(Xaction(store.take_id("xaction"), "", task.phid, "core:comment",
                               actor.phid, at, group, None, None, plan.meta(), comment))
    for x in written:
        store.add_xaction(x, task)
    # Reciprocal edges on the other tasks share the group (see T26's {T18} mention).
    for other, xtype, old, new, meta in plan.others:
        old, new = _swap_self(old, task.phid), _swap_self(new, task.phid)
        if xtype == "unblock":
            old, new = {"childPHID": None}, {"childPHID": other.phid}
        elif meta.get("edge:type") == EDGE_MENTIONED_IN:
            other.mentioned_in.append(task.phid)
            other.date_modified = at  # the inverse edge is a transaction on the target (recorded)
            store.log_edge(task.phid, EDGE_MENTIONS, other.phid, at)
            store.log_edge(other.phid, EDGE_MENTIONED_IN, task.phid, at)
        elif meta.get("edge:type") == EDGE_DEPENDS_ON:
            other.subtasks = [p for p in other.subtasks if p not in old] + [p for p in new if p not in other.subtasks]
        elif meta.get("edge:type") == EDGE_DEPENDED_ON_BY:
            other.parents = [p for p in other.parents if p not in old] + [p for p in new if p not in other.parents]
        if xtype == "unblock":
            other.subtasks.append(task.phid)
        store.add_xaction(Xaction(store.take_id("xaction"), "", other.phid, xtype,
                                  actor.phid, at, group, old, new, meta or None))
    for x in written:
        if x.type == "core:edge" and x.meta and x.meta.get("edge:type") == EDGE_MENTIONS:
            task.mentions.extend(x.new)
    return task, written
