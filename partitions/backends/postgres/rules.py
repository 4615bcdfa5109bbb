"""What a PostgreSQL partition migration may be, and its calendar.

Pure rules on the table's description and the operator's options: no SQL text,
no connection. The plan and the retention job both count ranges with advance().
"""

from datetime import UTC, date, datetime, timedelta
from typing import Any

from ..base import MigrationOptions, PlanRefused, TableInfo, fit_identifier

GRANULARITIES = ("day", "week", "month")
MAX_PARTITIONS = 2000


def batch_column(info: TableInfo, options: MigrationOptions) -> str:
    """A single integer primary key batches the copy through its index; a table
    without one is batched by the partition column."""
    if len(info.primary_key) == 1:
        column = info.column(info.primary_key[0])
        if column and column.type in ("bigint", "integer", "smallint"):
            return column.name
    return options.column


def refuse_unless_migratable(info: TableInfo, options: MigrationOptions) -> None:
    """PlanRefused, with the reason, unless the table can be range-partitioned."""
    if info.kind == "partitioned":
        raise PlanRefused(f"{info.schema}.{info.name} is already partitioned")
    column = info.column(options.column)
    if column is None:
        raise PlanRefused(f"column {options.column!r} does not exist")
    if not column.is_time:
        raise PlanRefused(
            f"column {options.column!r} is {column.type}: only timestamp and date columns"
            " can be range-partitioned by day, week or month"
        )
    if options.granularity not in GRANULARITIES:
        raise PlanRefused(f"granularity must be one of {', '.join(GRANULARITIES)}")
    blocking = [d for d in info.dependents if d.blocking]
    if blocking:
        reasons = "; ".join(f"{d.kind} {d.name}: {d.carried_over}" for d in blocking)
        raise PlanRefused(f"these dependents cannot be carried over automatically: {reasons}")


def partition_bounds(
    kmin: Any, kmax: Any, granularity: str, premake: int, today: date
) -> list[tuple[date, date]]:
    """Range bounds from the oldest key to `premake` periods past today (UTC)."""
    start = truncate(as_date(kmin) if kmin is not None else today, granularity)
    last = max(as_date(kmax) if kmax is not None else today, today)
    end = advance(truncate(last, granularity), granularity, premake + 1)
    bounds = []
    cursor = start
    while cursor < end:
        nxt = advance(cursor, granularity, 1)
        bounds.append((cursor, nxt))
        cursor = nxt
        if len(bounds) > MAX_PARTITIONS:
            raise PlanRefused(f"more than {MAX_PARTITIONS} partitions: pick a coarser granularity")
    return bounds


def as_date(value: Any) -> date:
    """A key value as a date (timestamps with a time zone in UTC)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    return value


def truncate(d: date, granularity: str) -> date:
    """The first day of the range `d` falls in (weeks start on Monday)."""
    if granularity == "day":
        return d
    if granularity == "week":
        return d - timedelta(days=d.weekday())
    return d.replace(day=1)


def advance(d: date, granularity: str, n: int) -> date:
    """`n` ranges after `d` (months from the first of the month)."""
    if granularity == "day":
        return d + timedelta(days=n)
    if granularity == "week":
        return d + timedelta(weeks=n)
    month = d.month - 1 + n
    return date(d.year + month // 12, month % 12 + 1, 1)


def migration_names(table: str, migration_id: int) -> dict[str, str]:
    """The names of every object the migration creates, fitted to 63 bytes."""
    tag = f"__m{migration_id}"
    return {
        "new": fit_identifier(table, f"{tag}_part"),
        "old": fit_identifier(table, f"{tag}_orig"),
        "changes": fit_identifier(table, f"{tag}_changes"),
        "changes_after": fit_identifier(table, f"{tag}_after"),
        "progress": fit_identifier(table, f"{tag}_progress"),
        "function": fit_identifier(table, f"{tag}_capture"),
        "trigger": fit_identifier(table, f"{tag}_capture"),
        "guard": fit_identifier(table, f"{tag}_no_truncate"),
        "partition_prefix": fit_identifier(table, "_p", limit=63 - 8),
        "default": fit_identifier(table, "_default"),
    }
