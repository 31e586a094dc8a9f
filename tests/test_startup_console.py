"""The App's console (issue 12, start-up): plain output without importing rich's console, byte for byte
what rich writes. Compared with rich itself on many strings, widths and print() options."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys

import pytest
from rich.console import Console

from clinicbot.jobs.console import LazyConsole, wrap

TOKENS = ["a", "bc", " ", "  ", "x.y", "-", "[bold]", "[/bold]", "[/]", "\\[", "[red]", "[link=http://x/T1]",
          "[", "]", ":", ":smile:", ":100:", "09:30:00", "é", "中", "😀", "\u200b", "\t", "\r", "\x1b", "\n",
          "word", "longerwordthanthewidth"]


def sample(rng: random.Random) -> tuple[str, dict]:
    if rng.random() < 0.5:
        text = "".join(rng.choice("abc xyz-09.,;!?'\"()/<>{}=+*&%$#@~`|") for _ in range(rng.choice([0, 3, 7, 40, 79, 80, 81, 200])))
    else:
        text = "".join(rng.choice(TOKENS) for _ in range(rng.choice([1, 4, 20, 60])))
    kwargs: dict = {}
    for key in ("markup", "highlight", "emoji", "soft_wrap"):
        pick = rng.random()
        if pick < 0.33:
            kwargs[key] = True
        elif pick < 0.66:
            kwargs[key] = False
    if rng.random() < 0.5:
        kwargs["end"] = rng.choice(["", "\n", " ", "\n\n"])
    return text, kwargs


def written(make, text: str, kwargs: dict) -> tuple[str, type | None]:
    out, saved = io.StringIO(), sys.stdout
    sys.stdout = out
    try:
        make().print(text, **kwargs)
    except Exception as exc:  # rich's MarkupError must stay rich's
        return out.getvalue(), type(exc)
    finally:
        sys.stdout = saved
    return out.getvalue(), None


@pytest.mark.parametrize("columns", ["1", "7", "40", "80", "200"])
def test_prints_exactly_what_rich_prints(monkeypatch, columns):
    for var in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR", "TERM"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COLUMNS", columns)
    rng = random.Random(int(columns))
    plain = 0
    for _ in range(1500):
        text, kwargs = sample(rng)
        consoles: list[LazyConsole] = []

        def lazy() -> LazyConsole:
            consoles.append(LazyConsole())
            return consoles[-1]

        assert written(lazy, text, kwargs) == written(Console, text, kwargs), (text, kwargs)
        plain += consoles[0]._rich is None
    assert plain > 500  # most of them printed without rich's console


def test_wrap_is_rich_word_division():
    assert wrap("aaa bbb ccc", 7) == "aaa bbb\nccc"
    assert wrap("aaa bbb  ccc", 8) == "aaa bbb \nccc"
    assert wrap("abcdefghij", 4) == "abcd\nefgh\nij"
    assert wrap("x\n\ny", 3) == "x\n\ny"


def test_a_terminal_gets_rich(monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    console = LazyConsole()
    assert console.is_terminal
    out, saved = io.StringIO(), sys.stdout
    sys.stdout = out
    try:
        console.print("[bold]x[/bold]")
    finally:
        sys.stdout = saved
    assert console._rich is not None and "\x1b[" in out.getvalue()  # styled, by rich


def test_other_attributes_and_renderables_go_to_rich(monkeypatch):
    from rich.table import Table

    monkeypatch.delenv("FORCE_COLOR", raising=False)
    console = LazyConsole()
    assert console.width == Console().width and console._rich is not None
    table = Table("a")
    table.add_row("1")
    assert written(LazyConsole, table, {}) == written(Console, table, {})


def test_plain_output_imports_no_rich_console():
    code = ("import sys\nfrom clinicbot.jobs.console import LazyConsole\nc = LazyConsole()\n"
            "c.print('sync incremental since 2026-12-01 23:05:00Z: 2 task(s) fetched ' * 3, markup=False)\n"
            "c.print('[bold]Digest[/bold] \\\\[x] é', soft_wrap=True, end='')\n"
            "import json; print(json.dumps(sorted(sys.modules)), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    modules = set(json.loads(proc.stderr.strip().splitlines()[-1]))
    assert "rich.console" not in modules
    assert proc.stdout.endswith("Digest [x] é") and proc.stdout.count("\n") == 3  # wrapped at 80, as rich does


def test_a_checks_plain_line_keeps_emoji_codes_from_task_text_literal(monkeypatch):
    from clinicbot.cli.checks import _line

    monkeypatch.delenv("FORCE_COLOR", raising=False)
    app = type("FakeApp", (), {"console": LazyConsole()})()
    out, saved = io.StringIO(), sys.stdout
    sys.stdout = out
    try:
        _line(app, "[warning] stale: T1 :bug: in the :100: list")  # task text is data
    finally:
        sys.stdout = saved
    assert out.getvalue() == "[warning] stale: T1 :bug: in the :100: list\n"
    assert app.console._rich is None  # and no rich console for it
