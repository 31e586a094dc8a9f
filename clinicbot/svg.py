"""Tiny inline-SVG charts for the metrics page: no scripts, no fonts, no external files.

Each function returns :class:`markupsafe.Markup` so an autoescaping template embeds it as
is. Every piece of text that goes into the SVG (labels, series names, titles) is escaped
here — that is what makes ``Markup`` honest. Numbers are formatted, never interpolated raw.

What keeps the charts truthful:

* a time axis is proportional to time (``line_chart(..., times=...)``): daily and weekly points
  on one chart sit where their dates are, and the tick labels are evenly spaced dates;
* the y axis has round steps (1, 2, 5 × 10^k), whole numbers on a count axis (``counts=True``):
  never "6.25 tasks";
* a chart with fewer points than it needs to show anything (``min_points``) says so in words
  ("not enough data yet") instead of drawing an empty frame or a lone reference line;
* the width follows the page: a ``viewBox`` and ``width="100%"`` (the height follows the aspect
  ratio), so a chart fits a phone and fills a wide column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Sequence

from markupsafe import Markup, escape

PALETTE = ("#1f6fb2", "#d9822b", "#2e8540", "#8e44ad", "#c0392b", "#5d6d7e")
FONT = "font-family=\"sans-serif\" font-size=\"12\""
WIDTH = 440  # the viewBox width; the chart is drawn at the width of its container
EMPTY_TEXT = "not enough data yet"
# Steps of a time axis, in days: the smallest that gives at most MAX_TIME_LABELS labels is used.
TIME_STEPS = (1, 2, 7, 14, 28, 56, 91, 182, 364)
MAX_TIME_LABELS = 6


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]  # one per category; None = no value (a gap)
    dashed: bool = False  # a reference line (an SLA): not data, drawn across the plot
    connect: bool = False  # draw the line across None values (a sparse series, not a gap)


def _n(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))


def nice_ticks(vmax: float, *, counts: bool = False, max_steps: int = 5) -> list[float]:
    """0, step, 2 step, ... up to the first multiple of ``step`` at or above ``vmax``: at most
    ``max_steps`` steps of 1, 2 or 5 × 10^k. ``counts``: whole-number steps (at least 1)."""
    if not vmax > 0:
        vmax = 1.0
    raw = vmax / max_steps
    k = 10.0 ** math.floor(math.log10(raw))
    step = next(m * k for m in (1, 2, 5, 10) if m * k >= raw * (1 - 1e-9))
    if counts:
        step = max(1.0, float(round(step)))
    n = max(1, math.ceil(round(vmax / step, 9)))
    return [round(step * i, 10) for i in range(n + 1)]


def _day(t: date | datetime) -> date:
    return t.date() if isinstance(t, datetime) else t


def time_ticks(start: date, end: date) -> list[date]:
    """Evenly spaced dates from ``start`` to ``end`` for axis labels: every 1, 2, 7, 14, 28... days
    (weekly steps start on a Monday), at most MAX_TIME_LABELS of them."""
    span = max(0, (end - start).days)
    step = next((s for s in TIME_STEPS if span / s <= MAX_TIME_LABELS - 1), TIME_STEPS[-1])
    first = start
    if step % 7 == 0:
        first = start + timedelta(days=(-start.weekday()) % 7)  # the first Monday on or after start
    out = []
    day = first
    while day <= end:
        out.append(day)
        day += timedelta(days=step)
    return out or [start]


class _Frame:
    """Plot area geometry and the axes shared by the line and bar charts."""

    def __init__(self, width: int, height: int, ymax: float, *, counts: bool = False, left: int = 44,
                 right: int = 14, top: int = 30, bottom: int = 48):
        self.w, self.h = width, height
        self.x0, self.x1 = left, width - right
        self.y0, self.y1 = height - bottom, top  # y0: the baseline (bottom)
        self.ticks = nice_ticks(ymax, counts=counts)
        self.ymax = self.ticks[-1]

    def y(self, v: float) -> float:
        return self.y0 - (self.y0 - self.y1) * (v / self.ymax)

    def y_axis(self, y_label: str) -> list[str]:
        out = []
        for v in self.ticks:
            y = self.y(v)
            out.append(f'<line x1="{self.x0}" y1="{y:.1f}" x2="{self.x1}" y2="{y:.1f}" stroke="#ddd"/>')
            out.append(f'<text x="{self.x0 - 4}" y="{y + 4:.1f}" text-anchor="end" {FONT}>{_n(v)}</text>')
        out.append(f'<line x1="{self.x0}" y1="{self.y0}" x2="{self.x1}" y2="{self.y0}" stroke="#555"/>')
        if y_label:
            out.append(f'<text x="4" y="{self.y1 - 12}" {FONT}>{escape(y_label)}</text>')
        return out

    def x_label(self, x: float, label: str) -> str:
        return f'<text x="{x:.1f}" y="{self.y0 + 16}" text-anchor="middle" {FONT}>{escape(label)}</text>'

    def category_axis(self, categories: Sequence[str], xs: Sequence[float], y_label: str) -> list[str]:
        out = self.y_axis(y_label)
        step = max(1, math.ceil(len(categories) / 7))  # at most ~7 labels: readable on a phone
        for i, (label, x) in enumerate(zip(categories, xs)):
            if i % step == 0:
                out.append(self.x_label(x, label))
        return out


def _svg(width: int, height: int, title: str, body: list[str], legend: Sequence[tuple[str, str, bool]] = ()) -> Markup:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="100%" '
             f'viewBox="0 0 {width} {height}" preserveAspectRatio="xMidYMid meet"><title>{escape(title)}</title>',
             f'<text x="{width / 2:.0f}" y="17" text-anchor="middle" font-family="sans-serif" font-size="14" '
             f'font-weight="bold">{escape(title)}</text>', *body]
    x, y = 44.0, height - 10
    for name, colour, dashed in legend:
        room = 30 + 7 * len(name)
        if x + room > width and x > 44:  # the legend wraps instead of running off the chart
            x, y = 44.0, y + 16
        dash = ' stroke-dasharray="5,3"' if dashed else ""
        parts.append(f'<line x1="{x:.0f}" y1="{y - 4}" x2="{x + 18:.0f}" y2="{y - 4}" stroke="{colour}" '
                     f'stroke-width="3"{dash}/>')
        parts.append(f'<text x="{x + 22:.0f}" y="{y}" {FONT}>{escape(name)}</text>')
        x += room
    if y > height - 10:  # grow the picture for a wrapped legend
        parts[0] = parts[0].replace(f'viewBox="0 0 {width} {height}"', f'viewBox="0 0 {width} {y + 8}"')
    parts.append("</svg>")
    return Markup("".join(parts))


def _points(series: Sequence[Series]) -> int:
    """How many positions hold a data value (reference lines are not data)."""
    data = [s for s in series if not s.dashed]
    n = max((len(s.values) for s in data), default=0)
    return sum(1 for i in range(n) if any(i < len(s.values) and s.values[i] is not None for s in data))


def line_chart(title: str, categories: Sequence[str], series: Sequence[Series], *, times: Sequence[date | datetime] | None = None,
               width: int = WIDTH, height: int = 250, y_label: str = "", counts: bool = False, min_points: int = 1,
               empty_text: str = EMPTY_TEXT) -> Markup:
    """Lines through the values of each series; a None value breaks the line (unless ``connect``).

    ``times`` (one date per category): x is proportional to time and the axis is labelled with
    evenly spaced dates; without it the categories are evenly spaced. Fewer than ``min_points``
    positions with a data value: ``empty_text`` instead of a chart."""
    if not categories or _points(series) < max(1, min_points):
        return _empty(title, width, height, empty_text)
    values = [v for s in series for v in s.values if v is not None]
    f = _Frame(width, height, max(values), counts=counts)
    n = len(categories)
    if times is not None:
        if len(times) != n:
            raise ValueError(f"{len(times)} times for {n} categories")
        days = [_day(t) for t in times]
        t0, t1 = min(days), max(days)
        span = max(1, (t1 - t0).days)
        pad = 10.0

        def at(day: date) -> float:
            if t0 == t1:
                return (f.x0 + f.x1) / 2
            return f.x0 + pad + (f.x1 - f.x0 - 2 * pad) * (day - t0).days / span

        xs = [at(d) for d in days]
        body = f.y_axis(y_label)
        for tick in time_ticks(t0, t1):
            x = at(tick)
            body.append(f'<line x1="{x:.1f}" y1="{f.y0}" x2="{x:.1f}" y2="{f.y0 + 4}" stroke="#555"/>')
            body.append(f.x_label(x, tick.strftime("%m-%d")))
    else:
        xs = [f.x0 + (f.x1 - f.x0) * (i + 0.5) / n for i in range(n)]
        body = f.category_axis(categories, xs, y_label)
    legend = []
    for k, s in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        legend.append((s.name, colour, s.dashed))
        if s.dashed:  # a reference line: across the plot at its (first) value
            ref = next((v for v in s.values if v is not None), None)
            if ref is not None:
                y = f.y(ref)
                body.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="5,3" '
                            f'points="{f.x0:.1f},{y:.1f} {f.x1:.1f},{y:.1f}"/>')
            continue
        run: list[str] = []
        runs: list[list[str]] = []
        for x, label, v in zip(xs, categories, s.values):
            if v is None:
                if not s.connect and run:
                    runs.append(run)
                    run = []
                continue
            run.append(f"{x:.1f},{f.y(v):.1f}")
            body.append(f'<circle cx="{x:.1f}" cy="{f.y(v):.1f}" r="2.5" fill="{colour}">'
                        f'<title>{escape(s.name)} {escape(label)}: {_n(round(v, 2))}</title></circle>')
        if run:
            runs.append(run)
        for r in runs:
            if len(r) > 1:
                body.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(r)}"/>')
    return _svg(width, height, title, body, legend)


def bar_chart(title: str, categories: Sequence[str], series: Sequence[Series], *, width: int = WIDTH,
              height: int = 250, y_label: str = "", counts: bool = False, empty_text: str = EMPTY_TEXT) -> Markup:
    """Grouped vertical bars: one group per (evenly spaced) category, one bar per series."""
    values = [v for s in series for v in s.values if v is not None]
    if not categories or not series:
        return _empty(title, width, height, empty_text)
    f = _Frame(width, height, max(values, default=0), counts=counts)
    n = len(categories)
    group = (f.x1 - f.x0) / n
    bar = group * 0.8 / max(1, len(series))
    xs = [f.x0 + group * (i + 0.5) for i in range(n)]
    body = f.category_axis(categories, xs, y_label)
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


LABEL_CHARS = 24  # what fits in an hbar chart's 170 px label column at 12 px sans-serif


def fit_label(label: str, limit: int = LABEL_CHARS) -> str:
    """``label`` in at most ``limit`` characters. A "Board / Column" label keeps its column (what tells
    the rows of one board apart) and shortens the board: "CPT External… / Review Needed"."""
    if len(label) <= limit:
        return label
    board, sep, column = label.rpartition(" / ")
    if not sep:
        return _cut(label, limit)
    board = _cut(board, max(5, limit - len(sep) - len(column)))  # at least "Core…"
    return board + sep + _cut(column, limit - len(board) - len(sep))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def hbar_chart(title: str, labels: Sequence[str], values: Sequence[float], *, width: int = WIDTH,
               bar_height: int = 20, label_width: int = 170, empty_text: str = EMPTY_TEXT) -> Markup:
    """Horizontal bars with a label each (tasks per column): long labels fit, many rows fit."""
    if not labels:
        return _empty(title, width, 80, empty_text)
    height = 30 + bar_height * len(labels) + 10
    vmax = nice_ticks(max(values, default=0))[-1]
    span = width - label_width - 40
    body = []
    for i, (label, v) in enumerate(zip(labels, values)):
        y = 28 + i * bar_height
        w = span * (v / vmax)
        text = fit_label(label)
        body.append(f'<text x="{label_width - 6}" y="{y + bar_height * 0.7:.1f}" text-anchor="end" {FONT}>'
                    f'<title>{escape(label)}</title>{escape(text)}</text>')
        body.append(f'<rect x="{label_width}" y="{y + 2}" width="{w:.1f}" height="{bar_height - 4}" fill="{PALETTE[0]}"/>')
        body.append(f'<text x="{label_width + w + 4:.1f}" y="{y + bar_height * 0.7:.1f}" {FONT}>{_n(v)}</text>')
    return _svg(width, height, title, body)


def _empty(title: str, width: int, height: int, text: str) -> Markup:
    height = min(height, 150)  # a sentence needs no room for axes
    body = [f'<rect x="1" y="26" width="{width - 2}" height="{height - 28}" fill="#fafafa" stroke="#ccc"/>',
            f'<text x="{width / 2:.0f}" y="{height / 2 + 14:.0f}" text-anchor="middle" font-family="sans-serif" '
            f'font-size="14" fill="#666">{escape(text)}</text>']
    return _svg(width, height, title, body)
