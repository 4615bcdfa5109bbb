"""Statements that never finish, as the index advisor needs to see them.

pg_stat_statements records a statement when it finishes: one that statement_timeout
cancels, or that someone kills, or that still runs, is in no row of it, however much
time it takes. Often those are exactly the statements an index would rescue (a
correlated subquery scanning a big table once per outer row). A beat task samples
pg_stat_activity every QUERIES_LONG_SAMPLE_S seconds and keeps each execution running
longer than QUERIES_LONG_RUNNING_MS with the longest time it was seen running; the
advisor adds them to the workload, per fingerprint, as calls and total time (a lower
bound: an execution is seen at most one sampling interval before it ends).
"""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from partitions.warehouses.postgres import open_warehouse

from . import parsing, slow, workload
from .models import LongExecution

SAMPLE_TASK = "queries.sample_long_running"


def threshold_ms() -> float:
    return float(settings.QUERIES_LONG_RUNNING_MS)


def sample(warehouse: str) -> int:
    """Record the statements running longer than the threshold on `warehouse` now (an
    execution seen before is updated with its longer time); prune old executions.
    The number of executions recorded; the warehouse is only read."""
    now = timezone.now()
    with open_warehouse(warehouse) as conn:
        running = workload.running_longer_than(conn, threshold_ms())
    seen = []
    for row in running:
        try:
            fingerprint = parsing.fingerprint(row["query"])
        except parsing.UnparsableStatement:
            continue  # cut at track_activity_query_size: nothing to analyse
        seen.append(
            LongExecution(
                warehouse=warehouse,
                pid=row["pid"],
                started_at=row["started_at"],
                fingerprint=fingerprint,
                query=row["query"],
                elapsed_ms=float(row["elapsed_ms"]),
                last_seen=now,
            )
        )
    LongExecution.objects.bulk_create(
        seen,
        update_conflicts=True,
        unique_fields=["warehouse", "pid", "started_at"],
        update_fields=["elapsed_ms", "last_seen", "query"],
    )
    LongExecution.objects.filter(last_seen__lt=now - timedelta(days=slow.keep_days())).delete()
    return len(seen)


def sample_all() -> dict[str, str]:
    """sample() for every PostgreSQL warehouse."""
    return slow.each_warehouse(lambda name: f"{sample(name)} long-running")


def queryid_of(fingerprint: str) -> int:
    """A statement id for a fingerprint (signed 64 bits, like pg_stat_statements')."""
    value = int(fingerprint, 16)
    return value - (1 << 64) if value >= 1 << 63 else value


def statements(warehouse: str, since=None) -> list[dict[str, Any]]:
    """The sampled executions since `since`, per fingerprint, shaped like
    pg_stat_statements rows (queryid, query, calls, rows, total_ms, mean_ms) plus
    `fingerprint` and `seen_running`. The text is the latest execution's."""
    executions = LongExecution.objects.filter(warehouse=warehouse)
    if since is not None:
        executions = executions.filter(started_at__gte=since)
    found: dict[str, dict[str, Any]] = {}
    for e in executions.order_by("last_seen").only("fingerprint", "query", "elapsed_ms"):
        entry = found.setdefault(
            e.fingerprint,
            {
                "queryid": queryid_of(e.fingerprint),
                "fingerprint": e.fingerprint,
                "calls": 0,
                "rows": 0,
                "total_ms": 0.0,
                "seen_running": True,
            },
        )
        entry["calls"] += 1
        entry["total_ms"] += e.elapsed_ms
        entry["query"] = e.query
    for entry in found.values():
        entry["mean_ms"] = entry["total_ms"] / entry["calls"]
    return list(found.values())


def since_reset(warehouse: str) -> list[dict[str, Any]]:
    """statements() since pg_stat_statements' last reset (the window the advisor
    weighs), heaviest first."""
    with open_warehouse(warehouse) as conn:
        since = workload.statements_reset_at(conn)
    return sorted(statements(warehouse, since), key=lambda s: -s["total_ms"])


def with_unfinished(rows: list[dict], unfinished: list[dict]) -> list[dict]:
    """pg_stat_statements `rows` with the sampled statements added, heaviest first. A
    sampled statement pg_stat_statements also knows (same fingerprint: it finished at
    times) keeps the larger of the two weights, never their sum: a finished execution
    may have been sampled too."""
    known: dict[str, dict] = {}
    for row in rows:
        try:
            known.setdefault(parsing.fingerprint(row["query"]), row)
        except parsing.UnparsableStatement:
            continue
    merged = list(rows)
    for entry in unfinished:
        row = known.get(entry["fingerprint"])
        if row is None:
            merged.append(entry)
        elif entry["total_ms"] > row["total_ms"]:
            row["total_ms"] = entry["total_ms"]
            row["calls"] = max(row["calls"], entry["calls"])
            row["mean_ms"] = row["total_ms"] / max(row["calls"], 1)
            row["seen_running"] = True
    return sorted(merged, key=lambda r: -r["total_ms"])
