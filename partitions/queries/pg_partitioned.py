"""SQL for an index on a partitioned table, built the way PostgreSQL allows without
blocking writes: CREATE INDEX … ON ONLY the parent (an invalid shell), CREATE INDEX
CONCURRENTLY on each partition, ALTER INDEX … ATTACH PARTITION each into the shell
(the shell turns valid once every partition's index is attached)."""

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from . import index_elements


def is_partitioned(conn: psycopg.Connection, schema: str, table: str) -> bool:
    row = conn.execute(
        """
        SELECT c.relkind = 'p' AS partitioned FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relname = %s
        """,
        [schema, table],
    ).fetchone()
    return bool(row and row["partitioned"])


def partitions(conn: psycopg.Connection, schema: str, table: str) -> list[dict[str, Any]]:
    """Every partition under the table (not the table itself), shallowest first, each
    with its parent's schema and name and whether it is a leaf (holds rows)."""
    return conn.execute(
        """
        SELECT n.nspname AS schema, c.relname AS table, pn.nspname AS parent_schema,
               p.relname AS parent_table, t.isleaf AS is_leaf, t.level
        FROM pg_partition_tree(to_regclass(%s)) t
        JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_class p ON p.oid = t.parentrelid
        JOIN pg_namespace pn ON pn.oid = p.relnamespace
        WHERE t.level > 0
        ORDER BY t.level, n.nspname, c.relname
        """,
        [sql.Identifier(schema, table).as_string(conn)],
    ).fetchall()


def create_index_on_only(
    conn: psycopg.Connection, schema: str, table: str, columns: Sequence[str], name: str
) -> None:
    """The parent's index shell: no partition is indexed by it (quick, brief lock)."""
    conn.execute(
        sql.SQL("CREATE INDEX {} ON ONLY {} ({})").format(
            sql.Identifier(name),
            sql.Identifier(schema, table),
            index_elements.elements_sql(columns),
        )
    )


def attach_index(
    conn: psycopg.Connection, schema: str, parent_index: str, child_schema: str, child: str
) -> None:
    conn.execute(
        sql.SQL("ALTER INDEX {} ATTACH PARTITION {}").format(
            sql.Identifier(schema, parent_index), sql.Identifier(child_schema, child)
        )
    )


def is_attached(
    conn: psycopg.Connection, schema: str, parent_index: str, child_schema: str, child: str
) -> bool:
    row = conn.execute(
        """
        SELECT 1 FROM pg_inherits
        WHERE inhrelid = to_regclass(%s) AND inhparent = to_regclass(%s)
        """,
        [
            sql.Identifier(child_schema, child).as_string(conn),
            sql.Identifier(schema, parent_index).as_string(conn),
        ],
    ).fetchone()
    return row is not None


def is_partitioned_index(conn: psycopg.Connection, schema: str, name: str) -> bool:
    row = conn.execute(
        "SELECT relkind = 'I' AS partitioned FROM pg_class WHERE oid = to_regclass(%s)",
        [sql.Identifier(schema, name).as_string(conn)],
    ).fetchone()
    return bool(row and row["partitioned"])


def drop_index(conn: psycopg.Connection, schema: str, name: str) -> None:
    """DROP INDEX (a partitioned index cannot be dropped concurrently); its attached
    partition indexes go with it."""
    conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(schema, name)))
