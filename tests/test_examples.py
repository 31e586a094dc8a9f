"""The shipped examples stay valid and in step."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from clinicbot.config import load_config
from clinicbot.jobs.demo import example_rotation_text
from clinicbot.rotation import load_rotation, validate

ROOT = Path(__file__).parent.parent


def test_example_config_loads():
    cfg = load_config(ROOT / "clinicbot.example.yaml")
    assert [b.project for b in cfg.boards][0] == "Core Platform Team"


def test_packaged_rotation_is_the_example_and_validates():
    assert example_rotation_text() == (ROOT / "rotation.yaml").read_text()
    rot = load_rotation(ROOT / "templates" / "examples" / "rotation.yaml")
    validate(rot, datetime(2026, 11, 22, tzinfo=timezone.utc))


def test_the_example_configs_commented_sections_load_when_uncommented(tmp_path):
    """The commented-out checks:/reports: examples are real settings: uncommented, they validate."""
    text = (ROOT / "clinicbot.example.yaml").read_text()
    head, commented = text.split("# checks:", 1)
    lines = ("# checks:" + commented).splitlines()
    body = "\n".join(line[2:] if line.startswith("# ") else "" for line in lines)
    (tmp_path / "clinicbot.yaml").write_text(head + body + "\n")
    (tmp_path / "rotation.yaml").write_text((ROOT / "rotation.yaml").read_text())
    cfg = load_config(tmp_path / "clinicbot.yaml")
    assert {"review-migration", "untag-candidate", "untriaged"} <= set(cfg.section("checks"))
    assert cfg.section("reports")["agenda"] == {"lists": ["untag-candidate"]}
