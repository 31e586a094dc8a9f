"""Inline SVG charts: the shapes they draw."""

from __future__ import annotations

import re

from clinicbot.svg import Series, line_chart


def test_reference_line_with_one_category_spans_the_plot():
    svg = str(line_chart("Response", ["11-22"], [Series("median", [0.5]), Series("SLA 4h", [4.0], dashed=True)]))
    [dashed] = [p for p in re.findall(r"<polyline[^>]*>", svg) if "stroke-dasharray" in p]
    points = re.search(r'points="([^"]+)"', dashed).group(1).split()
    (x_a, y_a), (x_b, y_b) = (p.split(",") for p in points)
    assert y_a == y_b and float(x_b) - float(x_a) > 200


def test_title_is_escaped():
    svg = str(line_chart("<script>x</script>", ["a", "b"], [Series("s", [1.0, 2.0])]))
    assert "<script>" not in svg
