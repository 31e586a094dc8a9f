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
    svg = str(line_chart("<script>x</script> & \"q\"", ["a", "b"], [Series("s", [1.0, 2.0])]))
    assert "<script>" not in svg
    escaped = "&lt;script&gt;x&lt;/script&gt; &amp; &#34;q&#34;"
    # the title is kept (escaped), both as the accessible <title> and as the visible heading
    assert f"<title>{escaped}</title>" in svg
    assert re.search(r"<text [^>]*font-weight=\"bold\">" + re.escape(escaped) + "</text>", svg)


def test_labels_and_series_names_are_escaped():
    svg = str(line_chart("T", ["<b>a</b>", "b"], [Series("<i>s</i>", [1.0, 2.0])], y_label="<u>h</u>"))
    assert "<b>" not in svg and "<i>" not in svg and "<u>" not in svg
    assert "&lt;b&gt;a&lt;/b&gt;" in svg and "&lt;i&gt;s&lt;/i&gt;" in svg and "&lt;u&gt;h&lt;/u&gt;" in svg
