"""Slow statements of a PostgreSQL warehouse from pg_stat_statements, their trend
over days from snapshots taken by the beat task, and resetting the statistics."""

from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from opsconsole import audit
from opsconsole.actions import audited_action
from opsconsole.confirmation import require_typed
from partitions import warehouses
from partitions.warehouses.postgres import open_warehouse, require_extension

from . import parsing, pg
from .errors import ConfirmationMismatch
from .models import StatementSnapshot

SNAPSHOT_TOP = 500
ORDERS = ("total", "mean", "calls")


def keep_days() -> int:
    return int(getattr(settings, "QUERIES_SNAPSHOT_DAYS", 30))


def slow_statements(
    warehouse: str,
    *,
    order: str = "total",
    min_mean_ms: float | None = None,
    limit: int = 100,
    containing: str | None = None,
    housekeeping: bool = False,
) -> list[dict]:
    """pg_stat_statements rows at or above the threshold, each with its trend
    (mean ms per snapshot interval); DDL, bulk loads and catalog reads only when
    `housekeeping` (parsing.is_housekeeping). Changes nothing."""
    if order not in ORDERS:
        order = "total"
    threshold = settings.SLOW_QUERY_MS if min_mean_ms is None else min_mean_ms
    with open_warehouse(warehouse) as conn:
        require_extension(conn, "pg_stat_statements", warehouse)
        rows = pg.statements(
            conn, min_mean_ms=threshold, order=order, limit=limit, containing=containing
        )
    if not housekeeping:
        rows = [row for row in rows if not parsing.is_housekeeping(row["query"])]
    trends = mean_trends(warehouse, [r["queryid"] for r in rows])
    for row in rows:
        row["explainable"] = _explainable(row["query"])
        row["trend"] = trends.get(row["queryid"], [])
        row["sparkline"] = sparkline_points(row["trend"])
    return rows


def _explainable(text: str) -> bool:
    try:
        return parsing.shape_of(text).explainable
    except parsing.UnparsableStatement:
        return False


def statement_text(warehouse: str, queryid: int) -> str | None:
    """The normalized text of one pg_stat_statements entry (None when gone)."""
    with open_warehouse(warehouse) as conn:
        require_extension(conn, "pg_stat_statements", warehouse)
        row = pg.statement(conn, queryid)
    return row["query"] if row else None


def mean_trends(warehouse: str, queryids: list[int]) -> dict[int, list[float]]:
    """Mean ms of each statement per interval between snapshots (over the kept days).
    Where calls went down (stats were reset) the snapshot's own mean is used."""
    since = timezone.now() - timedelta(days=keep_days())
    snaps = StatementSnapshot.objects.filter(
        warehouse=warehouse, queryid__in=queryids, taken_at__gte=since
    ).order_by("queryid", "taken_at")
    trends: dict[int, list[float]] = {}
    previous: dict[int, StatementSnapshot] = {}
    for snap in snaps:
        prev = previous.get(snap.queryid)
        if prev is not None and snap.calls > prev.calls:
            value = (snap.total_ms - prev.total_ms) / (snap.calls - prev.calls)
        elif prev is not None and snap.calls == prev.calls:
            previous[snap.queryid] = snap
            continue  # not called in this interval
        else:
            value = snap.mean_ms
        trends.setdefault(snap.queryid, []).append(round(value, 3))
        previous[snap.queryid] = snap
    return trends


def sparkline_points(values: list[float], width: int = 120, height: int = 24) -> str:
    """SVG polyline points for a small trend chart ('' with fewer than two values)."""
    if len(values) < 2:
        return ""
    top = max(values) or 1.0
    step = width / (len(values) - 1)
    return " ".join(
        f"{i * step:.1f},{height - 2 - (v / top) * (height - 4):.1f}" for i, v in enumerate(values)
    )


def take_snapshot(warehouse: str) -> int:
    """Store the top statements' cumulative figures now; prune snapshots older than
    the kept days. Console-side data only: the warehouse is just read."""
    now = timezone.now()
    with open_warehouse(warehouse) as conn:
        require_extension(conn, "pg_stat_statements", warehouse)
        rows = pg.statements(conn, order="total", limit=SNAPSHOT_TOP)
    StatementSnapshot.objects.bulk_create(
        StatementSnapshot(
            warehouse=warehouse,
            queryid=r["queryid"],
            query=r["query"][:10_000],
            taken_at=now,
            calls=r["calls"],
            total_ms=r["total_ms"],
            mean_ms=r["mean_ms"],
            rows=r["rows"],
        )
        for r in rows
    )
    StatementSnapshot.objects.filter(taken_at__lt=now - timedelta(days=keep_days())).delete()
    return len(rows)


def each_warehouse(action: Callable[[str], str]) -> dict[str, str]:
    """`action(name)` for every PostgreSQL warehouse, its outcome by name; one failing
    does not stop the rest (a beat task reports it per warehouse and must not die)."""
    outcome = {}
    for name in warehouses.of_kind("postgres"):
        try:
            outcome[name] = action(name)
        except Exception as exc:
            outcome[name] = f"failed: {exc}"
    return outcome


def snapshot_all() -> dict[str, str]:
    """take_snapshot for every PostgreSQL warehouse."""
    return each_warehouse(lambda name: f"{take_snapshot(name)} statements")


@audited_action("queries.reset_stats")
def reset_stats(actor, warehouse: str, confirm: str, ip_address: str | None = None) -> None:
    """pg_stat_statements_reset() on `warehouse`, audited as queries.reset_stats.
    Not undoable: the counters restart from zero (snapshots already taken are kept)."""
    require_typed(
        warehouse,
        confirm,
        f"Type the warehouse name {warehouse!r} to reset its stats.",
        error=ConfirmationMismatch,
    )
    with (
        audit.record(actor, "queries.reset_stats", warehouse, ip_address=ip_address),
        open_warehouse(warehouse) as conn,
    ):
        require_extension(conn, "pg_stat_statements", warehouse)
        pg.reset_statements(conn)
