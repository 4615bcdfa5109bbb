"""Small server-rendered SVG charts: no JavaScript, works offline.

Every chart has its axes labelled: the y axis from 0 to its top value with the unit,
the x axis with its first and last time (or what the points are), so a glance says
"what, how much, since when" without hovering.
"""

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

# Room for the axis labels, in the chart's own units (its viewBox).
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 16


@dataclass
class Point:
    x: float
    y: float
    css: str = ""
    title: str = ""


def _frame(width: int, height: int, y_top: str, x_first: str, x_last: str) -> SafeString:
    """The two axes and their labels: 0 and `y_top` up the left, `x_first` and `x_last`
    under the ends of the bottom axis."""
    bottom = height - BOTTOM
    return format_html(
        '<line x1="{l}" y1="{t}" x2="{l}" y2="{b}" class="axis"/>'
        '<line x1="{l}" y1="{b}" x2="{r}" y2="{b}" class="axis"/>'
        '<text x="{lt}" y="{ty}" class="tick" text-anchor="end">{top}</text>'
        '<text x="{lt}" y="{b}" class="tick" text-anchor="end">0</text>'
        '<text x="{l}" y="{xy}" class="tick">{first}</text>'
        '<text x="{r}" y="{xy}" class="tick" text-anchor="end">{last}</text>',
        l=LEFT,
        t=TOP,
        b=bottom,
        r=width - RIGHT,
        lt=LEFT - 4,
        ty=TOP + 4,
        xy=height - 3,
        top=y_top,
        first=x_first,
        last=x_last,
    )


def _number(value: float, unit: str) -> str:
    text = f"{value:,.0f}" if value >= 10 else f"{value:,.1f}".removesuffix(".0")
    return f"{text}{unit}" if unit == "%" else f"{text} {unit}".strip()


def _clock(moment: datetime | None) -> str:
    return timezone.localtime(moment).strftime("%H:%M") if moment else ""


def scatter(points: list[Point], width=640, height=160, unit="", x_label=("", "")) -> SafeString:
    """Dots on labelled axes; y starts at 0. Each point's css class colours it;
    `x_label` names the two ends of the x axis (e.g. the oldest and newest run)."""
    if not points:
        return format_html(
            '<p class="muted small">{}</p>', "No runs yet: the chart starts with the first."
        )
    xs = [p.x for p in points]
    x0, x1 = min(xs), max(xs)
    y1 = max(p.y for p in points) or 1.0

    def sx(x):
        return LEFT + (x - x0) / ((x1 - x0) or 1) * (width - LEFT - RIGHT)

    def sy(y):
        return height - BOTTOM - y / y1 * (height - TOP - BOTTOM)

    dots = format_html_join(
        "",
        '<circle cx="{}" cy="{}" r="2.5" class="{}"><title>{}</title></circle>',
        ((f"{sx(p.x):.1f}", f"{sy(p.y):.1f}", p.css, p.title) for p in points),
    )
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}">{}{}</svg>',
        width,
        height,
        f"{unit} per point, up to {_number(y1, unit)}",
        _frame(width, height, _number(y1, unit), *x_label),
        dots,
    )


def line(
    values: list[float],
    *,
    width=640,
    height=120,
    label="",
    unit="",
    y_max: float | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    empty="Not enough data yet.",
) -> SafeString:
    """A polyline of `values` (oldest first, from `start` to `end`) on labelled axes,
    scaled to `y_max` (e.g. 100 for a percentage) or the largest value; `empty` says
    when the first points will come."""
    if len(values) < 2:
        return format_html('<p class="muted small chart-empty">{}</p>', empty)
    top = y_max or max(values) or 1.0
    step = (width - LEFT - RIGHT) / (len(values) - 1)
    plot_height = height - TOP - BOTTOM
    coords = " ".join(
        f"{LEFT + i * step:.1f},{height - BOTTOM - min(v, top) / top * plot_height:.1f}"
        for i, v in enumerate(values)
    )
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}">{}'
        '<polyline points="{}" class="series"/></svg>',
        width,
        height,
        f"{label}, {_clock(start)} to {_clock(end)}, up to {_number(top, unit)}",
        _frame(width, height, _number(top, unit), _clock(start), _clock(end)),
        coords,
    )
