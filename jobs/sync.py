"""table_sync: incremental copy of a PostgreSQL table into a warehouse table.

Rows are read in (watermark, primary key) order, so a batch boundary never
splits rows that share a watermark value, and the next run starts after the
newest (watermark, key) already in the target: the target itself is the
checkpoint. Each batch is written in its own transaction with an upsert by
primary key, so repeating a run (or a batch after a crash) changes nothing.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
from psycopg import sql

from partitions.warehouses import postgres as connections

from .runner import PermanentError


class SyncError(PermanentError):
    """A sync that cannot run as asked (missing table, column, key …)."""


@dataclass(frozen=True)
class Table:
    schema: str
    name: str

    @property
    def ident(self) -> sql.Composable:
        return sql.Identifier(self.schema, self.name)

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


def resolve_table(conn: psycopg.Connection, name: str) -> Table | None:
    """Resolve user text like `public.payments` with PostgreSQL's own name parser."""
    row = conn.execute(
        """SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.oid = to_regclass(%s) AND c.relkind IN ('r', 'p')""",
        [name],
    ).fetchone()
    return Table(*row) if row else None


def split_name(name: str) -> Table:
    schema, dot, table = name.partition(".")
    if not dot or not schema or not table:
        raise SyncError(f"Give the target as schema.table, not {name!r}.")
    return Table(schema, table)


def columns_of(conn: psycopg.Connection, table: Table) -> list[tuple[str, str]]:
    return conn.execute(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod)
           FROM pg_attribute a
           WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
           ORDER BY a.attnum""",
        [sql.Identifier(table.schema, table.name).as_string(conn)],
    ).fetchall()


def primary_key_of(conn: psycopg.Connection, table: Table) -> list[str]:
    rows = conn.execute(
        """SELECT a.attname FROM pg_index i
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
           WHERE i.indrelid = %s::regclass AND i.indisprimary
           ORDER BY array_position(i.indkey, a.attnum)""",
        [sql.Identifier(table.schema, table.name).as_string(conn)],
    ).fetchall()
    return [r[0] for r in rows]


def describe_source(
    conn: psycopg.Connection, name: str, watermark: str
) -> tuple[Table, list[tuple[str, str]], list[str]]:
    """The source table, its (column, type) list and primary key, or a clear SyncError."""
    source = resolve_table(conn, name)
    if source is None:
        raise SyncError(f"Source table {name!r} does not exist.")
    columns = columns_of(conn, source)
    if watermark not in [c for c, _ in columns]:
        raise SyncError(f"Source table {source} has no column {watermark!r} to use as watermark.")
    key = primary_key_of(conn, source)
    if not key:
        raise SyncError(f"Source table {source} has no primary key; table_sync upserts by it.")
    return source, columns, key


def ensure_target(
    conn: psycopg.Connection,
    target: Table,
    columns: list[tuple[str, str]],
    key: list[str],
    watermark: str,
) -> None:
    """Create the target table (same columns, same key) and its watermark index if missing."""
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(target.schema)))
    column_defs = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(type_))  # type from format_type()
        for name, type_ in columns
    )
    conn.execute(
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))").format(
            target.ident, column_defs, sql.SQL(", ").join(map(sql.Identifier, key))
        )
    )
    conn.execute(
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
            sql.Identifier(f"{target.name}_sync_watermark"[:63]),
            target.ident,
            sql.SQL(", ").join(map(sql.Identifier, [watermark, *key])),
        )
    )


def sync_table(
    source_url: str,
    source_name: str,
    target_url: str,
    target_name: str,
    watermark: str = "updated_at",
    batch_size: int = 5000,
    report: Callable[..., None] = lambda read, written, msg, total=None: None,
) -> dict:
    """Copy source rows newer than the target's newest (watermark, key) into the target.

    Changes: inserts or updates rows of the target table (created if missing).
    Undo: none needed; the target is a copy, rebuilt by dropping it and syncing again.
    """
    with (
        connections.connect(source_url, purpose="table-sync") as src,
        connections.connect(target_url, purpose="table-sync", autocommit=False) as dst,
    ):
        source, columns, key = describe_source(src, source_name, watermark)
        names = [c for c, _ in columns]
        target = resolve_table(dst, target_name) or split_name(target_name)
        ensure_target(dst, target, columns, key, watermark)
        dst.commit()

        order = [watermark, *key]
        order_sql = sql.SQL(", ").join(map(sql.Identifier, order))
        start = dst.execute(
            sql.SQL("SELECT {} FROM {} ORDER BY {} LIMIT 1").format(
                order_sql,
                target.ident,
                sql.SQL(", ").join(sql.SQL("{} DESC").format(sql.Identifier(c)) for c in order),
            )
        ).fetchone()
        dst.commit()

        upsert = upsert_sql(target, names, key)
        pending = pending_rows(src, source, order, start)
        read = written = batches = 0
        mark = start
        for rows, mark in source_batches(src, source, names, order, start, batch_size):
            with dst.transaction(), dst.cursor() as cur:
                cur.executemany(upsert, rows)
                written += len(rows)
            read += len(rows)
            batches += 1
            message = f"batch {batches}: up to {watermark} = {mark[0]}"
            report(read, written, message, total=max(pending, read))
        return {
            "source": str(source),
            "target": str(target),
            "rows_read": read,
            "rows_written": written,
            "batches": batches,
            "watermark": str(mark[0]) if mark else None,
        }


def pending_rows(
    conn: psycopg.Connection, source: Table, order: list[str], start: tuple | None
) -> int:
    """The planner's estimate of the rows after `start` (what the progress bar counts
    towards): an EXPLAIN, so a huge table is never counted just to draw a bar."""
    query = sql.SQL("SELECT 1 FROM {}").format(source.ident)
    params: list = []
    if start is not None:
        query += sql.SQL(" WHERE ({}) > ({})").format(
            sql.SQL(", ").join(map(sql.Identifier, order)),
            sql.SQL(", ").join(sql.Placeholder() * len(order)),
        )
        params = list(start)
    explain = sql.SQL("EXPLAIN (FORMAT JSON) ") + query
    plan = conn.execute(explain, params).fetchone()[0]
    return int(plan[0]["Plan"]["Plan Rows"])


def source_batches(
    conn: psycopg.Connection,
    source: Table,
    names: list[str],
    order: list[str],
    start: tuple | None,
    batch_size: int,
) -> Iterator[tuple[list[tuple], tuple]]:
    """Source rows after `start` in `order` (watermark, then key), `batch_size` at a time:
    yields (rows, the last row's `order` values), the mark the next batch starts after."""
    order_sql = sql.SQL(", ").join(map(sql.Identifier, order))
    column_list = sql.SQL(", ").join(map(sql.Identifier, names))
    after = sql.SQL("SELECT {} FROM {} WHERE ({}) > ({}) ORDER BY {} LIMIT %s").format(
        column_list,
        source.ident,
        order_sql,
        sql.SQL(", ").join(sql.Placeholder() * len(order)),
        order_sql,
    )
    first = sql.SQL("SELECT {} FROM {} ORDER BY {} LIMIT %s").format(
        column_list, source.ident, order_sql
    )
    positions = [names.index(c) for c in order]
    mark = start
    while True:
        if mark is None:
            rows = conn.execute(first, [batch_size]).fetchall()
        else:
            rows = conn.execute(after, [*mark, batch_size]).fetchall()
        if not rows:
            return
        mark = tuple(rows[-1][p] for p in positions)
        yield rows, mark


def upsert_sql(target: Table, names: list[str], key: list[str]) -> sql.Composed:
    updates = [n for n in names if n not in key]
    conflict = (
        sql.SQL("DO UPDATE SET {}").format(
            sql.SQL(", ").join(
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n)) for n in updates
            )
        )
        if updates
        else sql.SQL("DO NOTHING")
    )
    return sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) {}").format(
        target.ident,
        sql.SQL(", ").join(map(sql.Identifier, names)),
        sql.SQL(", ").join(sql.Placeholder() * len(names)),
        sql.SQL(", ").join(map(sql.Identifier, key)),
        conflict,
    )


def refresh_matview(url: str, name: str) -> dict:
    """REFRESH MATERIALIZED VIEW CONCURRENTLY: readers keep the old rows meanwhile.

    Changes: the view's rows. Undo: none (it is derived data; refresh again).
    """
    with connections.connect(url, purpose="refresh-matview") as conn:
        row = conn.execute(
            """SELECT n.nspname, c.relname,
                      EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisunique
                              AND i.indpred IS NULL)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.oid = to_regclass(%s) AND c.relkind = 'm'""",
            [name],
        ).fetchone()
        if row is None:
            raise SyncError(f"Materialized view {name!r} does not exist.")
        schema, view, has_unique = row
        if not has_unique:
            raise SyncError(
                f"{schema}.{view} has no unique index, which REFRESH … CONCURRENTLY needs."
            )
        conn.execute(
            sql.SQL("REFRESH MATERIALIZED VIEW CONCURRENTLY {}").format(
                sql.Identifier(schema, view)
            )
        )
        rows = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, view))
        ).fetchone()[0]
    return {"view": f"{schema}.{view}", "rows": rows}


def row_counts(source_url: str, source_name: str, target_url: str, target_name: str):
    """(rows in source, rows in target), for checks after a sync."""
    counts = []
    for url, name in ((source_url, source_name), (target_url, target_name)):
        with connections.connect(url, purpose="table-sync", autocommit=False) as conn:
            table = resolve_table(conn, name)
            if table is None:
                raise SyncError(f"Table {name!r} does not exist.")
            counts.append(
                conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table.ident)).fetchone()[0]
            )
    return tuple(counts)
