"""Start-up (issue 12): check plugins are looked for with a quick look at the installed
distributions' entry_points.txt; a distribution declaring one is still found and loaded."""

from __future__ import annotations

import sys
import zipfile

from clinicbot.checks.registry import ENTRY_POINT_GROUP, may_have_plugins, plugin_checks

PLUGIN = '''
def check(ctx):  # a function check: its slug is the entry point's name
    return []
'''


def install(site, name: str, entry_points: str) -> None:
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)


def test_no_distribution_declaring_the_group_means_no_scan(tmp_path, monkeypatch):
    install(tmp_path, "other", "[console_scripts]\nother = other:main\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    assert may_have_plugins(ENTRY_POINT_GROUP) is False
    assert may_have_plugins("console_scripts") is True

    def scan(**kwargs):
        raise AssertionError("every distribution built and read")

    monkeypatch.setattr("clinicbot.checks.registry.metadata.entry_points", scan)
    assert plugin_checks() == []


def test_an_installed_plugin_is_found_and_loaded(tmp_path, monkeypatch):
    (tmp_path / "quick_look_plugin.py").write_text(PLUGIN)
    install(tmp_path, "quick_look_plugin", f"[{ENTRY_POINT_GROUP}]\nquick-look-plugin = quick_look_plugin:check\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    assert may_have_plugins(ENTRY_POINT_GROUP) is True
    assert [c.slug for c in plugin_checks()] == ["quick-look-plugin"]


def test_what_the_quick_look_cannot_see_through_is_scanned(tmp_path, monkeypatch):
    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("x-1.0.dist-info/entry_points.txt", f"[{ENTRY_POINT_GROUP}]\n")
    monkeypatch.setattr(sys, "path", [str(archive)])
    assert may_have_plugins(ENTRY_POINT_GROUP) is True  # a zip on sys.path: importlib.metadata decides
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    (tmp_path / "old.egg").mkdir()
    assert may_have_plugins(ENTRY_POINT_GROUP) is True
