"""PostgreSQL partition maintenance: pre-create upcoming ranges, drop expired ones."""

from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import sql

from .. import uuid7
from .catalog import partition_ranges
from .rules import advance

NOTHING_TO_MAINTAIN = {
    "hash": "hash partitions take every key and hold rows of every age: nothing to create or drop",
    "list": "list partitions hold rows of every age; new values go to the default"
    " partition: nothing to create or drop",
}


def maintain(
    conn: psycopg.Connection, plan: dict, dry_run: bool, today: date | None = None
) -> dict:
    """Partitions up to `premake` ranges ahead, and expired ones detached and dropped.

    Changes (unless dry_run): creates range partitions of the migrated table (days,
    weeks or months past today; integer ranges past the highest id); with
    retention_days (time and UUIDv7 ranges only: ids and hash or list partitions
    carry no age), detaches and drops partitions whose range ended before the cutoff;
    on integer ranges, only if the operator asked (keep_ranges), those below the newest
    `keep_ranges` ranges that hold ids.
    Undo: a created partition is dropped by hand if unwanted; a dropped one is gone
    (restore from backup), which is why the page previews the statements first."""
    scheme = plan["options"].get("scheme", "range")
    if scheme in NOTHING_TO_MAINTAIN:
        return {"statements": [], "expired": [], "note": NOTHING_TO_MAINTAIN[scheme]}
    existing = partition_ranges(conn, plan["schema"], plan["table"])
    if plan.get("key_kind") == "integer":
        highest = highest_id(conn, plan)
        statements = upcoming_ids(conn, plan, existing, highest)
        expired = surplus_ranges(plan, existing, highest)
    else:
        today = today or datetime.now(UTC).date()
        statements = upcoming_periods(conn, plan, existing, today)
        expired = [name for name, _lo, hi in existing if is_expired(plan, hi, today)]
    statements += drop_statements(conn, plan, expired)
    if not dry_run:
        for statement in statements:
            with conn.transaction():
                conn.execute(statement)
    return {"statements": statements, "expired": expired, "partitions": len(existing)}


def create_statement(conn, plan: dict, name: str, lo, hi) -> str:
    return (
        sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})")
        .format(
            sql.Identifier(plan["schema"], name),
            sql.Identifier(plan["schema"], plan["table"]),
            sql.Literal(lo),
            sql.Literal(hi),
        )
        .as_string(conn)
    )


def upcoming_periods(conn, plan: dict, existing: list, today: date) -> list[str]:
    """Day, week or month ranges up to `premake` past today; on a UUIDv7 key bounded
    by the smallest UUIDv7 of each range's first millisecond."""
    if not existing:
        return []
    options = plan["options"]
    granularity = options["granularity"]
    as_bound = uuid7.floor_of if plan.get("key_kind") == "uuid" else str
    statements = []
    cursor = existing[-1][2]
    horizon = advance(today, granularity, options.get("premake", 3))
    while cursor <= horizon:
        nxt = advance(cursor, granularity, 1)
        name = f"{plan['names']['partition_prefix']}{cursor:%Y%m%d}"
        statements.append(create_statement(conn, plan, name, as_bound(cursor), as_bound(nxt)))
        cursor = nxt
    return statements


def highest_id(conn, plan: dict) -> int | None:
    return conn.execute(
        sql.SQL("SELECT max({}) FROM {}").format(
            sql.Identifier(plan["key"]), sql.Identifier(plan["schema"], plan["table"])
        )
    ).fetchone()[0]


def upcoming_ids(conn, plan: dict, existing: list, highest: int | None) -> list[str]:
    """Integer ranges until `premake` of them lie above the highest id."""
    if not existing:
        return []
    options = plan["options"]
    width = int(options["width"])
    cursor = existing[-1][2]
    horizon = (highest if highest is not None else cursor) + width * options.get("premake", 3)
    statements = []
    while cursor <= horizon:
        name = f"{plan['names']['partition_prefix']}{cursor}"
        statements.append(create_statement(conn, plan, name, cursor, cursor + width))
        cursor += width
    return statements


def surplus_ranges(plan: dict, existing: list, highest: int | None) -> list[str]:
    """Integer ranges below the newest `keep_ranges` that hold ids (upcoming ones,
    above the highest id, do not count), when the operator asked for it."""
    keep = plan["options"].get("keep_ranges")
    if not keep or highest is None:
        return []
    filled = [name for name, lo, _hi in existing if lo <= highest]
    return filled[:-keep]


def is_expired(plan: dict, hi: date, today: date) -> bool:
    retention = plan["options"].get("retention_days")
    return bool(retention) and hi <= today - timedelta(days=int(retention))


def drop_statements(conn, plan: dict, expired: list[str]) -> list[str]:
    parent = sql.Identifier(plan["schema"], plan["table"])
    statements = []
    for name in expired:
        partition = sql.Identifier(plan["schema"], name)
        statements.append(
            sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(parent, partition).as_string(conn)
        )
        statements.append(sql.SQL("DROP TABLE {}").format(partition).as_string(conn))
    return statements
