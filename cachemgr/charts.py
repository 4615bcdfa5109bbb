"""The Cache page's history charts: one line per figure, drawn by opsconsole.charts (the
console's one SVG line chart, axes labelled), each y axis in the figure's own unit."""

from datetime import datetime

from django.utils.safestring import SafeString

from opsconsole import charts

MAX_POINTS = 240
MEMORY_UNITS = (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10))
EMPTY = "First point in about a minute (the beat task stores one snapshot a minute)."


def _downsample(points: list[tuple[datetime, float]]) -> list[tuple[datetime, float]]:
    """At most MAX_POINTS points, each the mean of the snapshots it stands for."""
    if len(points) <= MAX_POINTS:
        return points
    size = len(points) / MAX_POINTS
    out = []
    for i in range(MAX_POINTS):
        chunk = points[int(i * size) : int((i + 1) * size)] or [points[-1]]
        out.append((chunk[-1][0], sum(v for _, v in chunk) / len(chunk)))
    return out


def _memory_unit(largest: float) -> tuple[str, int]:
    """The unit memory reads best in at this size: the largest one it fills."""
    for unit, size in MEMORY_UNITS:
        if largest >= size:
            return unit, size
    return "bytes", 1


def _figure(
    title: str, points: list[tuple[datetime, float]], unit: str, y_max: float | None = None
) -> dict:
    """One chart: its title, its newest value with the unit (None before the first
    snapshot), and the SVG."""
    points = _downsample([(t, v) for t, v in points if v is not None])
    values = [v for _, v in points]
    svg: SafeString = charts.line(
        values,
        width=600,
        height=140,
        label=title,
        unit=unit,
        start=points[0][0] if points else None,
        end=points[-1][0] if points else None,
        empty=EMPTY,
        y_max=y_max,
    )
    now = None
    if values:
        number = f"{values[-1]:,.1f}".removesuffix(".0")
        now = f"{number}%" if unit == "%" else f"{number} {unit}"
    return {"title": title, "svg": svg, "now": now}


def history(rows: list[tuple]) -> list[dict]:
    """rows: (taken_at, hit_rate, used_memory, ops_per_sec, evicted_keys), oldest first."""
    memory_unit, memory_size = _memory_unit(max((r[2] for r in rows), default=0))
    evictions = [
        (row[0], float(max(0, row[4] - previous[4])))
        for previous, row in zip(rows, rows[1:], strict=False)
    ]
    return [
        _figure(
            "Hit rate",
            [(r[0], None if r[1] is None else 100 * r[1]) for r in rows],
            "%",
            y_max=100,
        ),
        _figure("Memory used", [(r[0], r[2] / memory_size) for r in rows], memory_unit),
        _figure("Ops/s", [(r[0], r[3]) for r in rows], "ops/s"),
        _figure("Evictions per snapshot", evictions, "keys"),
    ]
