"""The morning look: one read-only summary per capability, from the console's own tables.

Nothing here talks to Redis or a warehouse: tiles read the snapshots the beat
tasks store, so the page stays fast whatever state the data layer is in.
"""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from cachemgr.models import StatsSnapshot
from jobs.models import ACTIVE_STATUSES, Run, RunStatus
from partitions.models import Migration, MigrationState
from partitions.queries import parsing
from partitions.queries.models import StatementSnapshot

from . import charts
from .models import AuditEvent, RunbookRequest
from .shared import SharedAnswer

SPARKLINE_POINTS = 96  # one point per 15 minutes over 24 h


def cache_tiles(now) -> list[dict]:
    """Per target: the hit rate since Redis started (the figure the Cache page shows) and
    memory from the latest snapshot, and a sparkline of the per-minute hit rate."""
    tiles = []
    for target in settings.CACHE_TARGETS:
        rows = list(
            StatsSnapshot.objects.filter(
                target=target, node="", taken_at__gte=now - timedelta(hours=24)
            )
            .order_by("taken_at")
            .values_list("hit_rate", "used_memory", "keyspace_hits", "keyspace_misses", "taken_at")
        )
        step = max(1, len(rows) // SPARKLINE_POINTS)
        # A minute without reads has no hit rate: left out, not drawn as 0 %.
        rates = [100 * row[0] for row in rows[::step] if row[0] is not None]
        _, used_memory, hits, misses, _ = rows[-1] if rows else (None, None, 0, 0, None)
        tiles.append(
            {
                "target": target,
                "hit_rate": round(100 * hits / (hits + misses), 1) if hits + misses else None,
                "used_memory": used_memory,
                "sparkline": charts.line(
                    rates,
                    width=320,
                    height=90,
                    label="hit rate per minute",
                    unit="%",
                    y_max=100,
                    start=rows[0][4] if rows else None,
                    end=rows[-1][4] if rows else None,
                    empty="First point in about a minute (one snapshot a minute).",
                ),
            }
        )
    return tiles


def migrations_in_progress():
    return Migration.objects.filter(
        state__in=[MigrationState.RUNNING, MigrationState.ROLLING_BACK]
    ).order_by("-id")[:10]


def top_slow_queries(limit: int = 5) -> list:
    """The slowest statements (mean time) of each PostgreSQL warehouse's latest snapshot,
    without housekeeping (DDL, bulk loads, catalog reads: the console's own and the demo
    loader's), as the Queries page hides them by default."""
    top = []
    for warehouse in settings.WAREHOUSES:
        latest = (
            StatementSnapshot.objects.filter(warehouse=warehouse)
            .order_by("-taken_at")
            .values_list("taken_at", flat=True)
            .first()
        )
        if latest:
            slowest = StatementSnapshot.objects.filter(warehouse=warehouse, taken_at=latest)
            top += [
                snapshot
                for snapshot in slowest.order_by("-mean_ms")[: limit * 10]
                if not parsing.is_housekeeping(snapshot.query)
            ][:limit]
    return sorted(top, key=lambda s: -s.mean_ms)[:limit]


def _read() -> dict:
    now = timezone.now()
    return {
        "cache_tiles": cache_tiles(now),
        "running": list(Run.objects.filter(status__in=ACTIVE_STATUSES).order_by("-id")[:10]),
        "failed": list(
            Run.objects.filter(
                status__in=[RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.LOST],
                created_at__gte=now - timedelta(hours=24),
            ).order_by("-id")[:10]
        ),
        "migrations": list(migrations_in_progress()),
        "slow_queries": top_slow_queries(),
        "approvals": list(
            RunbookRequest.objects.filter(status=RunbookRequest.Status.PENDING).select_related(
                "requested_by"
            )[:10]
        ),
        "events": list(AuditEvent.objects.order_by("-id")[:10]),
    }


# The tiles are the same for every operator and refresh themselves on every open
# dashboard: read once per web process per SHARED_READ_S.
_tiles = SharedAnswer(_read)


def context() -> dict:
    return _tiles.get()
