"""PostgreSQL partition maintenance: pre-create upcoming ranges, drop expired ones."""

from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import sql

from .catalog import partition_ranges
from .rules import advance


def maintain(
    conn: psycopg.Connection, plan: dict, dry_run: bool, today: date | None = None
) -> dict:
    """Partitions up to `premake` ranges past today, and expired ones detached and dropped.

    Changes (unless dry_run): creates partitions of the migrated table; with
    retention_days, detaches and drops partitions whose range ended before the cutoff.
    Undo: a created partition is dropped by hand if unwanted; a dropped one is gone
    (restore from backup), which is why the page previews the statements first."""
    schema, table = plan["schema"], plan["table"]
    options = plan["options"]
    granularity = options["granularity"]
    today = today or datetime.now(UTC).date()
    existing = partition_ranges(conn, schema, table)
    statements: list[str] = []
    parent = sql.Identifier(schema, table)
    if existing:
        cursor = existing[-1][2]
        horizon = advance(today, granularity, options.get("premake", 3))
        while cursor <= horizon:
            nxt = advance(cursor, granularity, 1)
            name = f"{plan['names']['partition_prefix']}{cursor:%Y%m%d}"
            statements.append(
                sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})")
                .format(
                    sql.Identifier(schema, name),
                    parent,
                    sql.Literal(str(cursor)),
                    sql.Literal(str(nxt)),
                )
                .as_string(conn)
            )
            cursor = nxt
    retention = options.get("retention_days")
    expired = []
    if retention:
        cutoff = today - timedelta(days=int(retention))
        for name, _lo, hi in existing:
            if hi <= cutoff:
                expired.append(name)
                statements.append(
                    sql.SQL("ALTER TABLE {} DETACH PARTITION {}")
                    .format(parent, sql.Identifier(schema, name))
                    .as_string(conn)
                )
                statements.append(
                    sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, name)).as_string(conn)
                )
    if not dry_run:
        for statement in statements:
            with conn.transaction():
                conn.execute(statement)
    return {"statements": statements, "expired": expired, "partitions": len(existing)}
