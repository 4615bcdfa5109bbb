"""Small server-rendered SVG charts: no JavaScript, works offline."""

from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe


@dataclass
class Point:
    x: float
    y: float
    css: str = ""
    title: str = ""


def scatter(points: list[Point], width=640, height=160, pad=24, y_label="") -> SafeString:
    """Dots on a plain frame; y starts at 0. Each point's css class colours it."""
    if not points:
        return mark_safe('<p class="muted small">No data yet.</p>')
    xs = [p.x for p in points]
    x0, x1 = min(xs), max(xs)
    y1 = max(p.y for p in points) or 1.0

    def sx(x):
        return pad + (x - x0) / ((x1 - x0) or 1) * (width - 2 * pad)

    def sy(y):
        return height - pad - y / y1 * (height - 2 * pad)

    dots = format_html_join(
        "",
        '<circle cx="{}" cy="{}" r="2.5" class="{}"><title>{}</title></circle>',
        ((f"{sx(p.x):.1f}", f"{sy(p.y):.1f}", p.css, p.title) for p in points),
    )
    return format_html(
        '<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{label}">'
        '<line x1="{p}" y1="{b}" x2="{r}" y2="{b}" class="axis"/>'
        '<line x1="{p}" y1="{p}" x2="{p}" y2="{b}" class="axis"/>'
        '<text x="{p}" y="{t}" class="tick">{top}</text>{dots}</svg>',
        w=width,
        h=height,
        label=y_label,
        p=pad,
        b=height - pad,
        r=width - pad,
        t=pad - 6,
        top=f"{y_label} max {y1:,.0f}",
        dots=dots,
    )


def line(
    values: list[float], width=640, height=120, pad=20, label="", empty="Not enough data yet."
) -> SafeString:
    """A polyline of `values` (oldest first), scaled to the largest value; `empty` says
    when the first points will come."""
    if len(values) < 2:
        return format_html('<p class="muted small">{}</p>', empty)
    top = max(values) or 1.0
    step = (width - 2 * pad) / (len(values) - 1)
    coords = " ".join(
        f"{pad + i * step:.1f},{height - pad - v / top * (height - 2 * pad):.1f}"
        for i, v in enumerate(values)
    )
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}">'
        '<polyline points="{}" class="series"/><text x="{}" y="{}" class="tick">{}</text></svg>',
        width,
        height,
        label,
        coords,
        pad,
        pad - 6,
        f"{label} max {top:,.1f}",
    )
