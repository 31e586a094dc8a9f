"""The configuration file: one YAML file, validated with errors that name the file and key.

Scalar settings are declared once in :data:`SETTINGS` (name, default, type, help) — the
README's configuration reference is checked against this table by a test. ``boards`` is
parsed here. The other structured sections (``checks``, ``delivery``, ``schedule`` with
``schedule.sync``, ``reports``) are validated by the code that owns them — it knows the
checks, the jobs, the delivery targets — which registers its validator here with
:func:`register_section` (``clinicbot.jobs.sections`` registers them all; ``clinicbot.jobs``
imports it). :func:`load_config` runs the validator of every section the file gives, once, so
every command refuses a bad section, whether it uses it or not, with one line naming the file
and the key; what each validator returns is kept in :attr:`Config.typed`. (config is the bottom
layer: it imports none of those modules; they register themselves with it, by name —
``"module:function"`` — so a module is imported only when its section is validated: a file
without a ``schedule:`` section does not import the scheduler's module at load, and the
defaults of an absent section are computed when a job first asks for them.)
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, MutableMapping

import yaml

from clinicbot.errors import ConfigError, Secret
from clinicbot.model import COLUMN_ROLES

DEFAULT_TOKEN_ENV = "CLINICBOT_CONDUIT_TOKEN"


@dataclass(frozen=True)
class Setting:
    name: str  # dotted path in the YAML file
    default: Any
    kind: type | tuple[type, ...]
    help: str
    check: Callable[[Any], str | None] | None = None  # returns an error message or None


def _positive(v: Any) -> str | None:
    return None if v > 0 else "must be greater than 0"


def _non_negative(v: Any) -> str | None:
    return None if v >= 0 else "must be 0 or more"


def _url(v: str) -> str | None:
    return None if v.startswith(("http://", "https://")) else "must start with http:// or https://"


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _timezone(v: str) -> str | None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown timezone {v!r}; use an IANA name such as Europe/Berlin or UTC"
    return None


def _hhmm(v: str) -> str | None:
    parts = v.split(":")
    if len(parts) == 2 and all(p.isdigit() for p in parts) and int(parts[0]) < 24 and int(parts[1]) < 60:
        return None
    return f"{v!r} is not a time of day HH:MM"


def _hours_range(v: str) -> str | None:
    start, _, end = v.partition("-")
    if _hhmm(start.strip()) or _hhmm(end.strip()) or start.strip() >= end.strip():
        return f"{v!r} is not a range of hours like 09:00-17:00"
    return None


def _weekdays(v: list) -> str | None:
    bad = [d for d in v if str(d).lower()[:3] not in WEEKDAYS]
    return f"unknown weekday(s) {bad}; use mon, tue, wed, thu, fri, sat, sun" if bad else None


SETTINGS: tuple[Setting, ...] = (
    Setting("phabricator.url", None, str, "Base URL of the Phabricator/Phorge server, e.g. https://phabricator.example.org/ (required).", _url),
    Setting("phabricator.token_env", DEFAULT_TOKEN_ENV, str, "Environment variable holding the Conduit API token; tried first."),
    Setting("phabricator.token_file", None, str, "File holding the Conduit API token (relative to the config file); tried second."),
    Setting("phabricator.arcrc", "~/.arcrc", str, "arc's config file; its hosts entry for '<url>api/' is tried last, as arc does."),
    Setting("phabricator.timeout", 30.0, (int, float), "Seconds one Conduit attempt may take in total, from sending the request to the last byte of the answer (a server trickling its answer is cut off).", _positive),
    Setting("phabricator.max_answer_mb", 64, (int, float), "Largest Conduit answer read, in MB; reading stops past it with an error (a guard against a wrong URL or a hostile server).", _positive),
    Setting("phabricator.retries", 4, int, "Retries of a read call after a timeout, connection error, HTTP 5xx or 429 (writes are never retried blindly).", _non_negative),
    Setting("phabricator.settle_seconds", None, (int, float), "How long a comment whose write timed out stays pending (not re-posted) while it is not on the task: a server may apply a write after our timeout. Default: 5 x phabricator.timeout.", _positive),
    Setting("phabricator.bot_username", None, str, "clinicbot's own account; default: whoever the token belongs to (user.whoami). Its actions never count as activity."),
    Setting("team.name", "Team", str, "Team name used in reports and messages."),
    Setting("team.projects", [], list, "Team projects (names, #hashtags or PHIDs): the backlog that metrics count. Default: the watched boards' projects."),
    Setting("team.members", [], list, "Usernames whose answers count as a team response. Default: the rotation's members plus the team projects' members."),
    Setting("team.ignored_users", [], list, "Usernames of other bots: never counted as activity, response or author."),
    Setting("team.timezone", None, str, "IANA timezone of the team (e.g. Europe/Berlin). Default: the rotation file's timezone, else UTC.", _timezone),
    Setting("team.business_hours", "09:00-17:00", str, "Working hours (local time) for thresholds counted in business hours.", _hours_range),
    Setting("team.business_days", ["mon", "tue", "wed", "thu", "fri"], list, "Working days for thresholds counted in business hours.", _weekdays),
    Setting("team.meeting_weekday", "thu", str, "Day of the weekly triage meeting (mon..sun).", lambda v: _weekdays([v])),
    Setting("team.meeting_time", "15:00", str, "Local start time of the weekly triage meeting (HH:MM).", _hhmm),
    Setting("state_dir", "state", str, "Directory for the ledger, cache, lock and run history (relative to the config file)."),
    Setting("rotation", "rotation.yaml", str, "The rotation file (relative to the config file)."),
    Setting("templates_dir", None, str, "Directory with template overrides; a template found there wins over the built-in one."),
    Setting("apply", False, bool, "Apply writes (comments, subscribers, wiki pages, messages) without --apply. Keep false until a dry run looks right."),
    Setting("max_writes_per_run", 20, int, "Safety cap: a run that plans more writes than this aborts before writing anything more.", _non_negative),
    Setting("on_cap", "abort", str, "What a check run that plans more writes than max_writes_per_run does: abort (write nothing, exit 4) or most-urgent (write the most urgent max_writes_per_run, by severity then age; the rest wait for the next run).",
            lambda v: None if v in ("abort", "most-urgent") else f"must be abort or most-urgent, not {v!r}"),
)
SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}
# Sections whose content is validated by the module that owns it.
SECTIONS = ("boards", "checks", "delivery", "schedule", "reports", "holidays")
TOP_LEVEL_KEYS = {s.name.split(".")[0] for s in SETTINGS} | set(SECTIONS)


@dataclass(frozen=True)
class BoardConfig:
    project: str  # name, #hashtag or PHID as written in the config
    columns: Mapping[str, tuple[str, ...]]  # role -> column names
    key: str  # where it is in the file, for error messages: "boards[0]"


@dataclass
class Config:
    path: Path | None
    values: dict[str, Any]  # dotted setting name -> value (defaults filled in)
    boards: list[BoardConfig]
    raw: dict[str, Any] = field(default_factory=dict)
    # section name -> what its registered validator returned (filled by load_config / validate_sections;
    # a section the file does not give is computed on first use: see TypedSections)
    typed: MutableMapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        done = self.typed.done if isinstance(self.typed, TypedSections) else dict(self.typed)
        self.typed = TypedSections(self, done)

    # -- settings --------------------------------------------------------------------------
    def get(self, name: str) -> Any:
        return self.values[name]

    def section(self, name: str) -> dict[str, Any]:
        value = self.raw.get(name) or {}
        if not isinstance(value, dict):
            raise self.error(name, f"must be a mapping, not {type(value).__name__}")
        return value

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(str(self.path) if self.path else "<config>", key, message)

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def resolve_path(self, value: str | None) -> Path | None:
        if value is None:
            return None
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else self.base_dir / p

    @property
    def url(self) -> str:
        url = self.get("phabricator.url")
        return url if url.endswith("/") else url + "/"

    @property
    def state_dir(self) -> Path:
        return self.resolve_path(self.get("state_dir"))  # type: ignore[return-value]

    @property
    def rotation_path(self) -> Path:
        return self.resolve_path(self.get("rotation"))  # type: ignore[return-value]

    @property
    def templates_dir(self) -> Path | None:
        return self.resolve_path(self.get("templates_dir"))

    # -- the token ---------------------------------------------------------------------------
    def token(self, env: Mapping[str, str]) -> Secret:
        """Find the Conduit token: env var, then token file, then arc's ~/.arcrc entry for the URL."""
        var = self.get("phabricator.token_env")
        if env.get(var):
            return Secret(env[var].strip())
        tried = [f"environment variable {var}"]
        token_file = self.resolve_path(self.get("phabricator.token_file"))
        if token_file is not None:
            try:
                text = token_file.read_text().strip()
            except OSError as exc:
                raise self.error("phabricator.token_file", f"cannot read {token_file}: {exc.strerror}") from None
            if not text:
                raise self.error("phabricator.token_file", f"{token_file} is empty; put the Conduit API token in it")
            return Secret(text)
        arcrc = Path(os.path.expanduser(self.get("phabricator.arcrc")))
        tried.append(str(arcrc))
        if arcrc.exists():
            try:
                data = json.loads(arcrc.read_text())
            except (OSError, ValueError) as exc:
                raise ConfigError(str(arcrc), None, f"cannot read arc's config: {exc}") from None
            hosts = data.get("hosts") if isinstance(data, dict) else None
            if isinstance(hosts, dict):
                for host_url in (self.url + "api/", self.url.rstrip("/") + "/api/", self.url):
                    entry = hosts.get(host_url)
                    if isinstance(entry, dict) and entry.get("token"):
                        return Secret(str(entry["token"]))
        raise self.error(
            "phabricator.token_env",
            "no Conduit API token found (tried " + ", ".join(tried) + "); create one under "
            "Settings > Conduit API Tokens for the bot account and put it in one of those places",
        )


# --------------------------------------------------------------------------------------------
# Loading and validation


def _flatten(raw: dict[str, Any], file: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(file, key, f"unknown key; known keys: {', '.join(sorted(TOP_LEVEL_KEYS))}")
    for group in ("phabricator", "team"):
        sub = raw.get(group)
        if sub is None:
            continue
        if not isinstance(sub, dict):
            raise ConfigError(file, group, f"must be a mapping, not {type(sub).__name__}")
        known = sorted(s.name.split(".", 1)[1] for s in SETTINGS if s.name.startswith(group + "."))
        for key, value in sub.items():
            if key not in known:
                raise ConfigError(file, f"{group}.{key}", f"unknown key; known keys under {group}: {', '.join(known)}")
            values[f"{group}.{key}"] = value
    for s in SETTINGS:
        if "." not in s.name and s.name in raw:
            values[s.name] = raw[s.name]
    return values


def _check_value(setting: Setting, value: Any, file: str) -> Any:
    kind = setting.kind
    if isinstance(value, bool) and kind in ((int, float), int):
        raise ConfigError(file, setting.name, f"must be a number, not {value!r}")
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        names = {"str": "a string", "int": "a whole number", "bool": "true or false", "list": "a list",
                 "int or float": "a number"}.get(names, names)
        raise ConfigError(file, setting.name, f"must be {names}, not {value!r}")
    if setting.kind is list and not all(isinstance(v, str) for v in value):
        raise ConfigError(file, setting.name, "must be a list of strings")
    if setting.check:
        problem = setting.check(value)
        if problem:
            raise ConfigError(file, setting.name, problem)
    return value


def _boards(raw: Any, file: str) -> list[BoardConfig]:
    if raw is None:
        raise ConfigError(file, "boards", "missing; list the workboards to watch (see clinicbot.example.yaml)")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(file, "boards", "must be a non-empty list of {project, columns}")
    boards = []
    for i, item in enumerate(raw):
        key = f"boards[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(file, key, "must be a mapping with 'project' and 'columns'")
        unknown = set(item) - {"project", "columns"}
        if unknown:
            raise ConfigError(file, f"{key}.{sorted(unknown)[0]}", "unknown key; known keys: project, columns")
        project = item.get("project")
        if not isinstance(project, str) or not project.strip():
            raise ConfigError(file, f"{key}.project", "missing; give the project's name, #hashtag or PHID")
        cols = item.get("columns") or {}
        if not isinstance(cols, dict):
            raise ConfigError(file, f"{key}.columns", "must map a role to a column name (or a list of names)")
        roles: dict[str, tuple[str, ...]] = {}
        for role, names in cols.items():
            if role not in COLUMN_ROLES:
                raise ConfigError(file, f"{key}.columns.{role}", f"unknown column role; roles are: {', '.join(COLUMN_ROLES)}")
            if isinstance(names, str):
                names = [names]
            if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
                raise ConfigError(file, f"{key}.columns.{role}", "must be a column name or a list of column names")
            roles[role] = tuple(names)
        boards.append(BoardConfig(project=project.strip(), columns=roles, key=key))
    return boards


def parse_config(raw: Any, path: Path | None) -> Config:
    file = str(path) if path else "<config>"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(file, None, "must be a YAML mapping of settings (see clinicbot.example.yaml)")
    given = _flatten(raw, file)
    values: dict[str, Any] = {}
    for s in SETTINGS:
        if s.name in given and given[s.name] is not None:
            values[s.name] = _check_value(s, given[s.name], file)
        else:
            values[s.name] = s.default
    if not values["phabricator.url"]:
        raise ConfigError(file, "phabricator.url", "missing; set it to your Phabricator's base URL")
    boards = _boards(raw.get("boards"), file)
    return Config(path=path, values=values, boards=boards, raw=raw)


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: str, line: int, first: int):
        super().__init__(key)
        self.key, self.line, self.first = key, line, first


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last
    one silently, so half of a board or a check's settings would vanish without a word)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = self.construct_object(key_node, deep=deep)
                try:
                    if key in seen:
                        raise _DuplicateKey(str(key), key_node.start_mark.line + 1, seen[key])
                    seen[key] = key_node.start_mark.line + 1
                except TypeError:  # an unhashable key: SafeLoader reports it
                    pass
        return super().construct_mapping(node, deep=deep)


def read_utf8(path: Path, error: Callable[[str, int | None], Exception]) -> str:
    """The file's text; bytes that are not UTF-8 are one error naming the line (``error(msg, line)``)."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise error(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save the file as UTF-8",
                    line) from None


def load_yaml(text: str, file: str, error: Callable[..., Exception] = ConfigError) -> Any:
    """Parse YAML safely, refusing duplicate keys; errors name ``file:line`` (and the key)."""
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except _DuplicateKey as exc:
        raise error(file, exc.key, f"appears twice in one mapping (first on line {exc.first}); keep one",
                    line=exc.line) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise error(file, None, f"invalid YAML: {problem}; fix the syntax", line=line) from None


# --------------------------------------------------------------------------------------------
# Structured sections: validators registered by the modules that own them

SectionValidator = Callable[["Config"], Any]
# section name -> its validator, or "module:function" naming it (imported when first needed)
SECTION_VALIDATORS: dict[str, SectionValidator | str] = {}


def register_section(name: str, validate: SectionValidator | str) -> None:
    """``validate(config)`` checks section ``name`` (raising :class:`ConfigError` naming file and key)
    and returns its typed value; :func:`load_config` calls it for every config that gives the section.
    ``validate`` may be ``"package.module:function"``: the module is imported only when the section
    is validated (start-up: loading a config does not import every section's owner)."""
    if name not in SECTIONS:
        raise ValueError(f"{name!r} is not a config section; sections: {', '.join(SECTIONS)}")
    if isinstance(validate, str) and validate.count(":") != 1:
        raise ValueError(f"{validate!r} is not 'module:function'")
    SECTION_VALIDATORS[name] = validate


def section_validator(name: str) -> SectionValidator | None:
    """The validator registered for section ``name`` (a ``"module:function"`` is imported now), or None."""
    validate = SECTION_VALIDATORS.get(name)
    if isinstance(validate, str):
        module, _, function = validate.partition(":")
        validate = SECTION_VALIDATORS[name] = getattr(importlib.import_module(module), function)
    return validate


def section_given(config: Config, name: str) -> bool:
    """Whether the file gives section ``name`` (anything but absent, ``null`` or an empty mapping)."""
    value = config.raw.get(name)
    return value is not None and value != {}


class TypedSections(MutableMapping[str, Any]):
    """:attr:`Config.typed`: what each registered section validator returned for this config.

    The sections the file gives are validated at load (:func:`validate_sections`); the value of
    one it does not give (its defaults: nothing there can be wrong) is computed by the validator
    the first time it is asked for, so a job that never reads the schedule never imports it."""

    def __init__(self, config: Config, done: dict[str, Any] | None = None):
        self.config = config
        self.done: dict[str, Any] = dict(done or {})

    def __getitem__(self, name: str) -> Any:
        if name not in self.done:
            validate = section_validator(name)
            if validate is None:
                raise KeyError(name)
            self.done[name] = validate(self.config)
        return self.done[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self.done[name] = value

    def __delitem__(self, name: str) -> None:
        del self.done[name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self.done, *(n for n in SECTIONS if n in SECTION_VALIDATORS)]))

    def __len__(self) -> int:
        return len(set(self.done) | set(SECTION_VALIDATORS))

    def __contains__(self, name: object) -> bool:
        return name in self.done or name in SECTION_VALIDATORS

    def __repr__(self) -> str:
        return f"TypedSections({sorted(self.done)} computed of {sorted(self)})"


def validate_sections(config: Config) -> Config:
    """Run the validator of every registered section the file gives, once (in :data:`SECTIONS` order),
    and keep the results; an absent section's defaults are left to :class:`TypedSections`."""
    for name in SECTIONS:
        if name in SECTION_VALIDATORS and section_given(config, name):
            config.typed[name] = section_validator(name)(config)  # type: ignore[misc]
    return config


def load_config(path: str | Path) -> Config:
    path = Path(path)
    file = str(path)
    try:
        text = read_utf8(path, lambda msg, line: ConfigError(file, None, msg, line=line))
    except FileNotFoundError:
        raise ConfigError(file, None, "file not found; pass --config FILE or set CLINICBOT_CONFIG "
                          "(clinicbot.example.yaml is a starting point)") from None
    except IsADirectoryError:
        raise ConfigError(file, None, "is a directory; pass the config file itself with --config FILE") from None
    except OSError as exc:
        raise ConfigError(file, None, f"cannot read: {exc.strerror}") from None
    config = parse_config(load_yaml(text, file), path)
    check_paths(config)
    return validate_sections(config)


def check_paths(config: Config) -> None:
    """Paths the file names explicitly must exist: a missing ``rotation`` would mean nobody is
    pinged, a missing ``templates_dir`` that the overrides are silently ignored. (The default
    ``rotation.yaml`` may be absent: then nobody is on duty, with a warning.)"""
    given = config.raw
    if given.get("rotation") is not None:
        path = config.rotation_path
        if not path.is_file():
            raise config.error("rotation", f"{path} {'is not a file' if path.exists() else 'does not exist'}; "
                               "create the rotation file or fix the path (relative to the config file)")
    if given.get("templates_dir") is not None:
        tdir = config.templates_dir
        if tdir is None or not tdir.is_dir():
            raise config.error("templates_dir", f"{tdir} is not a directory; create it or remove the setting")


def write_config(path: Path, data: dict[str, Any]) -> None:
    """Write a config file atomically (used by ``clinicbot sandbox --config-out``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, path)
