"""Where a report goes (``--to``) and the ``reports:`` config section.

Each target kind is one class (:class:`TargetKind` subclass, registered with :func:`register_target`
in :data:`TARGET_KINDS`, looked up by kind): adding a target is a class and the template it renders.

Targets: ``stdout`` (default), ``file:PATH``, ``email``, ``chat``, ``task:T123`` (a comment on a
tracking task), ``wiki`` (Phriction). Messages go through :class:`clinicbot.delivery.outbox.Outbox`
(ledger, dry run, cap, never twice), pages through :class:`clinicbot.delivery.wiki.WikiWriter` (missing
parent pages created, unchanged pages not written). Both share the run's one write cap: every
message, page created or page edited is one write, and the cap is checked before the first. Every
delivery but stdout and files has an idempotency key ``<report>:<day or meeting date>:<target>``
(``digest:2026-11-22:chat``, ``agenda:2026-11-26:wiki``): a report delivered once for a day or a
meeting is not delivered again, however often the command runs.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from clinicbot.state.fileio import write_atomic
from clinicbot.config import Config
from clinicbot.errors import ConfigError, SafetyCapExceeded
from clinicbot.reports.render import EXTENSIONS, render
from clinicbot.delivery.wiki import PagePlan, WikiWriter
from clinicbot.phab.wiki import normalize_slug

KINDS = ("digest", "agenda", "metrics")
TITLES = {"digest": "Daily triage digest", "agenda": "Triage meeting agenda", "metrics": "Clinic duty metrics"}


# --------------------------------------------------------------------------------------------
# The reports: section


@dataclass(frozen=True)
class ReportSettings:
    window_days: int = 30
    untouched_days: int = 14
    weeks: int = 12
    sla_hours: Mapping[str, float] = field(default_factory=lambda: {"unbreak_now": 4.0, "review": 72.0})
    digest_lookback_hours: float = 24.0
    rotation_days: int = 7
    excerpt_chars: int = 200
    history_days: int = 90
    agenda_wiki_path: str = "clinic/triage_meeting/"
    metrics_wiki_path: str = "clinic/metrics/"
    digest_wiki_path: str = "clinic/digest/"
    email_to: tuple[str, ...] = ()
    # Where the scheduled jobs (`clinicbot serve`) deliver each report; the commands use --to.
    digest_to: tuple[str, ...] = ("stdout",)
    agenda_to: tuple[str, ...] = ("stdout",)
    metrics_to: tuple[str, ...] = ("stdout",)
    metrics_output: str | None = None  # a directory: the metrics job writes index.html there


_INTS = {"window_days": 1, "untouched_days": 1, "weeks": 1, "rotation_days": 0, "excerpt_chars": 20, "history_days": 1}
_PATHS = ("agenda_wiki_path", "metrics_wiki_path", "digest_wiki_path")
_TARGETS = ("digest_to", "agenda_to", "metrics_to")


def report_settings(config: Config, *, validated_elsewhere: Iterable[str] = ()) -> ReportSettings:
    """Validate ``reports:``; an unknown key or a bad value is a ConfigError naming ``reports.<key>``.
    ``validated_elsewhere``: keys another validator owns (named in the message, not read here)."""
    raw = config.section("reports")
    known = sorted(set(_INTS) | set(_PATHS) | set(_TARGETS) | {"sla_hours", "digest_lookback_hours", "email_to",
                                                             "metrics_output"})
    values: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"reports.{key}"
        if key not in known:
            every = ", ".join(sorted({*known, *validated_elsewhere}))
            raise config.error(where, f"unknown key; known keys under reports: {every}")
        if key in _INTS:
            if isinstance(value, bool) or not isinstance(value, int) or value < _INTS[key]:
                raise config.error(where, f"must be a whole number of at least {_INTS[key]}, not {value!r}")
        elif key in _PATHS:
            if not isinstance(value, str) or not value.strip("/ "):
                raise config.error(where, "must be a wiki path such as clinic/triage_meeting/")
        elif key == "digest_lookback_hours":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise config.error(where, f"must be a number of hours greater than 0, not {value!r}")
            value = float(value)
        elif key in _TARGETS:
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise config.error(where, f"must be a list of targets: {_syntaxes()}")
            for v in value:
                try:
                    parse_target(v)
                except ConfigError as exc:
                    raise config.error(where, exc.message) from None
            value = tuple(value)
        elif key == "metrics_output":
            if not isinstance(value, str) or not value.strip():
                raise config.error(where, "must be a directory (relative to the config file)")
        elif key == "email_to":
            if not isinstance(value, list) or not all(isinstance(v, str) and "@" in v for v in value):
                raise config.error(where, "must be a list of email addresses")
            value = tuple(value)
        elif key == "sla_hours":
            if not isinstance(value, dict):
                raise config.error(where, "must map unbreak_now and/or review to a number of hours")
            sla = dict(ReportSettings().sla_hours)
            for sub, hours in value.items():
                if sub not in ("unbreak_now", "review"):
                    raise config.error(f"{where}.{sub}", "unknown key; known keys: review, unbreak_now")
                if isinstance(hours, bool) or not isinstance(hours, (int, float)) or hours <= 0:
                    raise config.error(f"{where}.{sub}", f"must be a number of hours greater than 0, not {hours!r}")
                sla[sub] = float(hours)
            value = sla
        values[key] = value
    return ReportSettings(**values)


# --------------------------------------------------------------------------------------------
# Targets


@dataclass(frozen=True)
class Target:
    """A parsed ``--to`` value: the kind (a key of :data:`TARGET_KINDS`) and its argument."""

    kind: str
    arg: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.arg}" if self.arg else self.kind


TARGET_KINDS: dict[str, type["TargetKind"]] = {}


def register_target(cls: type["TargetKind"]) -> type["TargetKind"]:
    """Class decorator: make ``cls`` the target for ``--to <cls.kind>``."""
    TARGET_KINDS[cls.kind] = cls
    return cls


def _syntaxes() -> str:
    names = [k.syntax for k in TARGET_KINDS.values()]
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names)


def parse_target(value: str) -> Target:
    kind, _, arg = value.strip().partition(":")
    cls = TARGET_KINDS.get(kind.lower())
    parsed = cls.parse_arg(arg) if cls is not None else None
    if parsed is None:
        raise ConfigError(None, "--to", f"{value!r} is not a delivery target; use {_syntaxes()}")
    return Target(cls.kind, parsed)  # type: ignore[union-attr]


def period(data: Mapping[str, Any]) -> str:
    """The day (or meeting) a report is for: half of its idempotency key."""
    return str(data["meeting_date"] if data["kind"] == "agenda" else data["date"])


def delivery_key(data: Mapping[str, Any], target: Target) -> str:
    return f"{data['kind']}:{period(data)}:{target}"


def wiki_slug(data: Mapping[str, Any], settings: ReportSettings) -> str:
    """Agenda and digest: one page per meeting/day under their path; metrics: one page, edited in place."""
    if data["kind"] == "metrics":
        return settings.metrics_wiki_path
    base = settings.agenda_wiki_path if data["kind"] == "agenda" else settings.digest_wiki_path
    return base.rstrip("/") + "/" + period(data) + "/"


def subject(data: Mapping[str, Any]) -> str:
    return f"{TITLES[data['kind']]}: {data['team']}, {period(data)}"


def file_format(path: str, fmt: str | None) -> str:
    """--format wins; else the extension says (.md, .html, .json, .remarkup), else plain text."""
    if fmt and fmt != "term":
        return fmt
    ext = Path(path).suffix.lower().lstrip(".")
    return {"md": "md", "markdown": "md", "html": "html", "htm": "html", "json": "json",
            "remarkup": "remarkup"}.get(ext, "text")


def check_writable(path: Path, option: str, *, directory: bool = False) -> None:
    """Refuse an output path that cannot be written, before anything is built or written.

    ``path`` is a file (``--to file:``, ``--ical``) or, with ``directory``, a directory
    (``--output``). Missing directories are fine (they are created) when the nearest existing
    one is a writable directory. ``option`` names the argument or setting in the error."""
    path = Path(path)
    if directory:
        if path.exists() and not path.is_dir():
            raise ConfigError(None, option, f"{path} exists and is not a directory; give a directory")
        probe = path
    else:
        if path.is_dir():
            raise ConfigError(None, option, f"{path} is a directory; give a file name")
        probe = path.parent if str(path.parent) else Path(".")
    while not probe.exists() and probe != probe.parent:
        if probe.is_symlink():
            raise ConfigError(None, option, f"cannot write {path}: {probe} is a dangling link")
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(None, option, f"cannot write {path}: {probe} is not a directory; choose another path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(None, option, f"cannot write {path}: no permission to write in {probe}; "
                          "choose a writable path")


def write_file(path: Path, text: str, option: str = "--to") -> None:
    """Atomically, so a page served from that directory is never half-written. An error writing
    (read-only file system, full disk) is one ConfigError line naming the path and ``option``."""
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise ConfigError(None, option, f"cannot write {path}: {exc.strerror or exc}; choose a writable path "
                          "(nothing was written there)") from None


def output_path(directory: Path, data: Mapping[str, Any], fmt: str) -> Path:
    """``--output DIR``: the metrics page is DIR/index.html (serve the directory as is)."""
    if fmt == "html" and data["kind"] == "metrics":
        return directory / "index.html"
    return directory / f"{data['kind']}-{period(data)}.{EXTENSIONS.get(fmt, fmt)}"


# --------------------------------------------------------------------------------------------
# Delivering


@dataclass
class Delivery:
    target: str
    status: str  # printed | written | planned | posted | skipped | failed | unchanged | created | edited
    detail: str = ""
    key: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"target": self.target, "status": self.status, "detail": self.detail, "key": self.key}


@dataclass
class Run:
    """One :meth:`Deliverer.deliver` call: what the targets have planned so far.

    A target either delivers at once (``out``), or plans a message through the ``outbox`` (sent
    after every target has planned, under the cap) or a page through ``wiki`` (written last)."""

    deliverer: "Deliverer"
    data: Mapping[str, Any]
    fmt: str
    recipients: Sequence[str]
    outbox: Any  # clinicbot.delivery.outbox.Outbox
    wiki: WikiWriter
    out: list[Delivery] = field(default_factory=list)
    messages: list[tuple[Target, Any]] = field(default_factory=list)  # (target, outbox Action)
    pages: list[tuple[Target, str, PagePlan]] = field(default_factory=list)  # written after the cap check

    def render(self, fmt: str) -> str:
        return self.deliverer.render(self.data, fmt)

    def key(self, target: Target) -> str:
        return delivery_key(self.data, target)


class TargetKind:
    """One kind of ``--to`` target. A new kind is a subclass with :func:`register_target`: its
    ``kind`` and ``syntax``, how it reads its argument, and :meth:`plan` (render with a template,
    then deliver at once or hand a message to the outbox)."""

    kind: str = ""
    syntax: str = ""  # how --to spells it, for error messages
    takes_arg: bool = False

    @classmethod
    def parse_arg(cls, arg: str) -> str | None:
        """The normalised argument, or None when ``arg`` is not valid for this kind."""
        return arg if bool(arg) == cls.takes_arg else None

    def plan(self, run: Run, target: Target) -> None:
        raise NotImplementedError


@register_target
class StdoutTarget(TargetKind):
    kind, syntax = "stdout", "stdout"

    def plan(self, run: Run, target: Target) -> None:
        text = run.render(run.fmt)
        if run.fmt == "term":
            run.deliverer.print_term(text)
        else:
            run.deliverer.echo(text)
        run.out.append(Delivery("stdout", "printed"))


@register_target
class FileTarget(TargetKind):
    kind, syntax, takes_arg = "file", "file:PATH", True

    def plan(self, run: Run, target: Target) -> None:
        file_fmt = file_format(target.arg, run.fmt)
        write_file(Path(target.arg), run.render(file_fmt), f"--to {target}")
        run.out.append(Delivery(str(target), "written", f"{file_fmt} to {target.arg}"))


@register_target
class EmailTarget(TargetKind):
    kind, syntax = "email", "email"

    def plan(self, run: Run, target: Target) -> None:
        to = list(dict.fromkeys([*run.recipients, *run.deliverer.settings.email_to]))
        run.messages.append((target, run.outbox.email(to, subject(run.data), run.render("text"), run.render("html"),
                                                      run.key(target))))


@register_target
class ChatTarget(TargetKind):
    kind, syntax = "chat", "chat"

    def plan(self, run: Run, target: Target) -> None:
        run.messages.append((target, run.outbox.chat(run.render("chat"), run.key(target))))


_TASK = re.compile(r"^T?(\d+)$")


@register_target
class TaskTarget(TargetKind):
    """A comment on a tracking task."""

    kind, syntax, takes_arg = "task", "task:T123", True

    @classmethod
    def parse_arg(cls, arg: str) -> str | None:
        m = _TASK.match(arg)
        return "T" + m.group(1) if m else None

    def plan(self, run: Run, target: Target) -> None:
        key = run.key(target)
        lookup = run.deliverer.lookup_task
        task = lookup(target.arg) if lookup else None
        if task is None:
            run.out.append(Delivery(str(target), "failed", f"no task {target.arg} visible to the bot", key))
            return
        run.messages.append((target, run.outbox.comment(task, run.render("remarkup"), key)))


@register_target
class WikiTarget(TargetKind):
    """A Phriction page (Remarkup), published once per report and period."""

    kind, syntax = "wiki", "wiki"

    def plan(self, run: Run, target: Target) -> None:
        key, data, settings = run.key(target), run.data, run.deliverer.settings
        ledger = run.deliverer.ledger
        if ledger.already_delivered(key):
            earlier = ledger.delivery(key) or {}
            slug = normalize_slug(wiki_slug(data, settings))
            run.out.append(Delivery(str(target), "skipped", f"already published at {earlier.get('at', '?')} ({slug})",
                                    key))
            return
        title = subject(data) if data["kind"] != "metrics" else f"{TITLES['metrics']}: {data['team']}"
        plan = run.wiki.plan_page(wiki_slug(data, settings), title, run.render("remarkup"),  # reads; checks the cap
                                  description=f"clinicbot: {data['kind']} {period(data)}")
        run.pages.append((target, key, plan))


def _stdout_echo(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


@dataclass
class Deliverer:
    """What delivering needs, built once at the edge (jobs/reports.deliverer)."""

    client: Any
    ledger: Any  # clinicbot.state.ledger.Ledger (read-only copy in a dry run)
    settings: ReportSettings
    apply: bool
    cap: int
    now: datetime
    templates_dir: Path | None = None
    chat_sender: Any = None
    email_sender: Any = None
    bot_phid: str | None = None
    print_term: Callable[[str], None] = print
    echo: Callable[[str], None] = _stdout_echo  # stdout in a format other than term: the text as is
    lookup_task: Callable[[str], Any] | None = None  # "T123" -> object with .id and .phid
    # The real clock for write intents (a --now run must not stamp them with --now), how long an
    # uncertain comment stays pending, and how to find the bot's PHID when an earlier comment
    # must be looked up: reports settle their intents exactly as the check runner does.
    clock: Callable[[], datetime] | None = None
    settle: timedelta = timedelta(0)
    bot_lookup: Callable[[], str | None] | None = None

    def render(self, data: Mapping[str, Any], fmt: str) -> str:
        return render(data, fmt, templates_dir=self.templates_dir, history_points=self.settings.history_days)

    def deliver(self, data: Mapping[str, Any], targets: Sequence[Target], *, fmt: str = "term",
                recipients: Sequence[str] = ()) -> list[Delivery]:
        from clinicbot.delivery.outbox import Outbox

        outbox = Outbox(self.client, self.ledger, apply=self.apply, cap=self.cap, now=self.now,
                        chat_sender=self.chat_sender, email_sender=self.email_sender, bot_phid=self.bot_phid,
                        clock=self.clock, settle=self.settle, bot_lookup=self.bot_lookup)
        run = Run(self, data, fmt, recipients, outbox, WikiWriter(self.client, apply=self.apply, cap=self.cap))
        for target in targets:
            TARGET_KINDS[target.kind]().plan(run, target)
        if run.messages:
            # One cap for the run: what the pages need is taken off the messages' share.
            outbox.cap = self.cap - run.wiki.planned
            try:
                outbox.deliver()
            except SafetyCapExceeded as exc:
                raise SafetyCapExceeded(self.cap, exc.planned + run.wiki.planned, exc.done) from None
            for target, action in run.messages:
                detail = action.reason or action.error or ("dry run: would send" if action.status == "planned" else "")
                run.out.append(Delivery(str(target), action.status, detail, action.key))
        for target, key, plan in run.pages:
            run.out.append(self._wiki_write(run.wiki, target, key, plan))
        return run.out

    def _wiki_write(self, wiki: WikiWriter, target: Target, key: str, plan: PagePlan) -> Delivery:
        result = wiki.execute(plan)
        if self.apply and result.status in ("created", "edited", "unchanged"):
            self.ledger.mark_delivered(key, self.now, handler="wiki", slug=result.slug, result=result.status)
        detail = f"{result.slug}: {result.diff_summary}"
        if result.ancestors:
            detail += (f" (parent pages {'created' if self.apply else 'to create'}: {', '.join(result.ancestors)})")
        return Delivery(str(target), result.status, detail, key)
