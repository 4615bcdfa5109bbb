"""Compose the BigQuery plan: validated backtick names, values as parameters."""

import math
from datetime import date, datetime, timedelta
from typing import Any

from ..base import MigrationOptions, PlanRefused, TableInfo, fit_identifier
from .grammar import GRANULARITIES, column, now_tag

TRUNC = {"TIMESTAMP": "TIMESTAMP_TRUNC", "DATETIME": "DATETIME_TRUNC", "DATE": "DATE_TRUNC"}


def partition_expression(col_type: str, name: str, granularity: str) -> str:
    if col_type == "DATE" and granularity == "DAY":
        return column(name)
    return f"{TRUNC[col_type]}({column(name)}, {granularity})"


def options_clause(options: MigrationOptions) -> str:
    parts = [
        f"require_partition_filter = {'TRUE' if options.require_partition_filter else 'FALSE'}"
    ]
    if options.retention_days:
        parts.insert(0, f"partition_expiration_days = {int(options.retention_days)}")
    return f"OPTIONS ({', '.join(parts)})"


def condition(name: str, kind: str) -> str:
    c = column(name)
    return {
        "not_null": f"{c} IS NOT NULL",
        "below": f"{c} < @hi",
        "range": f"{c} >= @lo AND {c} < @hi",
        "from": f"{c} >= @lo",
        "null": f"{c} IS NULL",
    }[kind]


def batches(profile: dict, options: MigrationOptions, col_type: str) -> list[dict]:
    lo, hi, rows = profile["key_min"], profile["key_max"], profile["rows"] or 0
    count = max(1, math.ceil(rows / max(1, options.batch_rows)))
    out: list[dict] = []
    if lo is None or count == 1 or lo == hi:
        out.append({"n": 0, "where": "not_null", "lo": None, "hi": None})
    else:
        span = hi - lo
        cuts = [lo + span * i / count for i in range(1, count)]
        if isinstance(lo, date) and not isinstance(lo, datetime):
            cuts = sorted(
                {lo + timedelta(days=round(span.days * i / count)) for i in range(1, count)}
            )
        out.append({"n": 0, "where": "below", "lo": None, "hi": _p(cuts[0], col_type)})
        for i in range(1, len(cuts)):
            out.append(
                {
                    "n": i,
                    "where": "range",
                    "lo": _p(cuts[i - 1], col_type),
                    "hi": _p(cuts[i], col_type),
                }
            )
        out.append({"n": len(cuts), "where": "from", "lo": _p(cuts[-1], col_type), "hi": None})
    out.append({"n": len(out), "where": "null", "lo": None, "hi": None})
    return out


def _p(value: Any, col_type: str) -> dict:
    text = value.isoformat() if isinstance(value, datetime | date) else str(value)
    if col_type == "DATETIME" and "+" in text:
        text = text.split("+")[0]
    return {"type": col_type, "value": text}


def fingerprint_sql(backend, table: str, where: str = "") -> str:
    clause = f" WHERE {where}" if where else ""
    return (
        "SELECT COUNT(*), CAST(COALESCE(SUM(CAST(FARM_FINGERPRINT(TO_JSON_STRING(t))"  # noqa: S608 - validated, backtick-quoted names only
        f" AS BIGNUMERIC)), 0) AS STRING) FROM {backend.name(table)} AS t{clause}"
    )


def copy_statements(backend, src: str, new: str, where: str) -> dict[str, str]:
    n = backend.name
    return {
        "delete": f"DELETE FROM {n(new)} WHERE {where}",  # noqa: S608 - quoted names only
        "insert": f"INSERT INTO {n(new)} SELECT * FROM {n(src)} WHERE {where}",  # noqa: S608
        "fp_src": fingerprint_sql(backend, src, where),
        "fp_new": fingerprint_sql(backend, new, where),
    }


def compose_plan(
    backend, migration_id: int, info: TableInfo, options: MigrationOptions, profile: dict
) -> dict:
    src = info.name
    col_type = info.column(options.column).type
    names = {
        "new": fit_identifier(src, f"__m{migration_id}_part", limit=1000),
        "old": fit_identifier(src, f"__m{migration_id}_orig", limit=1000),
        "backup": fit_identifier(src, f"_backup_{now_tag()}", limit=1000),
        "probe": fit_identifier(src, f"__m{migration_id}_rename_probe", limit=1000),
        "probed": fit_identifier(src, f"__m{migration_id}_rename_probed", limit=1000),
    }
    new, old, backup = names["new"], names["old"], names["backup"]
    n = backend.name
    cluster = (
        f" CLUSTER BY {', '.join(column(c) for c in options.clustering)}"
        if options.clustering
        else ""
    )
    create = (
        f"CREATE TABLE {n(new)} PARTITION BY"  # noqa: S608 - validated, backtick-quoted names only
        f" {partition_expression(col_type, options.column, options.granularity)}{cluster}"
        f" {options_clause(options)} AS SELECT * FROM {n(src)} WHERE FALSE"
    )
    plan_batches = batches(profile, options, col_type)
    kinds = sorted({b["where"] for b in plan_batches})
    copy_sql = {
        kind: copy_statements(backend, src, new, condition(options.column, kind)) for kind in kinds
    }
    views = [d.name for d in info.dependents if d.kind == "view"]
    rename = [
        f"ALTER TABLE {n(src)} RENAME TO `{old}`",
        f"ALTER TABLE {n(new)} RENAME TO `{src}`",
    ]
    view_swap = [f"DROP TABLE {n(src)}", f"CREATE VIEW {n(src)} AS SELECT * FROM {n(new)}"]  # noqa: S608 - validated, backtick-quoted names only
    steps = [
        {
            "name": "backup",
            "title": f"Copy the table to {backup} (copy job), read back: rows and checksum equal",
            "sql": [f"-- copy job: {n(src)} -> {n(backup)} (WRITE_TRUNCATE)"],
            "rollback": [f"DROP TABLE IF EXISTS {n(backup)}"],
        },
        {
            "name": "create",
            "title": "Create the partitioned (and clustered) table, empty; read its schema back",
            "sql": [create],
            "rollback": [f"DROP TABLE IF EXISTS {n(new)}"],
        },
        {
            "name": "copy",
            "title": f"Copy in {len(plan_batches)} ranges of {options.column} (each range"
            " re-done whole on resume: DELETE then INSERT … SELECT)",
            "sql": [s for k in kinds for s in (copy_sql[k]["delete"], copy_sql[k]["insert"])],
            "rollback": [f"DROP TABLE IF EXISTS {n(new)}"],
        },
        {
            "name": "verify",
            "title": "Row count and an order-independent checksum per range, both sides",
            "sql": [s for k in kinds for s in (copy_sql[k]["fp_src"], copy_sql[k]["fp_new"])],
            "rollback": [],
        },
        {
            "name": "swap",
            "title": "Refuse if the source changed since the copy; rename, or (where rename"
            " does not take effect) drop the original, whose verified backup is kept, and"
            " put a view under its name pointing at the new table",
            "sql": [
                fingerprint_sql(backend, src),
                fingerprint_sql(backend, new),
                *rename,
                "-- if the rename did not take effect:",
                *view_swap,
            ],
            "rollback": [
                f"-- rename mode: ALTER TABLE {n(src)} RENAME TO `{new}`;"
                f" ALTER TABLE {n(old)} RENAME TO `{src}`",
                f"DROP VIEW IF EXISTS {n(src)}",
                f"-- copy job: {n(backup)} -> {n(src)}",
            ],
        },
        {
            "name": "post_check",
            "title": "Rows through the old name equal the verified rows; dependent views answer",
            "sql": [f"SELECT COUNT(*) FROM {n(src)}"]  # noqa: S608 - validated, backtick-quoted names only
            + [f"SELECT 1 FROM {n(v)} LIMIT 1" for v in views],  # noqa: S608 - validated, backtick-quoted names only
            "rollback": [],
        },
    ]
    return {
        "backend": "bigquery",
        "schema": info.schema,
        "table": src,
        "options": options.as_dict(),
        "names": names,
        "key": options.column,
        "batches": plan_batches,
        "views": views,
        "estimates": {
            "rows": profile["rows"],
            "bytes": info.bytes,
            "partitions_to_create": "one per "
            + options.granularity.lower()
            + f" from {profile['key_min']} to {profile['key_max']}",
            "null_keys": profile["null_keys"],
            "null_keys_go_to": "__NULL__ partition" if profile["null_keys"] else "",
            "batches": len(plan_batches),
            "dry_run_bytes": "not estimated (the emulator reports 0 for dry runs)",
        },
        "dependents": [d.__dict__ for d in info.dependents],
        "warnings": [
            "BigQuery has no triggers: writes to the table during the migration make the"
            " swap refuse and the run roll back; pause writers or plan a quiet window"
        ],
        "steps": steps,
        "sql": {
            "create": create,
            "copy": copy_sql,
            "fingerprint_src": fingerprint_sql(backend, src),
            "fingerprint_new": fingerprint_sql(backend, new),
            "fingerprint_backup": fingerprint_sql(backend, backup),
            "rename": rename,
            "view_swap": view_swap,
            "rename_back": [
                f"ALTER TABLE {n(src)} RENAME TO `{new}`",
                f"ALTER TABLE {n(old)} RENAME TO `{src}`",
            ],
            "drop_view": f"DROP VIEW IF EXISTS {n(src)}",
            "drop_new": f"DROP TABLE IF EXISTS {n(new)}",
            "drop_old": f"DROP TABLE IF EXISTS {n(old)}",
            "drop_backup": f"DROP TABLE IF EXISTS {n(backup)}",
            "count_src": f"SELECT COUNT(*) FROM {n(src)}",  # noqa: S608 - validated, backtick-quoted names only
            "views": [f"SELECT 1 FROM {n(v)} LIMIT 1" for v in views],  # noqa: S608 - validated, backtick-quoted names only
        },
    }


def refuse_unless_migratable(info: TableInfo, options: MigrationOptions) -> None:
    """PlanRefused, with the reason, unless BigQuery can partition the table so."""
    if info.kind == "partitioned":
        raise PlanRefused(f"{info.schema}.{info.name} is already partitioned")
    if options.scheme != "range":
        raise PlanRefused(
            f"{options.scheme} partitioning is PostgreSQL only: BigQuery partitions by a"
            " time column here"
        )
    col = info.column(options.column)
    if col is None:
        raise PlanRefused(f"column {options.column!r} does not exist")
    if col.type not in ("TIMESTAMP", "DATE", "DATETIME"):
        raise PlanRefused(
            f"column {options.column!r} is {col.type}: only TIMESTAMP, DATETIME and DATE"
            " columns can partition by time"
        )
    if options.granularity not in GRANULARITIES:
        raise PlanRefused(f"granularity must be one of {', '.join(GRANULARITIES)}")
    if options.granularity == "HOUR" and col.type == "DATE":
        raise PlanRefused("a DATE column cannot partition by HOUR")
    if len(options.clustering) > 4:
        raise PlanRefused("BigQuery clusters by at most 4 columns")
    for name in options.clustering:
        if info.column(name) is None:
            raise PlanRefused(f"clustering column {name!r} does not exist")
