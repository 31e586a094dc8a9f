"""Which checks exist, and running them so one broken check cannot silence the others.

Three sources, in this order:

1. the built-in checks: :data:`BUILTIN_CHECK_CLASSES` below is their one list (the order reports
   list them in). Adding a built-in is one entry here plus its class (a column dwell check is a
   declaration: see :mod:`clinicbot.checks.dwell`), its docs row and, optionally, a template.
   Everything else (``BUILTIN_SLUGS``, the docs test, the tests that configure every check)
   reads this list; pyproject.toml does not repeat it;
2. installed plugins in the entry-point group ``clinicbot.checks`` (an install made before the
   built-ins left that group may still list them: those entries are skipped);
3. custom checks named in the config by a dotted path::

       checks:
         my-check:
           path: "mypackage.checks:overdue"   # def overdue(ctx) -> list[Finding]

An entry point or a path may name a function ``(CheckContext) -> list[Finding]`` (wrapped
into a check with the entry point's name / the config's slug), a class (instantiated
without arguments) or a ready instance with ``slug``, ``description``, ``defaults`` and ``run``.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import Any, Callable, Iterable, Mapping

from clinicbot.checks.base import SEVERITIES, Check, CheckContext, CheckFunction, Finding
from clinicbot.checks.exempt import drop_exempt
from clinicbot.checks.migration import ReviewMigrationCheck
from clinicbot.checks.notices import RotationNoticeCheck
from clinicbot.checks.hygiene import UnassignedOnInternalBoardCheck
from clinicbot.checks.reviews import (
    DiscussingAnsweredCheck,
    DiscussingUnansweredCheck,
    ReviewNeededCheck,
    WaitingForReviewCheck,
)
from clinicbot.checks.settings import (
    CheckSettings,
    ErrorFactory,
    TeamSettings,
    default_error,
    merged_thresholds,
    parse_check_settings,
)
from clinicbot.checks.triage import TriageMeetingLeftoversCheck, UnprioritisedCheck, UntriagedCheck
from clinicbot.checks.untag import UntagCandidateCheck
from clinicbot.checks.urgent import UnbreakNowCheck
from clinicbot.checks.workload import CookieLickingCheck, StaleInProgressCheck
from clinicbot.errors import ConfigError
from clinicbot.model import Snapshot

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "clinicbot.checks"

# The order reports list them in: most urgent first.
BUILTIN_CHECK_CLASSES: tuple[type, ...] = (
    UnbreakNowCheck,
    UntriagedCheck,
    TriageMeetingLeftoversCheck,
    UnprioritisedCheck,
    ReviewNeededCheck,
    WaitingForReviewCheck,
    DiscussingUnansweredCheck,
    StaleInProgressCheck,
    CookieLickingCheck,
    UnassignedOnInternalBoardCheck,
    ReviewMigrationCheck,
    UntagCandidateCheck,
    DiscussingAnsweredCheck,
    RotationNoticeCheck,
)


def builtin_checks() -> list[Check]:
    return [cls() for cls in BUILTIN_CHECK_CLASSES]


BUILTIN_SLUGS: tuple[str, ...] = tuple(cls.slug for cls in BUILTIN_CHECK_CLASSES)  # type: ignore[attr-defined]


class FunctionCheck:
    """A plain function ``(CheckContext) -> list[Finding]`` dressed as a :class:`Check`.

    The function may carry ``description`` and ``defaults`` attributes; with ``defaults`` its
    settings are validated like a built-in's, without them any extra keys pass through to
    ``ctx.settings`` untouched (the function is the only one who knows what they mean).
    """

    def __init__(self, slug: str, function: CheckFunction, *, path: str | None = None) -> None:
        self.slug = slug
        self.function = function
        self.path = path
        doc = (inspect.getdoc(function) or "").strip().splitlines()
        self.description: str = getattr(function, "description", None) or (doc[0] if doc else f"custom check {slug}")
        declared = getattr(function, "defaults", None)
        self.defaults: Mapping[str, Any] = dict(declared) if isinstance(declared, Mapping) else {}
        self.strict_settings = isinstance(declared, Mapping)
        self.setting_types = getattr(function, "setting_types", None) or {}
        self.validators = getattr(function, "validators", None) or {}

    def run(self, ctx: CheckContext) -> list[Finding]:
        return self.function(ctx)

    def __repr__(self) -> str:
        return f"FunctionCheck({self.slug!r}, {self.path or self.function!r})"


def import_object(path: str) -> Any:
    """``"package.module:attr"`` (or ``"package.module.attr"``) -> the object."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"{path!r} is not a dotted path like 'package.module:function'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def as_check(obj: Any, slug: str | None = None, *, path: str | None = None) -> Check:
    """A class, an instance or a function -> a Check. ``slug`` names functions (and overrides
    nothing else: a check object's own slug is its identity)."""
    if inspect.isclass(obj):
        obj = obj()
    if hasattr(obj, "run") and isinstance(getattr(obj, "slug", None), str):
        if path is not None and getattr(obj, "path", None) is None:
            try:
                obj.path = path  # lets settings tell a custom check from a built-in
            except AttributeError:
                pass
        return obj
    if callable(obj):
        if not slug:
            raise ValueError(f"{obj!r} is a function; it needs a slug")
        return FunctionCheck(slug, obj, path=path)
    raise TypeError(f"{obj!r} is neither a check (slug + run) nor a function (context) -> [Finding]")


def may_have_plugins(group: str) -> bool:
    """Whether an installed distribution can declare entry points in ``group``: a quick look for the
    group's name in the ``entry_points.txt`` files importlib.metadata would read (without building
    every distribution, a few ms of every run). True for anything this look cannot see through (a
    zip or an egg on ``sys.path``, a finder of distributions besides the standard one)."""
    import os
    import sys
    from importlib.machinery import PathFinder

    if any(getattr(f, "find_distributions", None) is not None and f is not PathFinder for f in sys.meta_path):
        return True
    needle = group.encode()
    for folder in sys.path:
        try:
            names = os.listdir(folder or ".")
        except NotADirectoryError:
            return True  # a zip archive
        except OSError:
            continue
        for name in names:
            low = name.lower()
            if low.endswith(".egg"):
                return True
            if low.endswith((".dist-info", ".egg-info")):
                try:
                    with open(os.path.join(folder or ".", name, "entry_points.txt"), "rb") as file:
                        if needle in file.read():
                            return True
                except OSError:
                    continue
    return False


def plugin_checks(entry_points: Iterable[Any] | None = None) -> list[Check]:
    """Checks installed by other packages. A plugin that fails to load is logged and skipped:
    a broken add-on must not stop the built-in checks."""
    if entry_points is None:
        entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP) if may_have_plugins(ENTRY_POINT_GROUP) else ()
    checks: list[Check] = []
    seen: set[str] = set(BUILTIN_SLUGS)
    for ep in entry_points:
        if ep.name in BUILTIN_SLUGS:
            if not str(ep.value).startswith("clinicbot.checks."):
                log.warning("check plugin %s (%s) has the slug of a built-in check; ignored", ep.name, ep.value)
            continue  # a built-in registered by an older install of clinicbot: already loaded directly
        try:
            check = as_check(ep.load(), ep.name)
        except Exception:
            log.exception("cannot load check plugin %s (%s); skipped", ep.name, ep.value)
            continue
        if check.slug in seen:
            log.warning("check plugin %s (%s) repeats the slug %r; ignored", ep.name, ep.value, check.slug)
            continue
        seen.add(check.slug)
        checks.append(check)
    return checks


def _custom_checks(section: Mapping[str, Any], taken: set[str], error: ErrorFactory) -> list[Check]:
    checks: list[Check] = []
    for slug, raw in section.items():
        if not isinstance(raw, Mapping) or "path" not in raw:
            continue
        key = f"checks.{slug}.path"
        path = raw["path"]
        if slug in taken:
            raise error(key, f"{slug} is already a check; give the custom check a slug of its own")
        if not isinstance(path, str) or not path.strip():
            raise error(key, "must be a dotted path like 'package.module:function'")
        try:
            obj = import_object(path.strip())
            check = as_check(obj, str(slug), path=path.strip())
        except (ImportError, AttributeError, ValueError, TypeError) as exc:
            raise error(key, f"cannot load {path!r}: {type(exc).__name__}: {exc}") from None
        if check.slug != slug:
            raise error(key, f"{path!r} is a check with slug {check.slug!r}; use that slug as its key")
        taken.add(slug)
        checks.append(check)
    return checks


def load_checks_and_settings(
    section: Mapping[str, Any] | None = None,
    *,
    error: ErrorFactory | None = None,
    plugins: bool = True,
    entry_points: Iterable[Any] | None = None,
) -> tuple[list[Check], dict[str, CheckSettings]]:
    """Every known check (enabled or not) and its validated settings."""
    error = error or default_error
    section = section or {}
    if not isinstance(section, Mapping):
        raise error("checks", f"must be a mapping of check slug to settings, not {type(section).__name__}")
    checks = builtin_checks()
    if plugins:
        checks += plugin_checks(entry_points)
    checks += _custom_checks(section, {c.slug for c in checks}, error)
    return checks, parse_check_settings(section, checks, error=error)


def load_checks(
    section: Mapping[str, Any] | None = None,
    *,
    error: ErrorFactory | None = None,
    plugins: bool = True,
    entry_points: Iterable[Any] | None = None,
    include_disabled: bool = False,
) -> list[Check]:
    """The checks to run (disabled ones left out unless ``include_disabled``: an explicit
    ``--only`` may still want to run a check the config switched off)."""
    checks, settings = load_checks_and_settings(section, error=error, plugins=plugins, entry_points=entry_points)
    return [c for c in checks if include_disabled or settings[c.slug].enabled]


def context_factory(
    snapshot: Snapshot,
    settings: Mapping[str, CheckSettings] | None = None,
    *,
    team: TeamSettings | None = None,
    rotation: Any = None,
) -> Callable[[Check], CheckContext]:
    """``make_context`` for :func:`run_checks`: each check gets its own thresholds and, if it
    counts business hours, the team's :class:`BusinessHours`."""
    team = team or TeamSettings()
    settings = settings or {}

    def make(check: Check) -> CheckContext:
        own = settings.get(check.slug)
        return CheckContext(
            snapshot=snapshot,
            now=snapshot.now,
            settings=merged_thresholds(check, own, team),
            rotation=rotation,
            business_hours=team.business_hours if own is not None and own.business_hours else None,
            # names resolved now: a project nobody can find is a ConfigError naming the key
            exempt=own.exempt.bind(snapshot) if own is not None and own.exempt else None,
            config_error=own.error if own is not None else default_error,
        )

    return make


# -- running --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckFailure:
    slug: str
    error: str  # one line: "ValueError: boom"


@dataclass
class RunResult:
    findings: list[Finding] = field(default_factory=list)
    failures: list[CheckFailure] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)  # slugs, in the order they ran
    exempted: list[tuple[str, str]] = field(default_factory=list)  # (finding key, why) dropped by exempt

    @property
    def ok(self) -> bool:
        return not self.failures


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _checked(check: Check, result: Any) -> list[Finding]:
    """What a check returned, made trustworthy: a list of Findings of valid severity, carrying
    the check's slug (the ledger keys on it), without duplicate keys."""
    if not isinstance(result, (list, tuple)):
        raise TypeError(f"returned {type(result).__name__}, not a list of Finding")
    out: list[Finding] = []
    keys: set[str] = set()
    for item in result:
        if not isinstance(item, Finding):
            raise TypeError(f"returned a {type(item).__name__} among its findings, not a Finding")
        if item.severity not in SEVERITIES:
            raise ValueError(f"returned severity {item.severity!r}; use one of {', '.join(SEVERITIES)}")
        if item.slug != check.slug:
            item = replace(item, slug=check.slug)
        if item.key in keys:
            log.warning("check %s reported %s twice; kept the first", check.slug, item.key)
            continue
        keys.add(item.key)
        out.append(item)
    return out


def _failed(result: RunResult, check: Check, exc: BaseException) -> None:
    log.exception("check %s failed", check.slug)
    result.failures.append(CheckFailure(check.slug, _one_line(exc)))


def run_checks(
    checks: Iterable[Check],
    make_context: Callable[[Check], CheckContext],
    *,
    only: str | Iterable[str] | None = None,
    task_id: int | None = None,
) -> RunResult:
    """Run each check; one that raises is logged and reported in ``failures``, the rest still run.

    ``only`` narrows to one slug (or several); ``task_id`` keeps only findings about that task.
    Findings about a task the check's ``exempt`` setting covers are dropped (``exempted`` says
    which and why), whatever the check: built-in, plugin or custom.
    """
    checks = list(checks)
    if only is not None:
        wanted = {only} if isinstance(only, str) else set(only)
        known = {c.slug for c in checks}
        unknown = sorted(wanted - known)
        if unknown:
            raise ConfigError(None, "--only", f"unknown check {', '.join(unknown)}; known checks: {', '.join(sorted(known))}")
        checks = [c for c in checks if c.slug in wanted]
    result = RunResult()
    for check in checks:
        result.ran.append(check.slug)
        try:
            ctx = make_context(check)
            findings = _checked(check, check.run(ctx))
        except ConfigError as exc:
            if getattr(exc, "key", None) and str(exc.key).startswith(f"checks.{check.slug}."):
                raise  # the config names something that does not exist (an exempt project): exit 2
            _failed(result, check, exc)
            continue
        except Exception as exc:  # a check is code we may not own: contain it
            _failed(result, check, exc)
            continue
        findings, dropped = drop_exempt(findings, getattr(ctx, "snapshot", None), getattr(ctx, "exempt", None))
        result.exempted.extend(dropped)
        if task_id is not None:
            findings = [f for f in findings if f.task_id == task_id]
        result.findings.extend(findings)
    return result


__all__ = [
    "ENTRY_POINT_GROUP",
    "BUILTIN_CHECK_CLASSES",
    "BUILTIN_SLUGS",
    "FunctionCheck",
    "CheckFailure",
    "RunResult",
    "builtin_checks",
    "plugin_checks",
    "load_checks",
    "load_checks_and_settings",
    "context_factory",
    "run_checks",
    "import_object",
    "as_check",
]
