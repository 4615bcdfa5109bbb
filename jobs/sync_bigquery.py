"""table_sync into BigQuery, through the partitions BigQuery backend.

The same contract as the PostgreSQL target (jobs/sync.py): source rows are read in
(watermark, primary key) order in batches; the newest (watermark, key) already in the
target table is the checkpoint. Each batch is written as
`DELETE … WHERE key IN UNNEST(@keys)` then `INSERT … SELECT … FROM UNNEST(@rows)`,
values only as query parameters, names only validated and backtick-quoted by the
backend. The effect is read back: after a batch the target must hold exactly one row
per key of the batch.

BigQuery runs the two statements as two jobs (the emulator cannot run a multi-statement
transaction with query parameters). A crash between them is still safe: the deleted rows
all have a newer (watermark, key) than whatever is left in the target, so the next run's
checkpoint is at most where this batch started, and the batch is read and written again.
"""

import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import bigquery

from partitions.backends import for_url
from partitions.backends.base import PlanRefused
from partitions.backends.bigquery import (
    COLUMN_RE,
    QUERY_TIMEOUT_S,
    RETRY,
    TABLE_RE,
    BigQueryBackend,
    check,
    column,
)
from partitions.warehouses import WarehouseUnreachable
from partitions.warehouses import postgres as connections

from .sync import SyncError, describe_source, pending_rows, source_batches

# PostgreSQL type (format_type() without its modifier) -> BigQuery type.
TYPE_MAP = {
    "bigint": "INT64",
    "integer": "INT64",
    "smallint": "INT64",
    "numeric": "NUMERIC",
    "double precision": "FLOAT64",
    "real": "FLOAT64",
    "text": "STRING",
    "character varying": "STRING",
    "character": "STRING",
    "uuid": "STRING",
    "timestamp with time zone": "TIMESTAMP",
    "timestamp without time zone": "TIMESTAMP",
    "date": "DATE",
    "boolean": "BOOL",
    "json": "STRING",  # the JSON text; the emulator reads a JSON column back as STRING
    "jsonb": "STRING",
}
# What tables.get may call the same types.
SAME_TYPE = {"INTEGER": "INT64", "BOOLEAN": "BOOL", "FLOAT": "FLOAT64"}
MODIFIER = re.compile(r"\(([^)]*)\)")


class ReadBackMismatch(RuntimeError):
    """A write whose effect, read back, is not what was sent (retryable)."""


def valid(pattern: re.Pattern, value: str, what: str) -> str:
    """check() (whole-string), refusing as the sync refuses: with a SyncError."""
    try:
        return check(pattern, value, what)
    except PlanRefused as exc:
        raise SyncError(str(exc)) from None


def bigquery_type(name: str, pg_type: str) -> str:
    """The BigQuery type for a source column, or SyncError for a type it cannot hold."""
    base = MODIFIER.sub("", pg_type).strip()
    if base == "numeric":
        modifier = MODIFIER.search(pg_type)
        if modifier:
            precision, _, scale = modifier.group(1).partition(",")
            scale_digits = int(scale or 0)
            if scale_digits > 9 or int(precision) - scale_digits > 29:
                raise SyncError(
                    f"Column {name!r} is {pg_type}: BigQuery NUMERIC holds at most 29 digits"
                    " before the point and 9 after."
                )
    if base not in TYPE_MAP:
        raise SyncError(
            f"Column {name!r} has type {pg_type}, which table_sync cannot map to BigQuery"
            f" (supported: {', '.join(sorted(TYPE_MAP))})."
        )
    return TYPE_MAP[base]


# --- SQL builders: validated, backtick-quoted names and @parameters only ----------


def create_sql(target: BigQueryBackend, table: str, columns: list[tuple[str, str]]) -> str:
    defs = ", ".join(f"{column(name)} {known_type(type_)}" for name, type_ in columns)
    return f"CREATE TABLE IF NOT EXISTS {target.name(table)} ({defs})"


def known_type(type_: str) -> str:
    """Only the fixed type names of TYPE_MAP ever reach DDL."""
    if type_ not in set(TYPE_MAP.values()):
        raise SyncError(f"not a BigQuery type table_sync writes: {type_!r}")
    return type_


def checkpoint_sql(target: BigQueryBackend, table: str, order: list[str]) -> str:
    return (
        f"SELECT {', '.join(map(column, order))} FROM {target.name(table)}"  # noqa: S608 - validated, backtick-quoted names only
        f" ORDER BY {', '.join(column(c) + ' DESC' for c in order)} LIMIT 1"
    )


def key_filter(key: list[str], alias: str = "tgt") -> str:
    """Rows of the target (aliased `alias`) whose key is in @keys."""
    if len(key) == 1:
        return f"{alias}.{column(key[0])} IN UNNEST(@keys)"
    match = " AND ".join(f"k.{column(c)} = {alias}.{column(c)}" for c in key)
    return f"EXISTS (SELECT 1 FROM UNNEST(@keys) AS k WHERE {match})"  # noqa: S608 - validated, backtick-quoted names only


def delete_sql(target: BigQueryBackend, table: str, key: list[str]) -> str:
    return f"DELETE FROM {target.name(table)} AS tgt WHERE {key_filter(key)}"  # noqa: S608 - validated, backtick-quoted names only


def insert_sql(target: BigQueryBackend, table: str, names: list[str]) -> str:
    cols = ", ".join(map(column, names))
    values = ", ".join(f"r.{column(n)}" for n in names)
    return f"INSERT INTO {target.name(table)} ({cols}) SELECT {values} FROM UNNEST(@rows) AS r"  # noqa: S608 - validated, backtick-quoted names only


def count_keys_sql(target: BigQueryBackend, table: str, key: list[str]) -> str:
    return f"SELECT COUNT(*) FROM {target.name(table)} AS tgt WHERE {key_filter(key)}"  # noqa: S608 - validated, backtick-quoted names only


# --- values ---------------------------------------------------------------------


def to_bigquery(value: Any, bq_type: str, pg_type: str, name: str) -> Any:
    if value is None:
        return None
    if pg_type in ("json", "jsonb"):
        return json.dumps(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if (
        bq_type == "NUMERIC"
        and isinstance(value, Decimal)
        and (not value.is_finite() or value.as_tuple().exponent < -9)
    ):
        raise SyncError(f"Column {name!r} holds {value}, which BigQuery NUMERIC cannot hold.")
    return value


def from_bigquery(value: Any, pg_type: str) -> Any:
    """A checkpoint value read from BigQuery, as the source column compares with it."""
    if isinstance(value, datetime) and pg_type.startswith("timestamp") and "without" in pg_type:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def struct(fields: list[tuple[str, str]], values) -> bigquery.StructQueryParameter:
    return bigquery.StructQueryParameter(
        None,
        *(bigquery.ScalarQueryParameter(n, t, v) for (n, t), v in zip(fields, values, strict=True)),
    )


def keys_param(
    key_fields: list[tuple[str, str]], keys: list[tuple]
) -> bigquery.ArrayQueryParameter:
    if len(key_fields) == 1:
        return bigquery.ArrayQueryParameter("keys", key_fields[0][1], [k[0] for k in keys])
    return bigquery.ArrayQueryParameter("keys", "STRUCT", [struct(key_fields, k) for k in keys])


def run(target: BigQueryBackend, text: str, params: list) -> list[tuple]:
    """A statement with typed parameters (arrays and structs), through the backend's client."""
    config = bigquery.QueryJobConfig(query_parameters=params)
    try:
        job = target.client.query(text, job_config=config, retry=RETRY)
        return [tuple(row.values()) for row in job.result(timeout=QUERY_TIMEOUT_S)]
    except gexc.BadRequest as exc:
        raise SyncError(f"BigQuery refused the statement: {exc.message}") from exc
    except (gexc.ServiceUnavailable, gexc.RetryError, OSError) as exc:
        raise WarehouseUnreachable(str(exc)) from exc


# --- the sync ---------------------------------------------------------------------


def ensure_target(target: BigQueryBackend, table: str, fields: list[tuple[str, str]]) -> None:
    """Create the target table if missing, then read its schema back and compare."""
    found = target.table(table)
    if found is None:
        run(target, create_sql(target, table, fields), [])
        if not target.wait_until(lambda: target.table(table) is not None):
            raise ReadBackMismatch(f"{target.ref(table)} was created but does not read back.")
        found = target.table(table)
    have = [(f.name, SAME_TYPE.get(f.field_type, f.field_type)) for f in found.schema]
    if have != fields:
        raise SyncError(
            f"Target {target.dataset}.{table} exists with columns {have}, not the source's"
            f" {fields}; drop it or choose another target table."
        )


def sync_to_bigquery(
    source_url: str,
    source_name: str,
    target_url: str,
    target_name: str,
    watermark: str = "updated_at",
    batch_size: int = 5000,
    report: Callable[..., None] = lambda read, written, msg, total=None: None,
) -> dict:
    """Copy source rows newer than the target's newest (watermark, key) into BigQuery.

    Changes: deletes and re-inserts, by primary key, rows of the target table (created if
    missing) in the warehouse's dataset.
    Undo: none needed; the target is a copy, rebuilt by dropping it and syncing again.
    """
    table = valid(TABLE_RE, target_name, "table name")
    target = for_url(target_url)
    if not isinstance(target, BigQueryBackend):
        raise SyncError(f"{target_url.split('://')[0]} warehouse given to the BigQuery sync.")
    try:
        with connections.connect(source_url, purpose="table-sync") as src:
            source, columns, key = describe_source(src, source_name, watermark)
            names = [c for c, _ in columns]
            for name in names:
                valid(COLUMN_RE, name, "column name")
            pg_types = dict(columns)
            fields = [(name, bigquery_type(name, type_)) for name, type_ in columns]
            bq_types = dict(fields)
            ensure_target(target, table, fields)

            order = [watermark, *key]
            found = run(target, checkpoint_sql(target, table, order), [])
            start = (
                tuple(from_bigquery(v, pg_types[c]) for c, v in zip(order, found[0], strict=True))
                if found
                else None
            )
            return copy_batches(
                src, source, target, table, names, key, order, pg_types, bq_types,
                start, batch_size, report,
            )  # fmt: skip
    finally:
        target.close()


def copy_batches(
    src, source, target, table, names, key, order, pg_types, bq_types, start, batch_size, report
) -> dict:
    fields = [(n, bq_types[n]) for n in names]
    key_fields = [(k, bq_types[k]) for k in key]
    key_pos = [names.index(k) for k in key]
    delete, insert = delete_sql(target, table, key), insert_sql(target, table, names)
    count = count_keys_sql(target, table, key)
    pending = pending_rows(src, source, order, start)
    read = written = batches = 0
    mark = start
    for rows, mark in source_batches(src, source, names, order, start, batch_size):
        keys = [tuple(row[p] for p in key_pos) for row in rows]
        values = [
            [to_bigquery(v, bq_types[n], pg_types[n], n) for n, v in zip(names, row, strict=True)]
            for row in rows
        ]
        keys_value = keys_param(key_fields, [tuple(v[p] for p in key_pos) for v in values])
        rows_value = bigquery.ArrayQueryParameter(
            "rows", "STRUCT", [struct(fields, v) for v in values]
        )
        run(target, delete, [keys_value])
        run(target, insert, [rows_value])
        there = run(target, count, [keys_value])[0][0]
        if there != len(keys):
            raise ReadBackMismatch(
                f"batch {batches + 1}: {len(keys)} rows written to {target.ref(table)},"
                f" {there} read back for their keys."
            )
        written += len(rows)
        read += len(rows)
        batches += 1
        message = f"batch {batches}: up to {order[0]} = {mark[0]}"
        report(read, written, message, total=max(pending, read))
    return {
        "source": str(source),
        "target": f"{target.dataset}.{table}",
        "rows_read": read,
        "rows_written": written,
        "batches": batches,
        "watermark": str(mark[0]) if mark else None,
    }
