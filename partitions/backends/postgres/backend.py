"""The PostgreSQL backend: the Backend interface over the layers below it.

catalog (what the table is) → rules (what a migration may be) → render, swap,
templates (the statements, composed with psycopg.sql once) → plan → run (steps,
swap, undo) → retention. This module wires them to one warehouse connection,
opened by the warehouse layer; the plan shown is the stored text the run executes.
"""

import hashlib
import json
from typing import Any

import psycopg
from psycopg import sql

from partitions.warehouses import postgres as connections

from ..base import (
    Backend,
    Column,
    Dependent,
    MigrationOptions,
    PartitionInfo,
    PlanRefused,
    StepReport,
    TableInfo,
    validate_name,
)
from . import retention, run
from .catalog import (
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
    filters_on,
    identity_columns,
    partitioning,
    regclass,
)
from .plan import build_plan
from .rules import (
    GRANULARITIES,
    MAX_LIST_VALUES,
    PartitionKey,
    batch_column,
    refuse_unless_migratable,
)

# Names the migration's session in pg_stat_activity (tests cut it by this name).
APPLICATION_NAME = connections.application_name("partitions")
STEPS = ("create", "capture", "copy", "index", "verify", "swap", "post_check")


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
            self._conn = connections.connect(self.url, purpose="partitions", utc=True)
        return self._conn

    def connect(self) -> psycopg.Connection:
        """Another connection of the migration (the parallel copy's lanes)."""
        return connections.connect(self.url, purpose="partitions", utc=True)

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
                    partitioning=partitioning(partkey) if partkey else None,
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
            partitioning=partitioning(partkey) if partkey else None,
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
        for name, _type, definition, owner, outbound, referenced in self.conn.execute(
            CONSTRAINTS, {"t": reg}
        ):
            if outbound:
                found.append(
                    Dependent("foreign key", f"{name}: {definition}", "added to the new table")
                )
            else:
                found.append(
                    Dependent(
                        "inbound foreign key",
                        f"{owner}.{name}: {definition}",
                        "re-created at the swap as NOT VALID, then validated without"
                        " blocking writes, if it references the partition column; otherwise"
                        " it cannot be: a key of a partitioned table must include the"
                        f" partition column. Choices: drop {name} (and check the reference"
                        f" another way), or add the partition column to {owner} and reference"
                        f" the key with it, or keep {schema}.{table} unpartitioned",
                        blocking=True,
                        columns=list(referenced),
                    )
                )
        for name, enabled, _definition in self.conn.execute(TRIGGERS, [reg]):
            if enabled != "O":
                found.append(
                    Dependent(
                        "trigger",
                        name,
                        "not carried over: it is disabled or fires only in replica/always"
                        " mode; enable it (or drop it) and plan again",
                        blocking=True,
                    )
                )
                continue
            found.append(
                Dependent(
                    "trigger",
                    name,
                    "re-created on the new table at the swap; the original's is disabled"
                    " while swapped (replayed writes must not fire it twice) and enabled"
                    " again by a rollback",
                )
            )
        for column in identity_columns(self.conn, schema, table):
            found.append(
                Dependent(
                    "identity column",
                    column,
                    "the new table has its own identity, set to the original's position at"
                    " the swap (and the original's to the new one's at a rollback)",
                )
            )
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
        filtered = [(q, calls) for q, calls in rows if filters_on(q, column)]
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
            "SELECT count(*), count(*) FILTER (WHERE {key} IS NULL), min({k}), max({k}),"
            " min({b}), max({b}) FROM {table}"
        ).format(
            key=key,
            k=orderable(info, options.column),
            b=orderable(info, batch_col),
            table=table,
        )
        rows, nulls, kmin, kmax, bmin, bmax = self.conn.execute(query).fetchone()
        profile = {
            "rows": rows,
            "null_keys": nulls,
            "key_min": kmin,
            "key_max": kmax,
            "batch_column": batch_col,
            "batch_min": bmin,
            "batch_max": bmax,
        }
        key = PartitionKey.of(info, options)
        if key.scheme == "range" and key.kind == "uuid":
            profile.update(self.uuid_versions(table, key))
        if key.scheme == "list":
            profile["values"] = self.distinct_values(table, key)
        return profile

    def uuid_versions(self, table: sql.Composable, key: PartitionKey) -> dict[str, Any]:
        """How many keys are not UUIDv7 (the version nibble, the 13th hex digit), and one."""
        version = sql.SQL("substr(CAST({} AS text), 15, 1)").format(sql.Identifier(key.column))
        query = sql.SQL("SELECT count(*), min(CAST({k} AS text)) FROM {t} WHERE {v} <> '7'").format(
            k=sql.Identifier(key.column), t=table, v=version
        )
        count, example = self.conn.execute(query).fetchone()
        return {"not_v7": count, "not_v7_example": example}

    def distinct_values(self, table: sql.Composable, key: PartitionKey) -> list[Any]:
        """The key's values, sorted; one past the most a list may have is enough for
        the plan to refuse a longer list."""
        query = sql.SQL(
            "SELECT DISTINCT {k} FROM {t} WHERE {k} IS NOT NULL ORDER BY 1 LIMIT {n}"
        ).format(k=sql.Identifier(key.column), t=table, n=sql.Literal(MAX_LIST_VALUES + 1))
        return [row[0] for row in self.conn.execute(query)]

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
        return run.run_step(self.conn, plan, step, report, connect=self.connect)

    def undo(self, plan: dict, swapped: bool, report: StepReport) -> dict:
        return run.undo(self.conn, plan, swapped, report)

    def is_swapped(self, plan: dict) -> bool:
        return run.is_swapped(self.conn, plan)

    def drop_original(self, plan: dict) -> None:
        run.drop_original(self.conn, plan)

    def maintain(self, plan: dict, dry_run: bool) -> dict:
        return retention.maintain(self.conn, plan, dry_run)


def orderable(info: TableInfo, column: str) -> sql.Composable:
    """`column` as min() and max() can read it: PostgreSQL 15 has no min(uuid), and
    a uuid's text in the C collation sorts as the uuid does."""
    if info.column(column).type == "uuid":
        return sql.SQL('CAST({} AS text) COLLATE "C"').format(sql.Identifier(column))
    return sql.Identifier(column)
