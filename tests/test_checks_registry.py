"""The registry: built-ins, plugins (entry points), custom checks by dotted path, and run_checks."""

from __future__ import annotations

import logging
import re
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from checkdata import ALICE, SnapshotBuilder, at, days, hours
from clinicbot.checks import (
    BUILTIN_CHECK_CLASSES,
    BUILTIN_SLUGS,
    ENTRY_POINT_GROUP,
    CheckContext,
    Finding,
    RunResult,
    TeamSettings,
    builtin_checks,
    context_factory,
    load_checks,
    load_checks_and_settings,
    plugin_checks,
    run_checks,
)
from clinicbot.checks.registry import FunctionCheck, import_object
from clinicbot.errors import ConfigError

ROOT = Path(__file__).parent.parent
NOW = at("2024-05-08 12:00")

PLUGIN_SOURCE = '''
from clinicbot.checks.base import Finding


def overdue(ctx):
    """Tasks whose title says OVERDUE."""
    return [Finding("overdue", t.phid, t.id, "warning", f"{t.monogram} is overdue", {"limit": ctx.settings.get("limit")})
            for t in ctx.snapshot.tasks.values() if "OVERDUE" in t.title]


def explode(ctx):
    raise RuntimeError("the custom check\\nbroke")


def strict(ctx):
    return []
strict.defaults = {"limit": 3}


def bad_severity(ctx):
    return [Finding("bad", None, None, "urgent!!", "nope")]


def not_a_list(ctx):
    return None


class Counting:
    slug = "counting"
    description = "Counts open tasks."
    defaults = {"at_least": 1}

    def run(self, ctx):
        n = sum(1 for t in ctx.snapshot.tasks.values() if t.is_open)
        if n < ctx.settings["at_least"]:
            return []
        return [Finding(self.slug, None, None, "info", f"{n} open tasks", {"count": n})]


class FakeUntriaged:
    slug = "untriaged"
    description = "impostor"
    defaults = {}

    def run(self, ctx):
        return []
'''


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    (tmp_path / "myclinic_checks.py").write_text(PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "myclinic_checks"
    import sys

    sys.modules.pop("myclinic_checks", None)


def _snapshot():
    sb = SnapshotBuilder(NOW)
    inbox = sb.column("Team", "inbox")
    sb.task(1, created=NOW - days(3), columns=[inbox], title="OVERDUE report")
    sb.task(2, created=NOW - days(3), columns=[inbox], title="Other")
    sb.task(3, created=NOW - hours(1), columns=[inbox], title="Fresh")
    return sb.build()


def _run(section, **kw):
    checks, settings = load_checks_and_settings(section, plugins=False)
    enabled = [c for c in checks if settings[c.slug].enabled]
    return run_checks(enabled, context_factory(_snapshot(), settings), **kw)


# -- built-ins ---------------------------------------------------------------------------------------


def test_builtins_load_without_entry_points_and_implement_the_protocol():
    checks = builtin_checks()
    assert [c.slug for c in checks] == list(BUILTIN_SLUGS) == [cls.slug for cls in BUILTIN_CHECK_CLASSES]
    assert len(set(BUILTIN_SLUGS)) == len(BUILTIN_SLUGS) >= 9
    for c in checks:
        assert c.description and isinstance(c.defaults, dict) and callable(c.run)
    # even with no plugins at all (package not reinstalled), the built-ins are there
    assert [c.slug for c in load_checks(None, entry_points=[])] == list(BUILTIN_SLUGS)


def _docs_checks_table() -> list[str]:
    """The slugs of docs/checks.md's "The checks" table, in its order."""
    text = (ROOT / "docs" / "checks.md").read_text()
    section = text.split("## The checks", 1)[1].split("\n\n", 2)[1]
    return re.findall(r"^\| `([a-z0-9-]+)` \|", section, flags=re.M)


def test_docs_list_exactly_the_builtins_in_registry_order():
    # BUILTIN_CHECK_CLASSES is the one list: a built-in added there without docs (or docs for a
    # check that is gone) fails here, with no slug list of its own in this test
    assert _docs_checks_table() == list(BUILTIN_SLUGS)
    facts = (ROOT / "docs" / "checks.md").read_text().split("| Check | Further facts |", 1)[1].split("\n## ", 1)[0]
    assert sorted({s for s in re.findall(r"`([a-z0-9-]+)`", facts) if s in BUILTIN_SLUGS}) == sorted(BUILTIN_SLUGS)


def test_docs_table_parser_sees_what_it_should():
    # guards the test above against passing vacuously (empty table, both sides wrong together)
    assert _docs_checks_table()[:2] == ["unbreak-now", "untriaged"]


def test_pyproject_does_not_repeat_the_builtins():
    # built-ins are loaded from BUILTIN_CHECK_CLASSES; the entry-point group is for plugins only
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("entry-points", {})
    assert not set(table.get(ENTRY_POINT_GROUP, {})) & set(BUILTIN_SLUGS)


# -- custom checks by dotted path -------------------------------------------------------------------


def test_custom_check_by_dotted_path_runs(plugin_module):
    result = _run({"overdue": {"path": f"{plugin_module}:overdue", "limit": 9, "handlers": ["chat"]}})
    assert result.ok and "overdue" in result.ran
    overdue = [f for f in result.findings if f.slug == "overdue"]
    assert [f.key for f in overdue] == ["overdue:T1"] and overdue[0].facts == {"limit": 9}
    # and the built-ins ran alongside
    assert {f.key for f in result.findings if f.slug == "untriaged"} == {"untriaged:T1", "untriaged:T2"}


def test_custom_check_description_from_docstring_and_settings(plugin_module):
    checks, settings = load_checks_and_settings({"overdue": {"path": f"{plugin_module}.overdue"}}, plugins=False)
    custom = checks[-1]
    assert isinstance(custom, FunctionCheck) and custom.description == "Tasks whose title says OVERDUE."
    assert settings["overdue"].path == f"{plugin_module}.overdue" and settings["overdue"].handlers == ("console",)


def test_custom_class_by_path_keeps_its_slug_and_defaults(plugin_module):
    result = _run({"counting": {"path": f"{plugin_module}:Counting", "at_least": 2}})
    assert [f.key for f in result.findings if f.slug == "counting"] == ["counting:-"]
    with pytest.raises(ConfigError) as info:
        _run({"counting": {"path": f"{plugin_module}:Counting", "at_most": 2}})
    assert info.value.key == "checks.counting.at_most"
    with pytest.raises(ConfigError) as info:
        _run({"counting": {"path": f"{plugin_module}:Counting", "at_least": "two"}})
    assert info.value.key == "checks.counting.at_least"


def test_custom_function_with_declared_defaults_is_validated(plugin_module):
    with pytest.raises(ConfigError) as info:
        _run({"strict": {"path": f"{plugin_module}:strict", "limt": 3}})
    assert info.value.key == "checks.strict.limt"


def test_a_raising_check_does_not_stop_the_others(plugin_module, caplog):
    with caplog.at_level(logging.ERROR, logger="clinicbot.checks.registry"):
        result = _run({"explode": {"path": f"{plugin_module}:explode"}, "overdue": {"path": f"{plugin_module}:overdue"}})
    assert isinstance(result, RunResult) and not result.ok
    assert [(f.slug, f.error) for f in result.failures] == [("explode", "RuntimeError: the custom check broke")]
    assert result.ran.index("explode") < result.ran.index("overdue")
    assert {f.slug for f in result.findings} == {"untriaged", "overdue"}
    assert "check explode failed" in caplog.text and "Traceback" in caplog.text


@pytest.mark.parametrize("name, message", [
    ("bad_severity", "ValueError: returned severity 'urgent!!'; use one of info, warning, critical"),
    ("not_a_list", "TypeError: returned NoneType, not a list of Finding"),
])
def test_malformed_results_are_failures(plugin_module, name, message):
    result = _run({name: {"path": f"{plugin_module}:{name}"}})
    assert [(f.slug, f.error) for f in result.failures] == [(name, message)]


@pytest.mark.parametrize("path", ["nosuchmodule_xyz:f", "myclinic_checks:nosuch", "justaname", ""])
def test_unloadable_path_is_a_config_error(plugin_module, path):
    with pytest.raises(ConfigError) as info:
        load_checks({"mine": {"path": path}}, plugins=False)
    assert info.value.key == "checks.mine.path"


def test_custom_check_cannot_take_a_builtin_slug(plugin_module):
    with pytest.raises(ConfigError) as info:
        load_checks({"untriaged": {"path": f"{plugin_module}:overdue"}}, plugins=False)
    assert info.value.key == "checks.untriaged.path"


def test_unknown_slug_error_lists_custom_checks_too(plugin_module):
    with pytest.raises(ConfigError) as info:
        load_checks({"overdue": {"path": f"{plugin_module}:overdue"}, "nope": {}}, plugins=False)
    assert info.value.key == "checks.nope" and "overdue" in info.value.message and "untriaged" in info.value.message


# -- plugins (entry points) ----------------------------------------------------------------------------


def _ep(name, value):
    return EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


def test_plugins_from_entry_points(plugin_module, caplog):
    eps = [
        _ep("untriaged", "clinicbot.checks.triage:UntriagedCheck"),  # an older install's registration: skipped
        _ep("untriaged", f"{plugin_module}:FakeUntriaged"),  # a plugin claiming a built-in slug: ignored
        _ep("overdue", f"{plugin_module}:overdue"),
        _ep("counting", f"{plugin_module}:Counting"),
        _ep("broken", "nosuchmodule_xyz:check"),  # logged and skipped
        _ep("overdue", f"{plugin_module}:strict"),  # duplicate slug: ignored
    ]
    with caplog.at_level(logging.WARNING):
        checks = plugin_checks(eps)
    assert [c.slug for c in checks] == ["overdue", "counting"]
    assert "cannot load check plugin broken" in caplog.text and "slug of a built-in" in caplog.text
    loaded = load_checks({"counting": {"enabled": False}}, entry_points=eps)
    assert [c.slug for c in loaded] == list(BUILTIN_SLUGS) + ["overdue"]
    assert [c.slug for c in load_checks({"counting": False}, entry_points=eps, include_disabled=True)][-1] == "counting"


def test_installed_entry_points_are_read():
    # whatever is installed, loading must not fail and the built-ins come first, once each
    slugs = [c.slug for c in load_checks(None)]
    assert slugs[: len(BUILTIN_SLUGS)] == list(BUILTIN_SLUGS) and len(set(slugs)) == len(slugs)


# -- run_checks: narrowing -----------------------------------------------------------------------------


def test_only_one_slug_and_one_task():
    result = _run(None, only="untriaged")
    assert result.ran == ["untriaged"] and {f.key for f in result.findings} == {"untriaged:T1", "untriaged:T2"}
    result = _run(None, task_id=2)
    assert [f.key for f in result.findings] == ["untriaged:T2"] and len(result.ran) == len(BUILTIN_SLUGS)
    with pytest.raises(ConfigError) as info:
        _run(None, only="untriage")
    assert info.value.key == "--only" and "untriaged" in info.value.message


def test_disabled_checks_do_not_run():
    result = _run({"untriaged": {"enabled": False}})
    assert "untriaged" not in result.ran and not [f for f in result.findings if f.slug == "untriaged"]


def test_findings_get_the_checks_slug_and_duplicates_are_dropped():
    class Sloppy:
        slug = "sloppy"
        description = "returns the same finding twice under another slug"
        defaults: dict = {}

        def run(self, ctx):
            f = Finding("other", "PHID-TASK-1", 1, "info", "x")
            return [f, f]

    result = run_checks([Sloppy()], context_factory(_snapshot()))
    assert [f.key for f in result.findings] == ["sloppy:T1"]


def test_context_factory_gives_each_check_its_settings_and_business_hours():
    checks, settings = load_checks_and_settings({"untriaged": {"hours": 1, "business_hours": True}}, plugins=False)
    team = TeamSettings(timezone="Europe/Berlin", meeting_weekday="mon", meeting_time="10:00")
    make = context_factory(_snapshot(), settings, team=team, rotation="ROT")
    by_slug = {c.slug: c for c in checks}
    ctx = make(by_slug["untriaged"])
    assert isinstance(ctx, CheckContext) and ctx.now == NOW and ctx.rotation == "ROT"
    assert ctx.settings == {"hours": 1} and ctx.business_hours is team.business_hours
    assert make(by_slug["unprioritised"]).business_hours is None
    meeting = make(by_slug["triage-meeting-leftovers"]).settings
    assert meeting["meeting_weekday"] == "mon" and meeting["timezone"] == "Europe/Berlin"


def test_a_failing_context_is_a_failure_of_that_check_only():
    def make(check):
        if check.slug == "untriaged":
            raise KeyError("no settings")
        return context_factory(_snapshot())(check)

    result = run_checks(builtin_checks(), make)
    assert [f.slug for f in result.failures] == ["untriaged"] and result.failures[0].error == "KeyError: 'no settings'"
    assert len(result.ran) == len(BUILTIN_SLUGS)


def test_owner_names_resolve_in_findings():
    sb = SnapshotBuilder(NOW)
    sb.task(1, created=NOW - days(20), owner=ALICE, columns=[sb.column("Team", "doing")])
    result = run_checks(builtin_checks(), context_factory(sb.build()), only="stale-in-progress")
    assert result.findings[0].facts["owner"] == "alice"
