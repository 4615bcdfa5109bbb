"""The SQL the index advisor reads: the workload ranked by weight (pg_stat_statements
by total time), what a relation is (system, extension-owned, view, partitioned, size)
and a view's definition. Read-only; identifiers and values never formatted into text.
"""

from typing import Any

import psycopg
from psycopg import sql

SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


def statements_by_weight(
    conn: psycopg.Connection,
    *,
    min_calls: int = 1,
    min_mean_ms: float = 0.0,
    containing: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """This database's pg_stat_statements rows, heaviest total time first. `containing`
    keeps statements whose text contains that string (a schema name, say)."""
    return conn.execute(
        """
        SELECT s.queryid, s.query, s.calls, s.rows,
               s.total_exec_time AS total_ms, s.mean_exec_time AS mean_ms
        FROM pg_stat_statements s
        JOIN pg_database d ON d.oid = s.dbid AND d.datname = current_database()
        WHERE s.calls >= %(min_calls)s AND s.mean_exec_time >= %(min_mean)s
          AND (%(containing)s::text IS NULL OR strpos(s.query, %(containing)s::text) > 0)
          AND s.query NOT LIKE '%%pg_stat_statements%%'
        ORDER BY s.total_exec_time DESC
        LIMIT %(limit)s
        """,
        {
            "min_calls": min_calls,
            "min_mean": min_mean_ms,
            "containing": containing,
            "limit": limit,
        },
    ).fetchall()


def relation(conn: psycopg.Connection, schema: str | None, name: str) -> dict[str, Any] | None:
    """The relation a name in a statement points at (search_path applies when
    unqualified), with whether it belongs to the system or to an extension."""
    ident = sql.Identifier(schema, name) if schema else sql.Identifier(name)
    return conn.execute(
        """
        SELECT c.oid, n.nspname AS schema, c.relname AS table, c.relkind, c.relpages,
               CASE WHEN c.relkind = 'p' THEN  -- a parent's rows are its partitions' rows
                   (SELECT COALESCE(sum(GREATEST(pc.reltuples, 0)), 0)
                    FROM pg_partition_tree(c.oid) pt JOIN pg_class pc ON pc.oid = pt.relid
                    WHERE pt.isleaf)
               ELSE GREATEST(c.reltuples, 0) END AS reltuples,
               (n.nspname = ANY(%(system)s) OR n.nspname LIKE 'pg\\_temp\\_%%'
                OR n.nspname LIKE 'pg\\_toast%%') AS is_system,
               EXISTS (SELECT 1 FROM pg_depend dep
                       WHERE dep.classid = 'pg_class'::regclass AND dep.objid = c.oid
                         AND dep.deptype = 'e')
               OR EXISTS (SELECT 1 FROM pg_depend dep
                       WHERE dep.classid = 'pg_namespace'::regclass
                         AND dep.objid = n.oid AND dep.deptype = 'e') AS extension_owned
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.oid = to_regclass(%(name)s) AND c.relkind IN ('r', 'p', 'm', 'v')
        """,
        {"name": ident.as_string(conn), "system": list(SYSTEM_SCHEMAS)},
    ).fetchone()


def view_definition(conn: psycopg.Connection, oid: int) -> str:
    """The SELECT a view (or materialized view) stands for, as PostgreSQL prints it."""
    return conn.execute("SELECT pg_get_viewdef(%s::oid) AS body", [oid]).fetchone()["body"]


def write_stats(conn: psycopg.Connection, oid: int) -> dict[str, Any]:
    """A table's row writes since the statistics were reset (a partitioned table: its
    partitions'), its index count, and the seconds those counts cover."""
    return conn.execute(
        """
        WITH parts AS (
            SELECT relid FROM pg_partition_tree(%(oid)s::oid) WHERE isleaf
            UNION SELECT %(oid)s::oid
        )
        SELECT COALESCE(sum(s.n_tup_ins), 0)::bigint AS inserts,
               COALESCE(sum(s.n_tup_upd), 0)::bigint AS updates,
               COALESCE(sum(s.n_tup_hot_upd), 0)::bigint AS hot_updates,
               COALESCE(sum(s.n_tup_del), 0)::bigint AS deletes,
               (SELECT count(*) FROM pg_index i WHERE i.indrelid = %(oid)s::oid) AS indexes,
               EXTRACT(EPOCH FROM now() - COALESCE(
                   (SELECT stats_reset FROM pg_stat_database
                    WHERE datname = current_database()),
                   pg_postmaster_start_time()))::float AS seconds
        FROM parts LEFT JOIN pg_stat_user_tables s ON s.relid = parts.relid
        """,
        {"oid": oid},
    ).fetchone()


def statistics_age_s(conn: psycopg.Connection) -> float:
    """Seconds the index usage counters cover (since their reset, or server start)."""
    return conn.execute(
        """
        SELECT EXTRACT(EPOCH FROM now() - COALESCE(
            (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()),
            pg_postmaster_start_time()))::float AS seconds
        """
    ).fetchone()["seconds"]


def running_longer_than(conn: psycopg.Connection, min_ms: float) -> list[dict[str, Any]]:
    """Statements of this database's client sessions that have been running for at least
    `min_ms`, other than the console's own (application_name opsconsole…)."""
    return conn.execute(
        """
        SELECT pid, query_start AS started_at, query,
               EXTRACT(EPOCH FROM clock_timestamp() - query_start) * 1000 AS elapsed_ms
        FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid()
          AND backend_type = 'client backend' AND state = 'active'
          AND query_start <= clock_timestamp() - make_interval(secs => %(min_s)s)
          AND application_name NOT LIKE 'opsconsole%%'
        """,
        {"min_s": min_ms / 1000},
    ).fetchall()


def statements_reset_at(conn: psycopg.Connection):
    """When pg_stat_statements last started counting from zero."""
    return conn.execute("SELECT stats_reset FROM pg_stat_statements_info").fetchone()["stats_reset"]
