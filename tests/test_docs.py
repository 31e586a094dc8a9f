"""The README stays true: the two set-up commands, every command, every exit code."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from clinicbot.cli import cli
from clinicbot.errors import EXIT_CAP, EXIT_CONDUIT, EXIT_CONFIG, EXIT_FAILURE, EXIT_OK

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def setup_commands() -> list[str]:
    first_block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert first_block, "README must open with a shell block"
    assert README.index(first_block.group(0)) < README.index("\n## "), "the set-up block comes first"
    return [line for line in first_block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_exactly_two_commands():
    commands = setup_commands()
    assert len(commands) == 2
    assert "clinicbot demo" in commands[0] and "pip install" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert setup_commands()[1] in ci.splitlines()


def _collected(*args: str, addopts: str = "") -> set[str]:
    env = {**os.environ, "PYTEST_ADDOPTS": addopts}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only", *args],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return {line.split("::")[-1] for line in out.stdout.splitlines() if "::" in line}


def test_slow_tests_are_deselected_by_default_and_run_in_ci():
    """The README's command leaves the `slow` tests out; .ci/run selects them again through PYTEST_ADDOPTS
    (read after pyproject's addopts, so its -m wins) without touching the command itself."""
    ci = (ROOT / ".ci" / "run").read_text()
    [export] = [line for line in ci.splitlines() if line.startswith("export PYTEST_ADDOPTS=")]
    ci_opts = shlex.split(export.split("=", 1)[1].strip('"'))
    marker = ci_opts[ci_opts.index("-m") + 1]
    target = "tests/test_sandbox_scenario.py"  # one slow test among quick ones
    default, in_ci = _collected(target), _collected(target, addopts=f"-m {shlex.quote(marker)}")
    assert "test_hundred_thousand_tasks" not in default and "test_small_sizes_keep_the_most_important_cases" in default
    assert in_ci == default | {"test_hundred_thousand_tasks"}
    # CI's selection keeps every real-Phorge test
    real = _collected("tests/phorge", addopts="-m phorge")
    assert real and real == _collected("tests/phorge", addopts=f"-m {shlex.quote(marker)}")


def test_every_command_is_documented():
    missing = [name for name in cli.commands if f"`clinicbot {name}" not in README]
    assert not missing, f"README lacks commands: {missing}"


def test_every_exit_code_is_documented():
    table = README.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    for code in (EXIT_OK, EXIT_FAILURE, EXIT_CONFIG, EXIT_CONDUIT, EXIT_CAP):
        assert f"| {code} |" in table


def test_readme_shows_the_bench_tables_of_docs_bench_md():
    """The README's Performance section holds the same generated block as docs/bench.md, and that block is
    what bench/table.py makes of bench/results/*.json (regenerate with `python3 bench/table.py`)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_table", ROOT / "bench" / "table.py")
    assert spec and spec.loader
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    bench = (ROOT / "docs" / "bench.md").read_text()
    assert table.BEGIN in bench and table.END in bench
    generated = bench[bench.index(table.BEGIN):bench.index(table.END) + len(table.END)]
    performance = README.split("\n## Performance\n", 1)[1].split("\n## ", 1)[0]
    assert generated in performance, "run `python3 bench/table.py` to copy the bench tables into the README"
    assert generated == table.block(table.load_results()), "run `python3 bench/table.py`: the tables are stale"
