"""Index health of a PostgreSQL warehouse: unused, duplicate and prefix-redundant,
invalid indexes, foreign keys without a supporting index, and possible N+1
statements. Read-only: it reports, the operator decides."""

from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings

from partitions.warehouses.postgres import installed_extensions, open_warehouse

from . import parsing, pg


def n_plus_one_min_calls() -> int:
    return int(getattr(settings, "QUERIES_N_PLUS_ONE_CALLS", 1000))


@dataclass
class Health:
    warehouse: str
    unused: list[dict] = field(default_factory=list)
    redundant: list[dict] = field(default_factory=list)
    invalid: list[dict] = field(default_factory=list)
    unindexed_foreign_keys: list[dict] = field(default_factory=list)
    n_plus_one: list[dict] = field(default_factory=list)
    stats_reset: Any = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _brief(index: dict) -> dict:
    keys = ("schema", "table", "name", "columns", "definition", "size_bytes", "idx_scan")
    return {k: index[k] for k in keys}


def _comparable(index: dict) -> bool:
    return (
        index["method"] == "btree"
        and index["is_valid"]
        and not index["is_partial"]
        and not index["has_expressions"]
    )


def redundant_indexes(indexes: list[dict]) -> list[dict]:
    """Indexes another index makes redundant: same columns (a duplicate) or a leading
    prefix of a wider one. Unique and primary-key indexes are never the one to drop."""
    found = []
    plain = [i for i in indexes if _comparable(i)]
    for index in plain:
        if index["is_unique"] or index["backs_constraint"]:
            continue
        for other in plain:
            if other is index or (other["schema"], other["table"]) != (
                index["schema"],
                index["table"],
            ):
                continue
            same = other["columns"] == index["columns"] and other["indclass"] == index["indclass"]
            prefix = (
                len(other["columns"]) > len(index["columns"])
                and other["columns"][: len(index["columns"])] == index["columns"]
            )
            both_plain = same and not (other["is_unique"] or other["backs_constraint"])
            if both_plain and other["name"] > index["name"]:
                continue  # of two plain duplicates, report one
            if same or prefix:
                found.append(
                    {
                        **_brief(index),
                        "reason": "duplicate of" if same else "prefix of",
                        "covered_by": other["name"],
                        "covered_by_definition": other["definition"],
                    }
                )
                break
    return found


def unindexed_foreign_keys(foreign_keys: list[dict], indexes: list[dict]) -> list[dict]:
    """Foreign keys whose columns do not lead any valid index of their table (deletes on
    the referenced table then scan this one)."""
    missing = []
    for fk in foreign_keys:
        width = len(fk["columns"])
        supported = any(
            i["is_valid"]
            and (i["schema"], i["table"]) == (fk["schema"], fk["table"])
            and set(i["columns"][:width]) == set(fk["columns"])
            for i in indexes
        )
        if not supported:
            missing.append(fk)
    return missing


def possible_n_plus_one(conn, containing: str | None = None) -> list[dict]:
    """Statements called very often, returning at most one row per call, that look a
    row up by its primary key: the signature of a loop issuing one query per item."""
    found = []
    rows = pg.statements(conn, order="calls", limit=100, containing=containing)
    for row in rows:
        if row["calls"] < n_plus_one_min_calls() or row["rows"] > row["calls"]:
            continue
        try:
            shape = parsing.shape_of(row["query"])
        except parsing.UnparsableStatement:
            continue
        if shape.kind != "select" or len(shape.tables) != 1:
            continue
        table = pg.resolve_table(conn, shape.tables[0].schema, shape.tables[0].name)
        if table is None:
            continue
        primary = pg.primary_key_columns(conn, table["oid"])
        looked_up = {use.column for use in shape.equality}
        if primary and set(primary) <= looked_up:
            found.append(
                {
                    "queryid": row["queryid"],
                    "query": row["query"],
                    "calls": row["calls"],
                    "rows_per_call": round(row["rows"] / max(row["calls"], 1), 2),
                    "table": f"{table['schema']}.{table['table']}",
                }
            )
    return found


def index_health(warehouse: str, *, schema: str | None = None) -> Health:
    """Read the index health report of `warehouse` (optionally one schema). Changes nothing."""
    health = Health(warehouse=warehouse)
    with open_warehouse(warehouse) as conn:
        indexes = pg.indexes(conn, schema=schema)
        health.unused = [
            _brief(i)
            for i in indexes
            if i["idx_scan"] == 0 and not i["is_unique"] and not i["is_primary"] and i["is_valid"]
        ]
        health.redundant = redundant_indexes(indexes)
        health.invalid = [_brief(i) for i in indexes if not i["is_valid"]]
        health.unindexed_foreign_keys = unindexed_foreign_keys(
            pg.foreign_keys(conn, schema=schema), indexes
        )
        if "pg_stat_statements" in installed_extensions(conn):
            health.n_plus_one = possible_n_plus_one(conn, containing=schema)
            health.stats_reset = pg.stats_reset_at(conn)
    return health
