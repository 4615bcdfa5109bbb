"""Server-rendered SVG line charts for the stats history (no JavaScript, no CDN)."""

from datetime import datetime

from django.template.defaultfilters import filesizeformat

WIDTH, HEIGHT, PAD = 600, 140, 4
MAX_POINTS = 240


def _downsample(points: list[tuple[datetime, float]]) -> list[tuple[datetime, float]]:
    if len(points) <= MAX_POINTS:
        return points
    size = len(points) / MAX_POINTS
    out = []
    for i in range(MAX_POINTS):
        chunk = points[int(i * size) : int((i + 1) * size)] or [points[-1]]
        out.append((chunk[-1][0], sum(v for _, v in chunk) / len(chunk)))
    return out


def line_chart(title: str, points: list[tuple[datetime, float]], fmt, floor_zero=True) -> dict:
    """Coordinates for one <polyline> plus its axis labels."""
    points = _downsample([(t, v) for t, v in points if v is not None])
    chart = {"title": title, "width": WIDTH, "height": HEIGHT, "points": "", "empty": not points}
    if not points:
        return chart
    values = [v for _, v in points]
    low = 0.0 if floor_zero else min(values)
    high = max(values)
    if high == low:
        high = low + 1
    t0, t1 = points[0][0].timestamp(), points[-1][0].timestamp()
    span = (t1 - t0) or 1
    coords = []
    for t, v in points:
        x = PAD + (t.timestamp() - t0) / span * (WIDTH - 2 * PAD)
        y = HEIGHT - PAD - (v - low) / (high - low) * (HEIGHT - 2 * PAD)
        coords.append(f"{x:.1f},{y:.1f}")
    chart.update(
        points=" ".join(coords),
        high=fmt(high),
        low=fmt(low),
        last=fmt(values[-1]),
        start=points[0][0],
        end=points[-1][0],
    )
    return chart


def _percent(value: float) -> str:
    return f"{value * 100:.1f} %"


def _number(value: float) -> str:
    return f"{value:,.0f}"


def history(rows: list[tuple]) -> list[dict]:
    """rows: (taken_at, hit_rate, used_memory, ops_per_sec, evicted_keys), oldest first."""
    evictions = []
    for previous, row in zip(rows, rows[1:], strict=False):
        evictions.append((row[0], float(max(0, row[4] - previous[4]))))
    return [
        line_chart("Hit rate", [(r[0], r[1]) for r in rows], _percent),
        line_chart("Memory used", [(r[0], float(r[2])) for r in rows], filesizeformat),
        line_chart("Ops/s", [(r[0], r[3]) for r in rows], _number),
        line_chart("Evictions per snapshot", evictions, _number),
    ]
