"""Delivery targets: one class per kind, found by kind in a registry; a new target is one class + a template."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from clinicbot.delivery.targets import (
    TARGET_KINDS,
    Deliverer,
    ReportSettings,
    Run,
    Target,
    TargetKind,
    parse_target,
    register_target,
)
from clinicbot.errors import ConfigError
from clinicbot.reports.digest import build_digest
from clinicbot.state.ledger import Ledger
from tests.test_actions import FakeChat
from tests.test_reports import board_snapshot
from tests.test_metrics import NOW

DELIVERY = Path(__file__).resolve().parent.parent / "clinicbot" / "delivery"


def test_every_target_kind_is_a_registered_class():
    assert list(TARGET_KINDS) == ["stdout", "file", "email", "chat", "task", "wiki"]
    for kind, cls in TARGET_KINDS.items():
        assert issubclass(cls, TargetKind) and cls.kind == kind
    assert parse_target("task:42") == Target("task", "T42")
    assert parse_target("FILE:out.md") == Target("file", "out.md")
    for bad in ("sms", "file:", "task:abc", "chat:room", "stdout:x"):
        with pytest.raises(ConfigError, match="use stdout, file:PATH, email, chat, task:T123 or wiki"):
            parse_target(bad)


def test_delivery_neither_imports_click_nor_branches_on_the_target_kind():
    for path in sorted(DELIVERY.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(n.split(".")[0] == "click" for n in names), f"{path.name} imports click"
            if isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute) and node.left.attr == "kind":
                if isinstance(node.left.value, ast.Name) and node.left.value.id == "target":
                    pytest.fail(f"{path.name}:{node.lineno} branches on target.kind; add a TargetKind class")


@pytest.fixture
def pager_target():
    """A new kind of target, declared in one class: a pager channel with a template format of its own."""

    @register_target
    class PagerTarget(TargetKind):
        kind, syntax = "pager", "pager"

        def plan(self, run: Run, target: Target) -> None:
            run.messages.append((target, run.outbox.chat(run.render("pager"), run.key(target))))

    yield PagerTarget
    del TARGET_KINDS["pager"]


def test_a_new_target_is_one_class_and_a_template(pager_target, tmp_path):
    templates = tmp_path / "templates"
    (templates / "reports").mkdir(parents=True)
    (templates / "reports" / "digest.pager.j2").write_text("PAGE {{ r.team }}: {{ r.kind }} for {{ r.date }}\n")
    data = build_digest(board_snapshot(), team="Core", findings=[])
    chat = FakeChat()
    with Ledger.open(tmp_path / "state") as ledger:
        deliverer = Deliverer(None, ledger, ReportSettings(), apply=True, cap=5, now=NOW, templates_dir=templates,
                              chat_sender=chat)
        results = deliverer.deliver(data, [parse_target("pager")])
        again = deliverer.deliver(data, [parse_target("pager")])
    assert chat.sent == [f"PAGE Core: digest for {data['date']}\n"]
    assert [(r.target, r.status, r.key) for r in results] == [("pager", "posted", f"digest:{data['date']}:pager")]
    assert [r.status for r in again] == ["skipped"]  # the outbox's idempotency key: never twice
    assert "pager" in str(pytest.raises(ConfigError, parse_target, "pagr").value)


def test_stdout_in_a_file_format_is_echoed_as_is(tmp_path):
    data = build_digest(board_snapshot(), team="Core", findings=[])
    printed: list[str] = []
    with Ledger.open(tmp_path) as ledger:
        deliverer = Deliverer(None, ledger, ReportSettings(), apply=False, cap=5, now=NOW, echo=printed.append,
                              print_term=lambda text: pytest.fail("term printer used for json"))
        [result] = deliverer.deliver(data, [parse_target("stdout")], fmt="json")
    assert result.status == "printed" and printed and printed[0].startswith("{")
