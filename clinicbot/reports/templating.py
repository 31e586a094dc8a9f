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
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2

from clinicbot import escape
from clinicbot.errors import ConfigError
from clinicbot.reports.common import format_hours


def builtin_templates_dir() -> Path:
    """``templates/`` of the repository, installed as the data package ``clinicbot.templates``."""
    from importlib import resources

    return Path(str(resources.files("clinicbot.templates")))


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


def make_environment(templates_dir: str | Path | None = None) -> jinja2.Environment:
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
        self.env = make_environment(self.templates_dir)

    def exists(self, name: str) -> bool:
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
