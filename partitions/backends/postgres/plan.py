"""Compose the PostgreSQL plan: profile figures, batches and every step's statements.

Reads the catalog (catalog.py), applies the rules (rules.py) and renders each step
(render.py, swap.py, templates.py) once, into the plan the operator reads.
"""

import math
from datetime import UTC, date, datetime
from typing import Any

import psycopg

from ..base import (
    CONSENT_LOSE_UNIQUENESS,
    NULL_KEY_CHOICES,
    MigrationOptions,
    PlanRefused,
    TableInfo,
)
from .catalog import generated_columns, owned_sequences
from .render import Render, step_capture, step_copy, step_create, step_index, step_verify
from .rules import migration_names, partition_bounds
from .swap import step_post_check, step_swap
from .templates import run_statements


def build_plan(
    conn: psycopg.Connection,
    migration_id: int,
    info: TableInfo,
    options: MigrationOptions,
    profile: dict[str, Any],
    views: list[dict[str, str]],
) -> dict:
    """The plan of migration `migration_id`: ranges from the profiled keys to premake."""
    today = datetime.now(UTC).date()
    bounds = partition_bounds(
        profile["key_min"], profile["key_max"], options.granularity, options.premake, today
    )
    names = migration_names(info.name, migration_id)
    return compose_plan(conn, info, options, profile, views, bounds, names)


def compose_plan(
    conn: psycopg.Connection,
    info: TableInfo,
    options: MigrationOptions,
    profile: dict[str, Any],
    views: list[dict[str, str]],
    bounds: list[tuple[date, date]],
    names: dict[str, str],
) -> dict:
    r = Render(conn, info.schema)
    key = info.column(options.column)
    insertable = [c.name for c in info.columns]
    generated = generated_columns(conn, info)
    insertable = [c for c in insertable if c not in generated]
    batches = batch_ranges(profile, options, info)
    key_nullable = bool(profile["null_keys"]) or key.nullable
    pk = list(info.primary_key)
    new_pk = pk + ([options.column] if pk and options.column not in pk else [])
    warnings: list[str] = []
    if pk and key_nullable and null_keys_accepted(options, profile, pk):
        warnings.append(
            f"{profile['null_keys']} rows have no {options.column} (and the column allows"
            f" NULL): you chose to lose uniqueness, so the primary key ({', '.join(pk)})"
            " becomes a plain index and duplicates are no longer refused by the database"
        )
        new_pk = []
    elif pk and key_nullable:
        warnings.append(
            f"{options.column} allows NULL but no row has one: the new primary key"
            f" ({', '.join(new_pk)}) makes it NOT NULL. A NULL written during the migration"
            " stops it (rolled back, the original untouched); after the swap such writes fail"
        )
    if pk and options.column not in pk and new_pk:
        warnings.append(
            f"the primary key becomes ({', '.join(new_pk)}): PostgreSQL needs the partition"
            " column in every unique key of a partitioned table"
        )
    parts = [(f"{names['partition_prefix']}{lo:%Y%m%d}", lo, hi) for lo, hi in bounds]
    steps = [
        step_create(r, info, options, names, parts, generated),
        step_capture(r, info, names),
        step_copy(r, info, options, names, insertable, batches),
        step_index(r, info, options, names, pk, new_pk),
        step_verify(r, options, names),
        step_swap(r, info, options, names, views),
        step_post_check(r, info, names, views),
    ]
    return {
        "backend": "postgres",
        "schema": info.schema,
        "table": info.name,
        "options": options.as_dict(),
        "names": names,
        "columns": insertable,
        "column_types": {c.name: c.type for c in info.columns},
        "key": options.column,
        "key_nullable": key_nullable,
        "null_keys": "lose uniqueness" if pk and key_nullable and not new_pk else "",
        "pk": pk,
        "match_columns": pk or [c.name for c in info.columns],
        "batch_column": profile["batch_column"],
        "batch_type": info.column(profile["batch_column"]).type,
        "batches": batches,
        "views": views,
        "sequences": owned_sequences(conn, info),
        "partitions": [{"name": n, "from": str(lo), "to": str(hi)} for n, lo, hi in parts],
        "estimates": {
            "rows": profile["rows"],
            "bytes": info.bytes,
            "partitions_to_create": len(parts) + 1,
            "null_keys": profile["null_keys"],
            "null_keys_go_to": names["default"] if profile["null_keys"] else "",
            "out_of_range_keys": 0,
            "key_min": str(profile["key_min"]),
            "key_max": str(profile["key_max"]),
            "batches": len(batches),
            "scan_reduction": scan_reduction(profile, len(parts)),
        },
        "dependents": [d.__dict__ for d in info.dependents],
        "warnings": warnings,
        "steps": steps,
        "sql": run_statements(r, info, options, names, insertable),
    }


def null_keys_accepted(options: MigrationOptions, profile: dict, pk: list[str]) -> bool:
    """The operator's choice for NULL partition keys on a table with a primary key
    (a key of a partitioned table must include the partition column, which a NULL
    cannot be in): refused unless they chose to lose uniqueness and typed it."""
    if options.null_keys not in NULL_KEY_CHOICES:
        raise PlanRefused(f"null keys: choose one of {', '.join(NULL_KEY_CHOICES)}")
    if options.null_keys == "refuse":
        if profile["null_keys"]:
            raise PlanRefused(
                f"{profile['null_keys']} rows have no {options.column}, and the primary key"
                f" ({', '.join(pk)}) of a partitioned table must include it. Choices: give"
                " those rows a value (or delete them) and plan again, or accept losing"
                f' uniqueness (null keys: lose_uniqueness, typed "{CONSENT_LOSE_UNIQUENESS}"):'
                " the primary key becomes a plain index"
            )
        return False
    if options.consent.strip().lower() != CONSENT_LOSE_UNIQUENESS:
        raise PlanRefused(
            f"accepting NULL keys drops the primary key's uniqueness: type"
            f' "{CONSENT_LOSE_UNIQUENESS}" to confirm'
        )
    return True


def scan_reduction(profile: dict, partitions: int) -> str:
    history = profile.get("query_history") or {}
    if not history.get("available"):
        return "no query history (pg_stat_statements is not installed in this database)"
    if not history["statements"]:
        return "no recorded queries on this table yet"
    share = history["filtering_on_key"]
    if not share:
        return (
            f"none of {history['statements']} recorded statements filter on the partition"
            " column: partitioning will not make them read less"
        )
    return (
        f"{share} of {history['statements']} recorded statements"
        f" ({history['calls_filtering_on_key']} of {history['calls']} calls) filter on the"
        f" partition column; one covering a single range reads about 1/{max(1, partitions)}"
        " of the table instead of all of it"
    )


def batch_ranges(profile: dict, options: MigrationOptions, info: TableInfo) -> list[dict]:
    """Key ranges for the copy: open below and above, so rows written later land
    in some batch; plus one batch for NULL keys when the column allows them."""
    lo, hi, rows = profile["batch_min"], profile["batch_max"], profile["rows"]
    count = max(1, math.ceil(rows / max(1, options.batch_rows)))
    batches: list[dict] = []
    if lo is None or count == 1:
        batches.append({"n": 0, "where": "not_null", "lo": None, "hi": None})
    else:
        cuts = _cuts(lo, hi, count)
        batches.append({"n": 0, "where": "below", "lo": None, "hi": _j(cuts[0])})
        for i in range(1, len(cuts)):
            batches.append({"n": i, "where": "range", "lo": _j(cuts[i - 1]), "hi": _j(cuts[i])})
        batches.append({"n": len(cuts), "where": "from", "lo": _j(cuts[-1]), "hi": None})
    column = info.column(profile["batch_column"])
    if column.nullable:
        batches.append({"n": len(batches), "where": "null", "lo": None, "hi": None})
    return batches


def _cuts(lo: Any, hi: Any, count: int) -> list[Any]:
    """`count - 1` inner boundaries between lo and hi (so no batch starts empty)."""
    if hi == lo:
        return [lo]
    if isinstance(lo, int):
        width = max(1, math.ceil((hi - lo + 1) / count))
        return sorted({lo + width * i for i in range(1, count)} & set(range(lo + 1, hi + 1)))
    span = hi - lo
    return [lo + span * i / count for i in range(1, count)]


def _j(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date) else value
