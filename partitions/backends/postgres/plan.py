"""Compose the PostgreSQL plan: profile figures, batches and every step's statements.

Reads the catalog (catalog.py), applies the rules (rules.py) and renders each step
(render.py, swap.py, templates.py) once, into the plan the operator reads.
"""

import math
import uuid
from dataclasses import replace
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
from .render import (
    Render,
    backfill_statement,
    step_capture,
    step_copy,
    step_create,
    step_index,
    step_verify,
)
from .rules import (
    PartitionKey,
    hash_parts,
    integer_parts,
    list_parts,
    migration_names,
    round_width,
    time_parts,
)
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
    """The plan of migration `migration_id`: its partitions laid out from the profiled
    keys (a round width picked for an integer range the operator left open)."""
    key = PartitionKey.of(info, options)
    if key.scheme == "range" and key.kind == "integer" and options.width is None:
        options = replace(options, width=round_width(profile["key_min"], profile["key_max"]))
        key = PartitionKey.of(info, options)
    refuse_unless_uuid7(key, profile)
    names = migration_names(info.name, migration_id)
    parts = layout(key, profile, options, names, info.column(key.column).nullable)
    return compose_plan(conn, info, options, profile, views, parts, names)


def layout(key: PartitionKey, profile: dict, options, names: dict, nullable: bool) -> list[dict]:
    """The partitions of the scheme (the default partition is added by the create step)."""
    prefix = names["partition_prefix"]
    if key.scheme == "hash":
        return hash_parts(key.modulus, prefix)
    if key.scheme == "list":
        return list_parts(profile["values"], nullable, prefix, names["null"])
    kmin, kmax = profile["key_min"], profile["key_max"]
    if key.kind == "integer":
        return integer_parts(kmin, kmax, key.width, options.premake, prefix)
    today = datetime.now(UTC).date()
    return time_parts(key, kmin, kmax, options.premake, today, prefix)


def refuse_unless_uuid7(key: PartitionKey, profile: dict) -> None:
    """Time ranges of a uuid key hold only if every key is a UUIDv7 (its first 48 bits
    a timestamp); any other version would land in a range by chance."""
    if key.kind != "uuid" or key.scheme != "range" or not profile.get("not_v7"):
        return
    raise PlanRefused(
        f"{profile['not_v7']} of {profile['rows']} values of {key.column} are not UUIDv7"
        f" (e.g. {profile['not_v7_example']}, version nibble not 7): only a UUIDv7 carries"
        " the time its range is chosen by. Use hash partitioning for other uuids"
    )


def compose_plan(
    conn: psycopg.Connection,
    info: TableInfo,
    options: MigrationOptions,
    profile: dict[str, Any],
    views: list[dict[str, str]],
    parts: list[dict],
    names: dict[str, str],
) -> dict:
    r = Render(conn, info.schema)
    key = PartitionKey.of(info, options)
    insertable = [c.name for c in info.columns]
    generated = generated_columns(conn, info)
    insertable = [c for c in insertable if c not in generated]
    batches = batch_ranges(profile, options, info)
    key_nullable = bool(profile["null_keys"]) or info.column(key.column).nullable
    pk = list(info.primary_key)
    new_pk = pk + ([options.column] if pk and options.column not in pk else [])
    warnings: list[str] = []
    nulls_apart = key.scheme == "list" and key_nullable
    if pk and nulls_apart:
        refuse_null_key_choice(options)
        warnings.append(
            f"{options.column} allows NULL: NULL keys go to {names['null']} (a list"
            " partition may hold NULL), and the key becomes UNIQUE NULLS NOT DISTINCT"
            f" ({', '.join(new_pk)}) instead of a primary key (whose columns cannot be"
            " NULL): a NULL key counts as one value, so no uniqueness is lost"
        )
    elif pk and key_nullable and null_keys_accepted(options, key, profile, pk):
        warnings.append(
            f"{profile['null_keys']} rows have no {options.column} (and the column allows"
            f" NULL): you chose to lose uniqueness, so the primary key ({', '.join(pk)})"
            " becomes a plain index and duplicates are no longer refused by the database"
        )
        new_pk = []
    elif pk and key_nullable and options.null_keys == "backfill":
        warnings.append(
            f"{profile['null_keys']} rows without {options.column} get"
            f" {backfill_value(options, key)}: written to the original table right after the"
            " capture starts (captured and copied like any write; a rollback does not undo"
            " it). The new primary key"
            f" ({', '.join(new_pk)}) makes the column NOT NULL: a NULL written during the"
            " migration stops it (rolled back), and after the swap such writes fail"
        )
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
    steps = [
        step_create(r, info, options, names, parts, generated),
        step_capture(r, info, names),
        step_copy(r, info, options, names, insertable, batches),
        step_index(r, info, options, names, pk, new_pk, nulls_apart),
        step_verify(r, key, names),
        step_swap(r, info, options, names, views),
        step_post_check(r, info, names, views),
    ]
    backfill = (
        backfill_statement(r, info, options, backfill_value(options, key))
        if pk and key_nullable and options.null_keys == "backfill"
        else None
    )
    if backfill:  # shown with the capture step, run by it with the value
        steps[1]["sql"].append(f"-- then, until no row is left: {backfill['sql']}")
    return {
        "backend": "postgres",
        "schema": info.schema,
        "table": info.name,
        "options": options.as_dict(),
        "names": names,
        "columns": insertable,
        "column_types": {c.name: c.type for c in info.columns},
        "key": options.column,
        "key_kind": key.kind,
        "scheme": key.scheme,
        "key_nullable": key_nullable,
        "null_keys": "lose uniqueness" if pk and key_nullable and not new_pk else "",
        "backfill": backfill,
        "pk": pk,
        "match_columns": pk or [c.name for c in info.columns],
        "batch_column": profile["batch_column"],
        "batch_type": info.column(profile["batch_column"]).type,
        "batches": batches,
        "views": views,
        "sequences": owned_sequences(conn, info),
        "partitions": parts,
        "estimates": {
            "scheme": key.describe(),
            "retention": key.retention(),
            "rows": profile["rows"],
            "bytes": info.bytes,
            "partitions_to_create": len(parts) + (key.scheme != "hash"),
            "null_keys": profile["null_keys"],
            "null_keys_go_to": null_partition(key, names, parts) if profile["null_keys"] else "",
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


def null_partition(key: PartitionKey, names: dict, parts: list[dict]) -> str:
    """Where rows without a key land: their own list partition, the hash partition
    of remainder 0 (PostgreSQL hashes NULL to 0), or the default range partition."""
    if key.scheme == "list":
        return names["null"]
    if key.scheme == "hash":
        return parts[0]["name"]
    return names["default"]


def refuse_null_key_choice(options: MigrationOptions) -> None:
    if options.null_keys != "refuse":
        raise PlanRefused(
            "list partitioning keeps NULL keys in their own partition without losing"
            " uniqueness: no NULL-key choice applies (leave null keys at its default)"
        )


def null_keys_accepted(
    options: MigrationOptions, key: PartitionKey, profile: dict, pk: list[str]
) -> bool:
    """The operator's choice for NULL partition keys on a table with a primary key
    (a key of a partitioned table must include the partition column, which a NULL
    cannot be in): refused unless they chose to lose uniqueness and typed it."""
    if options.null_keys not in NULL_KEY_CHOICES:
        raise PlanRefused(f"null keys: choose one of {', '.join(NULL_KEY_CHOICES)}")
    if options.null_keys == "backfill":
        backfill_value(options, key)
        return False
    if options.null_keys == "refuse":
        if profile["null_keys"]:
            raise PlanRefused(
                f"{profile['null_keys']} rows have no {options.column}, and the primary key"
                f" ({', '.join(pk)}) of a partitioned table must include it. Choices: give"
                " them a value (null keys: backfill, with the value), or accept losing"
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


def backfill_value(options: MigrationOptions, key: PartitionKey) -> str:
    """The value NULL keys are given, checked against the key's kind."""
    text = options.null_backfill.strip()
    parse, example = {
        "time": (lambda v: datetime.fromisoformat(v).isoformat(), "2024-01-01"),
        "integer": (lambda v: str(int(v)), "0"),
        "uuid": (lambda v: str(uuid.UUID(v)), "01890000-0000-7000-8000-000000000000"),
    }.get(key.kind, (lambda v: v, "any value of the column's type"))
    try:
        if not text:
            raise ValueError
        return parse(text)
    except ValueError:
        raise PlanRefused(
            f"backfill value {options.null_backfill!r} does not fit {key.column} ({key.kind}):"
            f" give a value like {example}"
        ) from None


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
    in some batch; plus one batch for NULL keys when the column allows them. A key
    that cannot be cut into ranges (a uuid, a text) is copied in one batch."""
    lo, hi, rows = profile["batch_min"], profile["batch_max"], profile["rows"]
    count = max(1, math.ceil(rows / max(1, options.batch_rows)))
    batches: list[dict] = []
    if lo is None or count == 1 or not (type(lo) is int or isinstance(lo, date)):
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
