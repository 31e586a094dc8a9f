"""The metrics page: self-contained HTML with inline SVG charts, rendered by headless Chromium.

The screenshot is checked with a tiny PNG decoder (zlib + the five PNG row filters) so no image
library is needed; nothing binary is kept in the repository.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from dataclasses import replace
from pathlib import Path

import pytest

from clinicbot.metrics import compute_metrics
from clinicbot.reports.render import render
from clinicbot.reports.metrics_page import build_metrics_report
from tests.test_metrics import ALICE, BOB, D, H, NOW, ev, snapshot, task

CHROMIUM = "/usr/bin/chromium"
EVIL = "@alice {F1} <script>alert(1)</script> <!channel> **bold**"


def page_data(history: int = 5):
    tasks = [replace(task(1, created=NOW - 5 * D, priority=100), title=EVIL),
             task(2, created=NOW - 40 * D, closed=NOW - 3 * D), task(3, created=NOW - 12 * D, points=None),
             task(4, created=NOW - 70 * D, priority=90)]
    snap = snapshot(tasks, {1: [ev("commented", NOW - 5 * D + 3 * H, ALICE, text="ok")],
                            3: [ev("commented", NOW - 11 * D, BOB, text="hm")]})
    m = compute_metrics(snap, on_duty=lambda at: ["alice", "bob"])
    hist = [{"now": (NOW - i * D).isoformat(), "backlog": 3 + i % 2,
             "unbreak_response": {"median": 2 + i, "p90": 5 + i}, "review_response": {"median": None, "p90": None}}
            for i in range(history, 0, -1)]
    return build_metrics_report(m, team="Core <Team>", history=hist, sla_hours={"unbreak_now": 4, "review": 72})


def test_page_is_self_contained_with_svg_charts():
    html = render(page_data(), "html")
    assert html.count("<svg") == 6 and html.count('class="chart"') == 6
    for external in ("<script", "<link", "@import", "src=", "url("):
        assert external not in html
    assert "@media print" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the title, as text
    assert "Core &lt;Team&gt;" in html
    assert "<polyline" in html and "<rect" in html
    assert "n/a" in html  # the empty review statistics


def test_page_with_no_data_at_all_renders():
    data = build_metrics_report(compute_metrics(snapshot([], {})), team="Core")
    html = render(data, "html")
    assert html.count("<svg") == 6 and html.count("not enough data yet") >= 3


def charts_of(html: str) -> dict[str, str]:
    """Each chart's SVG by its title."""
    return {m.group(1): m.group(0) for m in re.finditer(r"<svg [^>]*><title>([^<]+)</title>.*?</svg>", html, re.S)}


def test_on_a_first_run_the_response_charts_say_not_enough_data_yet():
    """One computation, no history: a single point per response chart is no trend (it used to be an
    empty frame with a lone SLA line). The numbers themselves are in the tables."""
    charts = charts_of(render(page_data(history=0), "html"))
    for title in ("Incoming tasks: time to first team response", "Unbreak Now!: time to first team response",
                  "Outside review requests: time to first team response"):
        assert "not enough data yet" in charts[title] and "<polyline" not in charts[title]
    assert "not enough data yet" not in charts["Open tasks (backlog)"]  # reconstructed from dates
    # With a few days of history the lines are drawn.
    charts = charts_of(render(page_data(history=5), "html"))
    assert "<polyline" in charts["Unbreak Now!: time to first team response"]


# --------------------------------------------------------------------------------------------
# A tiny PNG reader


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of raw pixel bytes) of an 8-bit RGB/RGBA, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert header is not None
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, rows


def test_png_reader_on_a_handmade_image():
    # 2x2 RGB, rows filtered with "none" and "sub": red, green / blue, white.
    raw = b"\x00" + bytes([255, 0, 0, 0, 255, 0]) + b"\x01" + bytes([0, 0, 255, 255, 255, 0])
    ihdr = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    w, h, rows = png_pixels(png)
    assert (w, h) == (2, 2)
    assert rows == [bytes([255, 0, 0, 0, 255, 0]), bytes([0, 0, 255, 255, 255, 255])]


@pytest.mark.skipif(not Path(CHROMIUM).exists() or shutil.which("chromium") is None,
                    reason="headless Chromium is not installed (Debian package 'chromium'; .ci/run installs it)")
def test_page_renders_in_headless_chromium(tmp_path):
    page = tmp_path / "index.html"
    page.write_text(render(page_data(), "html"), encoding="utf-8")
    shot = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,1600",
           page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, timeout=60)
    assert shot.exists(), proc.stderr.decode(errors="replace")[-2000:]
    width, height, rows = png_pixels(shot.read_bytes())
    assert (width, height) == (1280, 1600)
    bpp = len(rows[0]) // width
    colours = {row[i:i + 3] for row in rows[::4] for i in range(0, len(row), bpp * 4)}
    assert len(colours) > 20, "the screenshot is (nearly) blank"
    # The charts' colours are on the page: the first series' blue (#1f6fb2) somewhere near the top.
    blue = bytes([0x1F, 0x6F, 0xB2])
    assert any(blue in bytes(b for i in range(0, len(row), bpp) for b in row[i:i + 3]) for row in rows[:900])
    assert re.search(rb"IEND", shot.read_bytes())


PROBE = ("<script>document.body.setAttribute('data-probe', [window.innerWidth, document.documentElement.scrollWidth]"
         ".concat(Array.from(document.querySelectorAll('svg.chart')).map(s => Math.round(s.getBoundingClientRect()"
         ".width))).join(','));</script></body>")


@pytest.mark.skipif(not Path(CHROMIUM).exists() or shutil.which("chromium") is None,
                    reason="headless Chromium is not installed (Debian package 'chromium'; .ci/run installs it)")
def test_charts_fit_a_narrow_window_and_fill_a_wide_one(tmp_path):
    """The charts used to be 560 px wide in a grid of 560 px columns: wider than a small window.
    A copy of the page with a probe script reports the viewport, the page's width and each chart's."""
    page = tmp_path / "probe.html"
    page.write_text(render(page_data(), "html").replace("</body>", PROBE), encoding="utf-8")
    seen = {}
    for width in (500, 1400):  # headless Chromium's smallest window is 500 px wide
        cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={width},900", "--dump-dom", page.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, timeout=60)
        found = re.search(rb'data-probe="([\d,]+)"', proc.stdout)
        assert found, proc.stderr.decode(errors="replace")[-2000:]
        viewport, page_width, *charts = (int(v) for v in found.group(1).split(b","))
        assert len(charts) == 6 and page_width <= viewport, (width, viewport, page_width)
        assert all(w <= viewport - 20 for w in charts)
        seen[width] = charts
    assert min(seen[1400]) > max(seen[500])  # wider where there is room (not a fixed 560 px)
