"""The one template loader: Jinja2 over ``templates/`` with per-medium escaping filters.

A deployment's ``templates_dir`` is searched first, so a file there with the same name as a
built-in template (``checks/untriaged.remarkup.j2``, ``chat/findings.chat.j2``, …) replaces
it. Task text is data: templates pass it through the filter of their medium

* ``remarkup``      — Phabricator comments and wiki pages (inline monospace, backticks → ´)
* ``remarkup_cell`` — the same inside a Remarkup table cell (``|`` and ``[[`` made harmless)
* ``taskref``       — a task link in Remarkup that creates no mention edge: ``[[ /T1 | T1 ]]``
* ``chat``          — Slack-compatible messages
* ``plain``         — plain-text email
* ``md``            — Markdown
* ``header``        — email subject lines
* ``term``          — rich console markup

and ``.html.j2`` templates are autoescaped. Every printed value also passes through
``escape.finalize`` (control characters and bidi overrides removed), whatever filter a custom
template uses or forgets. ``StrictUndefined``: a typo in a template is an error at render time,
not an empty string in a message sent to people.

Start-up (a cron run is a fresh process): Jinja2 is imported when a template is first needed,
not when this module is, and a template compiled once is kept as bytecode by Jinja2's own
``FileSystemBytecodeCache`` (its per-user directory under the system's temporary directory,
created 0700 and checked to be ours; files ``__clinicbot_jinja2_*.cache``), keyed by the
template's name and path and checked against its source: an edited or overriding template is
compiled again. A cache that cannot be used is skipped, never an error.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clinicbot import escape
from clinicbot.errors import ConfigError
from clinicbot.reports.common import format_hours

if TYPE_CHECKING:
    import jinja2

BYTECODE_PATTERN = "__clinicbot_jinja2_%s.cache"


def builtin_templates_dir() -> Path:
    """``templates/`` of the repository, installed as the data package ``clinicbot.templates``."""
    from importlib.util import find_spec

    spec = find_spec("clinicbot.templates")
    if spec is not None and spec.origin:  # a package directory (as installed): no importlib.resources
        return Path(spec.origin).parent
    from importlib import resources

    return Path(str(resources.files("clinicbot.templates")))


def bytecode_cache() -> "jinja2.BytecodeCache | None":
    """Jinja2's file cache of compiled templates, or None when its directory cannot be used."""
    import jinja2

    class QuietCache(jinja2.FileSystemBytecodeCache):
        def load_bytecode(self, bucket: "jinja2.bccache.Bucket") -> None:
            try:
                super().load_bytecode(bucket)
            except Exception:  # noqa: BLE001 (unreadable or damaged, whatever the error: compiled again)
                bucket.reset()

        def dump_bytecode(self, bucket: "jinja2.bccache.Bucket") -> None:
            try:
                super().dump_bytecode(bucket)
            except OSError:  # a full or read-only disk costs a compile, nothing else
                pass

    try:
        return QuietCache(pattern=BYTECODE_PATTERN)
    except (OSError, RuntimeError):  # no usable temporary directory (not ours, wrong mode)
        return None


def duration(value: Any) -> str:
    """Seconds or a timedelta -> '3d 4h', '5h 10m', '12m' (the reports' one unit system:
    :func:`clinicbot.reports.common.format_hours`); None -> '?'."""
    if value is None:
        return "?"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    return format_hours(max(0.0, seconds) / 3600)


def when(value: Any) -> str:
    """A datetime as '2026-11-22 09:00 UTC'."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M %Z").strip()
    return str(value)


def make_environment(templates_dir: str | Path | None = None) -> "jinja2.Environment":
    import jinja2

    loaders: list[jinja2.BaseLoader] = []
    if templates_dir is not None:
        loaders.append(jinja2.FileSystemLoader(str(templates_dir)))
    loaders.append(jinja2.FileSystemLoader(str(builtin_templates_dir())))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2", "html"), default_for_string=False,
                                            default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        finalize=escape.finalize,
        bytecode_cache=bytecode_cache(),
    )
    env.filters.update(
        remarkup=escape.remarkup,
        remarkup_cell=escape.remarkup_cell,
        taskref=escape.taskref,
        term=escape.term,
        html=escape.html,
        chat=escape.chat,
        plain=escape.plain,
        md=escape.markdown,
        header=escape.header,
        one_line=escape.one_line,
        duration=duration,
        when=when,
    )
    return env


class Templates:
    """Renders named templates; ``first_of`` picks the first that exists (slug, then ``_default``)."""

    def __init__(self, templates_dir: str | Path | None = None):
        self.templates_dir = Path(templates_dir) if templates_dir else None
        self._env: jinja2.Environment | None = None

    @property
    def env(self) -> "jinja2.Environment":
        """The Jinja2 environment, made (and Jinja2 imported) when a template is first needed."""
        if self._env is None:
            self._env = make_environment(self.templates_dir)
        return self._env

    def exists(self, name: str) -> bool:
        import jinja2

        try:
            self.env.get_template(name)
        except jinja2.TemplateNotFound:
            return False
        return True

    def first_of(self, *names: str) -> str:
        for name in names:
            if self.exists(name):
                return name
        raise ConfigError(str(self.templates_dir or builtin_templates_dir()), None,
                          f"none of the templates {', '.join(names)} exists")

    def render(self, name: str, **context: Any) -> str:
        import jinja2

        try:
            template = self.env.get_template(name)
        except jinja2.TemplateNotFound:
            raise ConfigError(str(self.templates_dir or builtin_templates_dir()), None,
                              f"template {name} not found") from None
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(exc.filename or name, None, f"template syntax error: {exc.message}",
                              line=exc.lineno) from None
        try:
            return template.render(**context).strip() + "\n"
        except jinja2.UndefinedError as exc:
            raise ConfigError(template.filename or name, None,
                              f"template uses an undefined value: {exc.message}") from None
