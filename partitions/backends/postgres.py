"""PostgreSQL: the catalog (inventory, describe, dependents) and the plan.

Every statement is composed with psycopg.sql (identifiers quoted by psycopg) and
rendered to text once, into the plan the operator reads; the run executes that
stored text (postgres_run.py), so the plan shown is the plan that runs.
"""

import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from . import postgres_run
from .base import (
    Backend,
    Column,
    Dependent,
    MigrationOptions,
    PartitionInfo,
    PlanRefused,
    StepReport,
    TableInfo,
    WarehouseUnreachable,
    fit_identifier,
    validate_name,
)
from .postgres_catalog import (
    COLUMNS,
    CONSTRAINTS,
    GRANTS,
    HISTORY,
    INDEXES,
    PARTITIONS,
    PRIMARY_KEY,
    SEQUENCES,
    TABLES,
    TRIGGERS,
    VIEWS,
)

GRANULARITIES = ("day", "week", "month")
STEPS = ("create", "capture", "copy", "index", "verify", "swap", "post_check")
PRIVILEGES = {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"}
MAX_PARTITIONS = 2000
APPLICATION_NAME = "opsconsole-partitions"


def connect(url: str) -> psycopg.Connection:
    try:
        return psycopg.connect(
            url,
            autocommit=True,
            connect_timeout=5,
            options="-c TimeZone=UTC",
            application_name=APPLICATION_NAME,
        )
    except psycopg.OperationalError as exc:
        raise WarehouseUnreachable(str(exc).strip()) from exc


def _filters_on(query: str, column: str) -> bool:
    lowered = query.lower()
    where = lowered.find(" where ")
    return where >= 0 and column in lowered[where:]


def regclass(conn: psycopg.Connection, schema: str, table: str) -> str:
    return sql.Identifier(schema, table).as_string(conn)


class PostgresBackend(Backend):
    kind = "postgres"
    granularities = GRANULARITIES
    steps = STEPS

    def __init__(self, url: str):
        self.url = url
        self._conn: psycopg.Connection | None = None

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.url)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def ping(self) -> str:
        version = self.conn.execute("SHOW server_version").fetchone()[0]
        return f"PostgreSQL {version}"

    # --- inventory ---------------------------------------------------------

    def list_tables(self) -> list[TableInfo]:
        tables = []
        for schema, name, kind, rows, size, partkey in self.conn.execute(TABLES):
            tables.append(
                TableInfo(
                    schema=schema,
                    name=name,
                    kind="partitioned" if kind == "p" else "table",
                    rows=rows if rows >= 0 else None,
                    bytes=size,
                    partitioning=_partitioning(partkey) if partkey else None,
                )
            )
        return tables

    def list_partitions(self, schema: str, table: str) -> list[PartitionInfo]:
        rows = self.conn.execute(PARTITIONS, [regclass(self.conn, schema, table)]).fetchall()
        return [
            PartitionInfo(
                name=name,
                bounds=bounds,
                rows=live if live is not None and tuples < 0 else max(tuples, 0),
                bytes=size,
                modified=stamp.isoformat(timespec="seconds") if stamp else None,
            )
            for name, bounds, tuples, size, stamp, live in rows
        ]

    def describe(self, schema: str, table: str) -> TableInfo:
        validate_name(schema, "schema")
        validate_name(table, "table")
        found = self.conn.execute(
            "SELECT c.relkind, c.reltuples::bigint, pg_total_relation_size(c.oid),"
            " pg_get_partkeydef(c.oid) FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
            [schema, table],
        ).fetchone()
        if found is None:
            raise PlanRefused(f"table {schema}.{table} does not exist")
        kind, rows, size, partkey = found
        if kind not in ("r", "p"):
            raise PlanRefused(f"{schema}.{table} is not a table")
        reg = regclass(self.conn, schema, table)
        columns = [
            Column(name, type_, nullable)
            for name, type_, nullable, *_ in self.conn.execute(COLUMNS, [reg])
        ]
        pk = [r[0] for r in self.conn.execute(PRIMARY_KEY, [reg])]
        info = TableInfo(
            schema=schema,
            name=table,
            kind="partitioned" if kind == "p" else "table",
            rows=rows if rows >= 0 else None,
            bytes=size,
            columns=columns,
            primary_key=pk,
            partitioning=_partitioning(partkey) if partkey else None,
        )
        info.dependents = self.dependents(schema, table)
        return info

    def dependents(self, schema: str, table: str) -> list[Dependent]:
        reg = regclass(self.conn, schema, table)
        found: list[Dependent] = []
        for _oid, vschema, vname, vkind, _def in self.conn.execute(VIEWS, [reg]):
            if vkind == "m":
                found.append(
                    Dependent(
                        "materialized view",
                        f"{vschema}.{vname}",
                        "re-created with its indexes from the new table inside the swap"
                        " (its query runs while the table is locked; grants on it are not kept)",
                    )
                )
            else:
                found.append(
                    Dependent(
                        "view", f"{vschema}.{vname}", "re-created on the new table at the swap"
                    )
                )
        for name, _type, definition, owner, outbound in self.conn.execute(CONSTRAINTS, {"t": reg}):
            if outbound:
                found.append(
                    Dependent("foreign key", f"{name}: {definition}", "added to the new table")
                )
            else:
                found.append(
                    Dependent(
                        "inbound foreign key",
                        f"{owner}.{name}: {definition}",
                        "",
                        blocking=True,
                    )
                )
        for (name,) in self.conn.execute(TRIGGERS, [reg]):
            found.append(Dependent("trigger", name, "", blocking=True))
        for grantee, privilege in self.conn.execute(GRANTS, [reg]):
            found.append(
                Dependent("grant", f"{privilege} to {grantee}", "granted on the new table")
            )
        for seq, seq_schema, column in self.conn.execute(SEQUENCES, [reg]):
            found.append(
                Dependent(
                    "sequence",
                    f"{seq_schema}.{seq} ({column})",
                    "kept; ownership moves to the new table at the swap",
                )
            )
        for name, unique, method, expression, cols in self.conn.execute(INDEXES, [reg]):
            how = "re-created on the new table"
            if expression:
                how = "not carried over (expression or partial index): re-create it afterwards"
            elif unique:
                how = "re-created with the partition column added (uniqueness per partition)"
            found.append(Dependent(f"{method} index", f"{name} ({', '.join(cols)})", how))
        return found

    def schema_fingerprint(self, info: TableInfo) -> str:
        shape = {
            "kind": info.kind,
            "columns": [(c.name, c.type, c.nullable) for c in info.columns],
            "pk": info.primary_key,
            "dependents": [(d.kind, d.name) for d in info.dependents],
        }
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()

    # --- plan ----------------------------------------------------------------

    def plan(self, migration_id: int, info: TableInfo, options: MigrationOptions) -> dict:
        refuse_unless_migratable(info, options)
        profile = self.profile(info, options)
        profile["query_history"] = self.query_history(info, options)
        return build_plan(self.conn, migration_id, info, options, profile, self.view_defs(info))

    def query_history(self, info: TableInfo, options: MigrationOptions) -> dict[str, Any]:
        """Recent statements on the table (pg_stat_statements) and how many filter on
        the partition column: those are the ones partition pruning can speed up."""
        try:
            rows = self.conn.execute(HISTORY, [f"%{info.name}%"]).fetchall()
        except psycopg.Error:
            return {"available": False}
        column = options.column.lower()
        filtered = [(q, calls) for q, calls in rows if _filters_on(q, column)]
        return {
            "available": True,
            "statements": len(rows),
            "calls": sum(c for _, c in rows),
            "filtering_on_key": len(filtered),
            "calls_filtering_on_key": sum(c for _, c in filtered),
            "examples": [q[:200] for q, _ in filtered[:3]],
        }

    def profile(self, info: TableInfo, options: MigrationOptions) -> dict[str, Any]:
        """One scan: rows, NULL keys, key range, and the batch column's range."""
        batch_col = batch_column(info, options)
        table = sql.Identifier(info.schema, info.name)
        key = sql.Identifier(options.column)
        query = sql.SQL(
            "SELECT count(*), count(*) FILTER (WHERE {key} IS NULL), min({key}), max({key}),"
            " min({b}), max({b}) FROM {table}"
        ).format(key=key, b=sql.Identifier(batch_col), table=table)
        rows, nulls, kmin, kmax, bmin, bmax = self.conn.execute(query).fetchone()
        return {
            "rows": rows,
            "null_keys": nulls,
            "key_min": kmin,
            "key_max": kmax,
            "batch_column": batch_col,
            "batch_min": bmin,
            "batch_max": bmax,
        }

    def view_defs(self, info: TableInfo) -> list[dict[str, Any]]:
        reg = regclass(self.conn, info.schema, info.name)
        views = []
        for oid, vs, vn, kind, definition in self.conn.execute(VIEWS, [reg]).fetchall():
            indexes = [
                row[0]
                for row in self.conn.execute(
                    "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = %s"
                    " ORDER BY indexrelid",
                    [oid],
                )
            ]
            views.append(
                {
                    "schema": vs,
                    "name": vn,
                    "kind": kind,
                    "definition": definition,
                    "indexes": indexes,
                }
            )
        return views

    # --- running ---------------------------------------------------------------

    def run_step(self, plan: dict, step: str, report: StepReport) -> dict:
        return postgres_run.run_step(self.conn, self.url, plan, step, report)

    def undo(self, plan: dict, swapped: bool, report: StepReport) -> dict:
        return postgres_run.undo(self.conn, plan, swapped, report)

    def is_swapped(self, plan: dict) -> bool:
        return postgres_run.is_swapped(self.conn, plan)

    def drop_original(self, plan: dict) -> None:
        postgres_run.drop_original(self.conn, plan)

    def maintain(self, plan: dict, dry_run: bool) -> dict:
        from .postgres_retention import maintain

        return maintain(self.conn, plan, dry_run)


def _partitioning(partkey: str) -> dict[str, Any]:
    method, _, rest = partkey.partition(" ")
    return {"type": method.lower(), "column": rest.strip("()"), "definition": partkey}


def batch_column(info: TableInfo, options: MigrationOptions) -> str:
    """A single integer primary key batches the copy through its index; a table
    without one is batched by the partition column."""
    if len(info.primary_key) == 1:
        column = info.column(info.primary_key[0])
        if column and column.type in ("bigint", "integer", "smallint"):
            return column.name
    return options.column


def refuse_unless_migratable(info: TableInfo, options: MigrationOptions) -> None:
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
        names = "; ".join(f"{d.kind} {d.name}" for d in blocking)
        raise PlanRefused(
            "these dependents cannot be carried over automatically (inbound foreign keys"
            " need the partition column in the referenced key; triggers must be re-created"
            f" by hand): {names}"
        )


def partition_bounds(
    kmin: Any, kmax: Any, granularity: str, premake: int, today: date
) -> list[tuple[date, date]]:
    """Range bounds from the oldest key to `premake` periods past today (UTC)."""
    start = _trunc(_as_date(kmin) if kmin is not None else today, granularity)
    last = max(_as_date(kmax) if kmax is not None else today, today)
    end = _step(_trunc(last, granularity), granularity, premake + 1)
    bounds = []
    cursor = start
    while cursor < end:
        nxt = _step(cursor, granularity, 1)
        bounds.append((cursor, nxt))
        cursor = nxt
        if len(bounds) > MAX_PARTITIONS:
            raise PlanRefused(f"more than {MAX_PARTITIONS} partitions: pick a coarser granularity")
    return bounds


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    return value


def _trunc(d: date, granularity: str) -> date:
    if granularity == "day":
        return d
    if granularity == "week":
        return d - timedelta(days=d.weekday())
    return d.replace(day=1)


def _step(d: date, granularity: str, n: int) -> date:
    if granularity == "day":
        return d + timedelta(days=n)
    if granularity == "week":
        return d + timedelta(weeks=n)
    month = d.month - 1 + n
    return date(d.year + month // 12, month % 12 + 1, 1)


def build_plan(
    conn: psycopg.Connection,
    migration_id: int,
    info: TableInfo,
    options: MigrationOptions,
    profile: dict[str, Any],
    views: list[dict[str, str]],
) -> dict:
    from .postgres_plan import compose_plan

    today = datetime.now(UTC).date()
    bounds = partition_bounds(
        profile["key_min"], profile["key_max"], options.granularity, options.premake, today
    )
    names = migration_names(info.name, migration_id)
    return compose_plan(conn, info, options, profile, views, bounds, names)


def migration_names(table: str, migration_id: int) -> dict[str, str]:
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
