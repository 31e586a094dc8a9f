"""Tiny inline-SVG charts for the metrics page: no scripts, no fonts, no external files.

Each function returns :class:`markupsafe.Markup` so an autoescaping template embeds it as
is. Every piece of text that goes into the SVG (labels, series names, titles) is escaped
here — that is what makes ``Markup`` honest. Numbers are formatted, never interpolated raw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from markupsafe import Markup, escape

PALETTE = ("#1f6fb2", "#d9822b", "#2e8540", "#8e44ad", "#c0392b", "#5d6d7e")
FONT = "font-family=\"sans-serif\" font-size=\"11\""


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]  # one per category; None = no value (a gap)
    dashed: bool = False
    connect: bool = False  # draw the line across None values (a sparse series, not a gap)


def _n(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))


def _nice_max(v: float) -> float:
    """A round upper bound for the y axis (1, 2, 2.5, 5 x 10^k) at or above ``v``."""
    if v <= 0:
        return 1.0
    k = 1.0
    while k * 10 < v:
        k *= 10
    while k > v * 10:
        k /= 10
    for m in (1, 2, 2.5, 5, 10):
        if k * m >= v:
            return k * m
    return k * 10


class _Frame:
    """Plot area geometry and the axes shared by the line and bar charts."""

    def __init__(self, width: int, height: int, ymax: float, left: int = 48, right: int = 12,
                 top: int = 28, bottom: int = 46):
        self.w, self.h = width, height
        self.x0, self.x1 = left, width - right
        self.y0, self.y1 = height - bottom, top  # y0: the baseline (bottom)
        self.ymax = _nice_max(ymax)

    def y(self, v: float) -> float:
        return self.y0 - (self.y0 - self.y1) * (v / self.ymax)

    def axes(self, categories: Sequence[str], xs: Sequence[float], y_label: str) -> list[str]:
        out = []
        for i in range(5):
            v = self.ymax * i / 4
            y = self.y(v)
            out.append(f'<line x1="{self.x0}" y1="{y:.1f}" x2="{self.x1}" y2="{y:.1f}" stroke="#ddd"/>')
            out.append(f'<text x="{self.x0 - 4}" y="{y + 4:.1f}" text-anchor="end" {FONT}>{_n(v)}</text>')
        out.append(f'<line x1="{self.x0}" y1="{self.y0}" x2="{self.x1}" y2="{self.y0}" stroke="#555"/>')
        step = max(1, len(categories) // 8)  # at most ~8 labels: readable at laptop width
        for i, (label, x) in enumerate(zip(categories, xs)):
            if i % step == 0 or i == len(categories) - 1:
                out.append(f'<text x="{x:.1f}" y="{self.y0 + 14}" text-anchor="middle" {FONT}>{escape(label)}</text>')
        if y_label:
            out.append(f'<text x="12" y="{self.y1 - 10}" {FONT}>{escape(y_label)}</text>')
        return out


def _svg(width: int, height: int, title: str, body: list[str], legend: Sequence[tuple[str, str, bool]] = ()) -> Markup:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>',
             f'<text x="{width / 2:.0f}" y="16" text-anchor="middle" font-family="sans-serif" font-size="13" '
             f'font-weight="bold">{escape(title)}</text>', *body]
    x = 48.0
    for name, colour, dashed in legend:
        dash = ' stroke-dasharray="5,3"' if dashed else ""
        parts.append(f'<line x1="{x:.0f}" y1="{height - 10}" x2="{x + 18:.0f}" y2="{height - 10}" stroke="{colour}" '
                     f'stroke-width="3"{dash}/>')
        parts.append(f'<text x="{x + 22:.0f}" y="{height - 6}" {FONT}>{escape(name)}</text>')
        x += 30 + 6.5 * len(name)
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(title: str, categories: Sequence[str], series: Sequence[Series], *, width: int = 560,
               height: int = 240, y_label: str = "", empty_text: str = "no data yet") -> Markup:
    """Lines over evenly spaced categories; a None value breaks the line; single points get dots."""
    values = [v for s in series for v in s.values if v is not None]
    if not categories or not values:
        return _empty(title, width, height, empty_text)
    f = _Frame(width, height, max(values))
    n = len(categories)
    xs = [f.x0 + (f.x1 - f.x0) * (i + 0.5) / n for i in range(n)]
    body = f.axes(categories, xs, y_label)
    legend = []
    for k, s in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        legend.append((s.name, colour, s.dashed))
        dash = ' stroke-dasharray="5,3"' if s.dashed else ""
        run: list[str] = []
        runs: list[list[str]] = []
        for x, v in zip(xs, s.values):
            if v is None:
                if s.connect:
                    continue
                if run:
                    runs.append(run)
                run = []
                continue
            run.append(f"{x:.1f},{f.y(v):.1f}")
            if not s.dashed:
                body.append(f'<circle cx="{x:.1f}" cy="{f.y(v):.1f}" r="2.5" fill="{colour}"/>')
        if run:
            runs.append(run)
        for r in runs:
            if len(r) == 1 and s.dashed:
                # A reference line (an SLA) with one category would be a lone invisible point:
                # draw it across the plot instead.
                y = r[0].split(",")[1]
                r = [f"{f.x0:.1f},{y}", f"{f.x1:.1f},{y}"]
            if len(r) > 1:
                body.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="{" ".join(r)}"/>')
    return _svg(width, height, title, body, legend)


def bar_chart(title: str, categories: Sequence[str], series: Sequence[Series], *, width: int = 560,
              height: int = 240, y_label: str = "", empty_text: str = "no data yet") -> Markup:
    """Grouped vertical bars: one group per category, one bar per series."""
    values = [v for s in series for v in s.values if v is not None]
    if not categories or not series:
        return _empty(title, width, height, empty_text)
    f = _Frame(width, height, max(values, default=0))
    n = len(categories)
    group = (f.x1 - f.x0) / n
    bar = group * 0.8 / max(1, len(series))
    xs = [f.x0 + group * (i + 0.5) for i in range(n)]
    body = f.axes(categories, xs, y_label)
    legend = []
    for k, s in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        legend.append((s.name, colour, False))
        for i, v in enumerate(s.values):
            if not v:
                continue
            x = f.x0 + group * i + group * 0.1 + bar * k
            y = f.y(v)
            body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{f.y0 - y:.1f}" fill="{colour}">'
                        f'<title>{escape(s.name)} {escape(categories[i])}: {_n(v)}</title></rect>')
    return _svg(width, height, title, body, legend)


def hbar_chart(title: str, labels: Sequence[str], values: Sequence[float], *, width: int = 560,
               bar_height: int = 18, label_width: int = 220, empty_text: str = "no data yet") -> Markup:
    """Horizontal bars with a label each (tasks per column): long labels fit, many rows fit."""
    if not labels:
        return _empty(title, width, 80, empty_text)
    height = 30 + bar_height * len(labels) + 10
    vmax = _nice_max(max(values, default=0))
    span = width - label_width - 50
    body = []
    for i, (label, v) in enumerate(zip(labels, values)):
        y = 28 + i * bar_height
        w = span * (v / vmax)
        text = label if len(label) <= 36 else label[:35] + "…"
        body.append(f'<text x="{label_width - 6}" y="{y + bar_height * 0.7:.1f}" text-anchor="end" {FONT}>'
                    f'{escape(text)}</text>')
        body.append(f'<rect x="{label_width}" y="{y + 2}" width="{w:.1f}" height="{bar_height - 4}" fill="{PALETTE[0]}"/>')
        body.append(f'<text x="{label_width + w + 4:.1f}" y="{y + bar_height * 0.7:.1f}" {FONT}>{_n(v)}</text>')
    return _svg(width, height, title, body)


def _empty(title: str, width: int, height: int, text: str) -> Markup:
    body = [f'<rect x="1" y="24" width="{width - 2}" height="{height - 26}" fill="none" stroke="#ccc"/>',
            f'<text x="{width / 2:.0f}" y="{height / 2 + 10:.0f}" text-anchor="middle" {FONT} fill="#777">'
            f'{escape(text)}</text>']
    return _svg(width, height, title, body)
