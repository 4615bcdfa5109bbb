"""Charts say what they plot: axes from 0 to the top value with the unit, the first and
last time under the x axis, and a readable sentence instead of an empty frame."""

from datetime import UTC, datetime

from django.template.loader import render_to_string

from opsconsole import charts
from opsconsole.templatetags.console import peak
from partitions.queries import slow


def test_a_line_labels_both_axes_with_units_and_times(settings):
    settings.TIME_ZONE = "UTC"
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    end = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)

    svg = charts.line([40, 80, 60], unit="%", y_max=100, start=start, end=end, label="hit rate")

    assert ">100%</text>" in svg and ">0</text>" in svg
    assert ">09:00</text>" in svg and ">09:30</text>" in svg
    assert 'aria-label="hit rate, 09:00 to 09:30, up to 100%"' in svg
    assert svg.count('class="axis"') == 2


def test_a_line_with_one_point_says_when_the_next_comes():
    html = charts.line([50.0], empty="first point in ~1 min")

    assert "<svg" not in html
    assert "first point in ~1 min" in html


def test_a_scatter_labels_its_unit_and_ends():
    points = [charts.Point(0, 1.5, "good"), charts.Point(1, 12.0, "bad")]

    svg = charts.scatter(points, unit="s", x_label=("oldest run", "newest run"))

    assert ">12 s</text>" in svg and ">oldest run</text>" in svg and ">newest run</text>" in svg
    assert svg.count("<circle") == 2


def test_an_empty_scatter_says_so():
    assert "No runs yet" in charts.scatter([])


def test_a_table_sparkline_is_labelled_from_zero_to_its_peak():
    html = render_to_string(
        "queries/partials/_slow_rows.html",
        {
            "warehouses": ["main"],
            "filters": {"warehouse": "main"},
            "rows": [
                {
                    "query": "SELECT 1",
                    "queryid": 7,
                    "trend": [12.0, 48.4, 30.0],
                    "sparkline": slow.sparkline_points([12.0, 48.4, 30.0]),
                }
            ],
        },
    )

    assert "0–48 ms, 3 snapshots" in html
    assert peak([]) == 0
