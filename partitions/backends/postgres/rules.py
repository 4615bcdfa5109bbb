"""What a PostgreSQL partition migration may be, and its calendar.

Pure rules on the table's description and the operator's options: no SQL text,
no connection. The plan and the retention job both count ranges with advance().
"""

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .. import uuid7
from ..base import Column, MigrationOptions, PlanRefused, TableInfo, fit_identifier

GRANULARITIES = ("day", "week", "month")
SCHEMES = ("range", "hash", "list")
MODULUS_MIN, MODULUS_MAX = 2, 64
MAX_LIST_VALUES = 100
MAX_PARTITIONS = 2000
# Types without an equality operator: compared as text when matching row images,
# and refused as hash or list keys.
NO_EQUALITY = ("json", "xml", "point", "line", "lseg", "box", "path", "polygon", "circle")


@dataclass(frozen=True)
class PartitionKey:
    """The partition key as the statements need it: the column, what its type is
    (read from the catalog: time, integer, uuid or other) and the scheme's figures."""

    column: str
    kind: str
    scheme: str = "range"
    granularity: str = "month"
    width: int | None = None
    modulus: int = 8
    keep_ranges: int | None = None

    @classmethod
    def of(cls, info: TableInfo, options: MigrationOptions) -> "PartitionKey":
        return cls(
            column=options.column,
            kind=info.column(options.column).key_kind,
            scheme=options.scheme,
            granularity=options.granularity,
            width=options.width,
            modulus=options.modulus,
            keep_ranges=options.keep_ranges,
        )

    @property
    def by_time(self) -> bool:
        """Ranges of days, weeks or months (a time key, or a UUIDv7 one)."""
        return self.scheme == "range" and self.kind in ("time", "uuid")

    def describe(self) -> str:
        """The scheme in operator words, for the plan."""
        if self.scheme == "hash":
            return f"hash on {self.column} into {self.modulus} partitions"
        if self.scheme == "list":
            return f"list on {self.column}: one partition per value, a default for new ones"
        if self.kind == "integer":
            return f"ranges of {self.width:,} {self.column} values"
        what = "UUIDv7 timestamps" if self.kind == "uuid" else self.column
        return f"{self.granularity} ranges of {what}"

    def retention(self) -> str:
        """What retention means for this scheme (the plan says it)."""
        if self.by_time:
            return "by age: partitions wholly older than retention days are dropped"
        if self.scheme == "range" and self.keep_ranges:
            return (
                f"as you asked: ranges below the newest {self.keep_ranges} that hold ids are"
                " dropped (ids carry no age, so by count); upcoming ranges are created ahead"
                " of the highest id"
            )
        if self.scheme == "range":
            return (
                "none: ids carry no age, so no range is dropped unless you ask (keep ranges);"
                " upcoming ranges are created ahead of the highest id"
            )
        return f"none: a {self.scheme} partition holds rows of every age"


def batch_column(info: TableInfo, options: MigrationOptions) -> str:
    """A single integer primary key batches the copy through its index; a table
    without one is batched by the partition column."""
    if len(info.primary_key) == 1:
        column = info.column(info.primary_key[0])
        if column and column.type in ("bigint", "integer", "smallint"):
            return column.name
    return options.column


def refuse_unless_migratable(info: TableInfo, options: MigrationOptions) -> None:
    """PlanRefused, with the reason, unless the table can be partitioned as asked."""
    if info.kind == "partitioned":
        raise PlanRefused(f"{info.schema}.{info.name} is already partitioned")
    column = info.column(options.column)
    if column is None:
        raise PlanRefused(f"column {options.column!r} does not exist")
    if options.scheme not in SCHEMES:
        raise PlanRefused(f"scheme must be one of {', '.join(SCHEMES)}")
    key = PartitionKey.of(info, options)
    refuse_unfit_key(key, column.type)
    if options.retention_days and not key.by_time:
        raise PlanRefused(
            "retention by age applies to ranges of a time or UUIDv7 key only:"
            f" {key.retention()}. Leave retention days empty"
        )
    if options.keep_ranges is not None and not (key.scheme == "range" and key.kind == "integer"):
        raise PlanRefused(
            "keep ranges applies to ranges of an integer key only (time ranges: retention days)"
        )
    blocking = [
        d
        for d in info.dependents
        if d.blocking and not (d.kind == "inbound foreign key" and options.column in d.columns)
    ]
    if blocking:
        reasons = "; ".join(f"{d.kind} {d.name}: {d.carried_over}" for d in blocking)
        raise PlanRefused(f"these dependents cannot be carried over automatically: {reasons}")


def fitting_schemes(column: Column) -> tuple[str, ...]:
    """The schemes a column can partition by, as the plan form offers them: ranges of
    time, integers and UUIDv7s; hash and list of any type with equality (a time key
    is offered ranges only: a partition per instant or hash of instants helps no one)."""
    if column.type.split("(")[0] in NO_EQUALITY:
        return ()
    return {
        "time": ("range",),
        "uuid": ("range", "hash"),
        "integer": ("range", "hash", "list"),
    }.get(column.key_kind, ("hash", "list"))


def refuse_unfit_key(key: PartitionKey, type_: str) -> None:
    """PlanRefused unless the key's type fits the scheme and its figures."""
    if key.scheme == "range":
        if key.kind == "other":
            raise PlanRefused(
                f"column {key.column!r} is {type_}: range partitioning needs a timestamp,"
                " date, integer or UUIDv7 column (hash or list partitioning can use it)"
            )
        if key.kind != "integer" and key.granularity not in GRANULARITIES:
            raise PlanRefused(f"granularity must be one of {', '.join(GRANULARITIES)}")
        if key.kind == "integer" and key.width is not None and key.width < 1:
            raise PlanRefused("the width of an integer range must be at least 1")
        if key.keep_ranges is not None and key.keep_ranges < 1:
            raise PlanRefused("keep ranges must be at least 1 (the range being filled)")
        return
    if type_.split("(")[0] in NO_EQUALITY:
        raise PlanRefused(
            f"column {key.column!r} is {type_}, which has no equality operator: it cannot"
            f" be a {key.scheme} partition key"
        )
    if key.scheme == "hash" and not MODULUS_MIN <= key.modulus <= MODULUS_MAX:
        raise PlanRefused(
            f"modulus must be between {MODULUS_MIN} and {MODULUS_MAX} (the number of hash"
            " partitions)"
        )


def time_parts(
    key: PartitionKey, kmin: Any, kmax: Any, premake: int, today: date, prefix: str
) -> list[dict]:
    """Day, week or month ranges; on a UUIDv7 key their bounds are the smallest
    UUIDv7 of each range's first millisecond."""
    if key.kind == "uuid":
        kmin, kmax = (uuid7.moment_of(str(k)) if k is not None else None for k in (kmin, kmax))
    parts = []
    for lo, hi in partition_bounds(kmin, kmax, key.granularity, premake, today):
        part = {"name": f"{prefix}{lo:%Y%m%d}", "from": str(lo), "to": str(hi)}
        if key.kind == "uuid":
            part.update({"from": uuid7.floor_of(lo), "to": uuid7.floor_of(hi), "days": str(lo)})
        parts.append(part)
    return parts


def round_width(kmin: int | None, kmax: int | None) -> int:
    """A round width (a power of ten) giving about 16 ranges over today's keys."""
    if kmin is None or kmax is None:
        return 1_000_000
    span = max(1, kmax - kmin + 1)
    return 10 ** max(0, math.ceil(math.log10(span / 16)))


def integer_parts(kmin: int | None, kmax: int | None, width: int, premake: int, prefix: str):
    """Ranges `width` ids wide from the lowest key to `premake` ranges past the highest."""
    start = (kmin // width) * width if kmin is not None else 0
    end = ((kmax if kmax is not None else start) // width + 1 + premake) * width
    if (end - start) // width > MAX_PARTITIONS:
        raise PlanRefused(
            f"more than {MAX_PARTITIONS} ranges of {width:,} ids: choose a wider width"
        )
    return [
        {"name": f"{prefix}{lo}", "from": lo, "to": lo + width} for lo in range(start, end, width)
    ]


def hash_parts(modulus: int, prefix: str) -> list[dict]:
    return [{"name": f"{prefix}{n}", "modulus": modulus, "remainder": n} for n in range(modulus)]


def list_parts(values: list[Any], nullable: bool, prefix: str, null_name: str) -> list[dict]:
    """One partition per value (NULL in its own: a list partition may hold it)."""
    if len(values) > MAX_LIST_VALUES:
        raise PlanRefused(
            f"the column has more than {MAX_LIST_VALUES} distinct values: a partition per"
            " value would be too many tables (and each new value goes to the default);"
            " use hash partitioning, or range partitioning on a time or integer column"
        )
    parts = [{"name": f"{prefix}{n}", "values": [str(v)]} for n, v in enumerate(values)]
    if nullable:
        parts.append({"name": null_name, "values": [None]})
    return parts


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
        "null": fit_identifier(table, "_null"),
    }
