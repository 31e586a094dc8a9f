"""The import rule of the house (README "Design decisions", /work/shared/DESIGN.md), read from the source.

    cli → jobs → {delivery, reports, checks, metrics, sync, phab, state, rotation} → {model, config, errors, escape, svg}

Every import counts, function-level ones and ``if TYPE_CHECKING:`` ones included: a lazy import is still a
dependency. Nothing imports cli; the sandbox imports nothing outside sandbox/ (only the demo job starts it);
and there is no import cycle between modules, nor between the packages of the middle layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "clinicbot"

BASE = {"errors", "model", "timeline", "escape", "svg", "stats", "config", ""}  # "" is clinicbot/__init__.py (the version)
MIDDLE = {"delivery", "reports", "checks", "metrics", "sync", "phab", "state", "rotation"}
LAYER = {**{c: 0 for c in BASE}, **{c: 1 for c in MIDDLE}, "jobs": 2, "scheduler": 3, "cli": 4}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """The clinicbot modules ``path`` imports, anywhere in the file."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "clinicbot")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "clinicbot":
                continue
            found.add(target)
            for alias in node.names:  # `from clinicbot.jobs import check` imports a module
                if (PACKAGE.parent / Path(*f"{target}.{alias.name}".split("."))).with_suffix(".py").exists():
                    found.add(f"{target}.{alias.name}")
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def violations(edges: dict[str, set[str]]) -> list[str]:
    problems = []
    for src, targets in edges.items():
        a = component(src)
        for dst in sorted(targets):
            b = component(dst)
            if a == b:
                continue
            if a == "sandbox":
                problems.append(f"{src} imports {dst}: the sandbox imports nothing from the rest")
            elif b == "sandbox":
                if src != "clinicbot.jobs.demo":
                    problems.append(f"{src} imports {dst}: only the demo job starts the sandbox")
            elif b == "cli":
                problems.append(f"{src} imports {dst}: nothing imports cli")
            elif a not in LAYER or b not in LAYER:
                problems.append(f"{src} imports {dst}: {a or b!r} has no place in the import rule; add it")
            elif LAYER[b] > LAYER[a]:
                problems.append(f"{src} imports {dst}: layer {a!r} may not import the layer above it ({b!r})")
    return problems


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in edges:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                found.append(sorted(scc))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_every_import_follows_the_rule():
    assert violations(graph()) == []


def test_no_module_imports_itself_through_others():
    # A package importing its own submodules from __init__ (re-exports) is not a cycle of the design.
    # The sandbox's own inside is its business (it only must not reach out: the rule above).
    edges = {src: {d for d in dsts if not (src.startswith(d + ".") and d in dsts)} for src, dsts in graph().items()
             if component(src) != "sandbox"}
    assert cycles(edges) == []


def test_the_packages_of_the_middle_layer_do_not_depend_on_each_other_in_a_circle():
    packages: dict[str, set[str]] = {}
    for src, dsts in graph().items():
        if component(src) in MIDDLE:
            packages.setdefault(component(src), set()).update(component(d) for d in dsts if component(d) in MIDDLE
                                                              and component(d) != component(src))
    assert cycles(packages) == []


# The rule test must be able to fail: each kind of violation it knows is caught.
@pytest.mark.parametrize("src, dst, says", [
    ("clinicbot.model", "clinicbot.phab.history", "layer 'model' may not import"),
    ("clinicbot.reports.digest", "clinicbot.jobs.reports", "layer 'reports' may not import"),
    ("clinicbot.jobs.reports", "clinicbot.cli.reports", "nothing imports cli"),
    ("clinicbot.scheduler", "clinicbot.cli", "nothing imports cli"),
    ("clinicbot.sandbox.store", "clinicbot.model", "the sandbox imports nothing"),
    ("clinicbot.phab.boards", "clinicbot.sandbox", "only the demo job"),
    ("clinicbot.newthing", "clinicbot.model", "no place in the import rule"),
])
def test_the_rule_catches_each_kind_of_violation(src, dst, says):
    [problem] = violations({src: {dst}})
    assert says in problem


def test_cycles_are_found_including_through_a_function_level_import(tmp_path):
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    module = tmp_path / "clinicbot" / "x.py"
    module.parent.mkdir()
    module.write_text("def f():\n    from clinicbot.model import Task\n\nif False:\n    import clinicbot.errors\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "clinicbot"
    try:
        assert imports_of(module) == {"clinicbot.model", "clinicbot.errors"}
    finally:
        PACKAGE = saved
