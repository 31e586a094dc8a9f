"""Charts that tell the truth (issue 14, point 12): a time axis proportional to time, whole-number
ticks on count axes, "not enough data yet" instead of empty frames, a width that follows the page."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

from clinicbot.reports.metrics_page import metrics_charts
from clinicbot.svg import Series, bar_chart, hbar_chart, line_chart, nice_ticks, time_ticks

MON = date(2026, 9, 7)  # a Monday


def circles(svg: str, colour: str = "#1f6fb2") -> list[float]:
    return [float(x) for x in re.findall(rf'<circle cx="([\d.]+)" cy="[\d.]+" r="2.5" fill="{colour}"', svg)]


def y_ticks(svg: str) -> list[str]:
    return re.findall(r'<text x="\d+" y="[\d.]+" text-anchor="end" [^>]*>([^<]+)</text>', svg)


def test_a_time_axis_spaces_points_by_their_dates():
    days = [MON, MON + timedelta(days=7), MON + timedelta(days=14), MON + timedelta(days=15),
            MON + timedelta(days=16)]
    svg = str(line_chart("t", [d.isoformat() for d in days], [Series("s", [1, 2, 3, 4, 5])], times=days))
    xs = circles(svg)
    weekly, daily = xs[1] - xs[0], xs[3] - xs[2]
    assert abs(weekly / daily - 7) < 0.05  # evenly spaced categories would make this 1
    assert abs((xs[4] - xs[3]) - daily) < 0.05
    # The labels are evenly spaced dates (weekly here: Mondays), not the points' own categories.
    labels = re.findall(r'text-anchor="middle" [^>]*>(\d\d-\d\d)</text>', svg)
    assert labels == ["09-07", "09-14", "09-21"]


def test_without_times_categories_are_evenly_spaced():
    xs = circles(str(line_chart("t", ["a", "b", "c"], [Series("s", [1, 2, 3])])))
    assert abs((xs[1] - xs[0]) - (xs[2] - xs[1])) < 0.05


def test_time_ticks_are_evenly_spaced_and_few():
    for span in (0, 1, 5, 6, 13, 30, 84, 400):
        ticks = time_ticks(MON + timedelta(days=2), MON + timedelta(days=2 + span))
        assert 1 <= len(ticks) <= 6
        gaps = {(b - a).days for a, b in zip(ticks, ticks[1:])}
        assert len(gaps) <= 1
        if gaps and gaps.pop() % 7 == 0:
            assert all(t.weekday() == 0 for t in ticks)  # weekly steps fall on Mondays


def test_count_axes_have_whole_number_ticks():
    # The old axis put 25 into quarters: 6.25 tasks.
    assert nice_ticks(25, counts=True) == [0, 5, 10, 15, 20, 25]
    for vmax in (1, 2, 3, 5, 7, 13, 25, 99, 1234):
        ticks = nice_ticks(vmax, counts=True)
        assert ticks[0] == 0 and ticks[-1] >= vmax and len(ticks) <= 6
        assert all(t == int(t) for t in ticks), (vmax, ticks)
    svg = str(line_chart("backlog", ["a", "b"], [Series("open", [3, 5])], counts=True))
    assert y_ticks(svg) == ["0", "1", "2", "3", "4", "5"]
    svg = str(bar_chart("per week", ["a", "b"], [Series("created", [25, 3])], counts=True))
    assert "6.25" not in svg and all("." not in t for t in y_ticks(svg))


def test_other_axes_have_round_steps():
    assert nice_ticks(0.3) == [0, 0.1, 0.2, 0.3]
    assert nice_ticks(72) == [0, 20, 40, 60, 80]
    for vmax in (0.7, 3.3, 17, 250):
        ticks = nice_ticks(vmax)
        step = ticks[1]
        assert all(abs(b - a - step) < 1e-9 for a, b in zip(ticks, ticks[1:]))
        assert re.fullmatch(r"[125]0*|0\.0*[125]", f"{step:g}"), step


def test_no_data_says_not_enough_data_yet():
    sla_only = [Series("median", [None]), Series("p90", [None]), Series("SLA 4h", [4.0], dashed=True)]
    svg = str(line_chart("UBN", ["11-22"], sla_only))
    assert "not enough data yet" in svg and "<polyline" not in svg and "<circle" not in svg
    # One day of history is not a trend: a chart that needs two points says so too.
    one = [Series("median", [3.0]), Series("SLA 4h", [4.0], dashed=True)]
    assert "not enough data yet" in str(line_chart("UBN", ["11-22"], one, min_points=2))
    assert "not enough data yet" not in str(line_chart("UBN", ["11-21", "11-22"], [Series("m", [3.0, 2.0])],
                                                       min_points=2))
    assert "not enough data yet" in str(bar_chart("x", [], []))
    assert "not enough data yet" in str(hbar_chart("x", [], []))


def test_width_follows_the_container():
    for svg in (line_chart("a", ["x", "y"], [Series("s", [1, 2])]), bar_chart("b", ["x"], [Series("s", [1])]),
                hbar_chart("c", ["x"], [1]), line_chart("d", [], [])):
        head = re.match(r"<svg [^>]*>", str(svg)).group(0)
        assert 'width="100%"' in head and re.search(r'viewBox="0 0 \d+ \d+"', head)
        assert "height=" not in head  # the height follows the aspect ratio


def test_a_long_legend_wraps_inside_the_chart():
    names = ["reconstructed from created and closed dates", "recorded every day", "another long series name"]
    svg = str(line_chart("t", ["a", "b"], [Series(n, [1, 2]) for n in names]))
    width, height = (int(v) for v in re.search(r'viewBox="0 0 (\d+) (\d+)"', svg).groups())
    legend_x = [float(x) for x in re.findall(r'<text x="([\d.]+)" y="\d+" [^>]*>(?:' + "|".join(names) + ")<", svg)]
    assert all(x < width for x in legend_x) and height > 250


def test_backlog_chart_puts_daily_records_and_weekly_reconstructions_on_one_time_axis():
    now = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
    weekly = [{"week": (date(2026, 11, 2) + timedelta(weeks=i)).isoformat(), "created": 1, "resolved": 0,
               "backlog_at_end": 10 + i, "end": (datetime(2026, 11, 9, tzinfo=timezone.utc)
                                                 + timedelta(weeks=i)).isoformat()} for i in range(2)]
    history = [{"now": (now - timedelta(days=i)).isoformat(), "backlog": 12} for i in (2, 1, 0)]
    data = {"now": now.isoformat(), "timezone": "UTC", "backlog": 12, "weekly": weekly, "history": history,
            "per_column": [], "sla_hours": {}, "unbreak_response": {}, "review_response": {}}
    svg = str(metrics_charts(data)["backlog"])
    recorded, reconstructed = circles(svg, "#1f6fb2"), circles(svg, "#d9822b")
    day = recorded[1] - recorded[0]
    assert abs((reconstructed[1] - reconstructed[0]) / day - 7) < 0.05  # Nov 9 -> Nov 16: seven days
    assert abs((recorded[0] - reconstructed[1]) / day - 4) < 0.05  # Nov 16 -> Nov 20


def test_long_board_and_column_labels_keep_the_column_and_fit():
    from clinicbot.svg import LABEL_CHARS, fit_label

    labels = ["CPT External Code Reviews / Review Needed", "CPT External Code Reviews / In Progress",
              "Core Platform Team / Inbox", "A board with a very long name / A column with a very long name too"]
    fitted = [fit_label(label) for label in labels]
    assert fitted[0] == "CPT Ext… / Review Needed"
    assert fitted[1].endswith(" / In Progress") and fitted[0] != fitted[1]
    assert all(len(f) <= LABEL_CHARS for f in fitted)
    assert fitted[3] == "A bo… / A column with a…" and fit_label("Short / Col") == "Short / Col"
    assert fit_label("Core Platform Team / Triage Meeting Inbox") == "Core… / Triage Meeting…"
    svg = str(hbar_chart("Open tasks per column", labels, [3, 8, 11, 0]))
    assert "Review Needed</text>" in svg and "In Progress</text>" in svg
    assert f"<title>{labels[0]}</title>" in svg  # the whole label stays in the tooltip
