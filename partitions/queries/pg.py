"""PostgreSQL for the Queries module: every SQL text this module sends lives here.

Identifiers are quoted with psycopg.sql, values travel as parameters (or as
psycopg.sql.Literal where a utility statement such as EXECUTE cannot take
server-side parameters). Nothing here formats operator input into SQL text.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from . import index_elements

# --- pg_stat_statements -------------------------------------------------------

STATEMENT_ORDER = {
    "total": sql.SQL("s.total_exec_time DESC"),
    "mean": sql.SQL("s.mean_exec_time DESC"),
    "calls": sql.SQL("s.calls DESC"),
}


def statements(
    conn: psycopg.Connection,
    *,
    min_mean_ms: float = 0.0,
    order: str = "total",
    limit: int = 200,
    containing: str | None = None,
) -> list[dict[str, Any]]:
    """Rows of pg_stat_statements for the connected database, with each one's share
    of the database's total execution time. `containing` keeps statements whose text
    contains that string (a schema name, say)."""
    query = sql.SQL(
        """
        WITH db AS (
            SELECT s.*
            FROM pg_stat_statements s
            JOIN pg_database d ON d.oid = s.dbid AND d.datname = current_database()
        ), total AS (SELECT GREATEST(sum(total_exec_time), 0.001) AS ms FROM db)
        SELECT s.queryid, s.query, s.calls, s.rows,
               s.total_exec_time AS total_ms, s.mean_exec_time AS mean_ms,
               s.max_exec_time AS max_ms, s.stddev_exec_time AS stddev_ms,
               s.shared_blks_hit, s.shared_blks_read,
               100.0 * s.total_exec_time / total.ms AS share_percent
        FROM db s, total
        WHERE s.mean_exec_time >= %(min_mean)s
          AND (%(containing)s::text IS NULL OR strpos(s.query, %(containing)s::text) > 0)
          AND s.query NOT LIKE '%%pg_stat_statements%%'
        ORDER BY {order}
        LIMIT %(limit)s
        """
    ).format(order=STATEMENT_ORDER[order])
    params = {"min_mean": min_mean_ms, "containing": containing, "limit": limit}
    return conn.execute(query, params).fetchall()


def statement(conn: psycopg.Connection, queryid: int) -> dict[str, Any] | None:
    return conn.execute(
        """
        SELECT s.queryid, s.query, s.calls, s.rows, s.total_exec_time AS total_ms,
               s.mean_exec_time AS mean_ms
        FROM pg_stat_statements s
        JOIN pg_database d ON d.oid = s.dbid AND d.datname = current_database()
        WHERE s.queryid = %s
        ORDER BY s.calls DESC LIMIT 1
        """,
        [queryid],
    ).fetchone()


def reset_statements(conn: psycopg.Connection) -> None:
    """Reset the counters of this database's statements only (other databases keep theirs)."""
    conn.execute(
        """
        SELECT pg_stat_statements_reset(0, d.oid, 0)
        FROM pg_database d WHERE d.datname = current_database()
        """
    )


def stats_reset_at(conn: psycopg.Connection):
    return conn.execute("SELECT stats_reset FROM pg_stat_statements_info").fetchone()["stats_reset"]


# --- pg_stat_activity ---------------------------------------------------------


def activity(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Backends of this database other than our own, longest running first."""
    return conn.execute(
        """
        SELECT pid, usename, application_name, client_addr::text AS client_addr, state,
               wait_event_type, wait_event, backend_type,
               EXTRACT(EPOCH FROM now() - query_start) * 1000 AS duration_ms,
               query_start, query
        FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid()
          AND backend_type = 'client backend'
        ORDER BY query_start NULLS LAST
        """
    ).fetchall()


def backend_exists(conn: psycopg.Connection, pid: int) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND datname = current_database()", [pid]
    ).fetchone()
    return row is not None


def cancel_backend(conn: psycopg.Connection, pid: int) -> bool:
    return conn.execute("SELECT pg_cancel_backend(%s) AS ok", [pid]).fetchone()["ok"]


def terminate_backend(conn: psycopg.Connection, pid: int) -> bool:
    return conn.execute("SELECT pg_terminate_backend(%s) AS ok", [pid]).fetchone()["ok"]


# --- EXPLAIN ------------------------------------------------------------------


def _explain_options(analyze: bool) -> sql.Composable:
    # VERBOSE: each scan names its relation's schema, so sizes are looked up exactly.
    if analyze:
        return sql.SQL("(ANALYZE, BUFFERS, VERBOSE, FORMAT JSON)")
    return sql.SQL("(VERBOSE, FORMAT JSON)")


def explain_plain(conn: psycopg.Connection, statement: str, *, analyze: bool = False) -> dict:
    """EXPLAIN of a statement without parameters; the caller owns the transaction."""
    query = sql.SQL("EXPLAIN {} ").format(_explain_options(analyze)) + sql.SQL(statement)
    return conn.execute(query).fetchone()["QUERY PLAN"][0]


def explain_prepared(
    conn: psycopg.Connection,
    statement: str,
    *,
    values: Sequence[str | None],
    generic: bool,
    analyze: bool = False,
) -> dict:
    """EXPLAIN of a `$n` statement through PREPARE/EXECUTE.

    generic=True plans with plan_cache_mode = force_generic_plan (values are not
    looked at); otherwise a custom plan for the sample `values`. The prepared
    statement is deallocated again, so hypothetical indexes are always seen."""
    mode = "force_generic_plan" if generic else "force_custom_plan"
    conn.execute("SELECT set_config('plan_cache_mode', %s, false)", [mode])
    name = sql.Identifier("opsconsole_explain")
    conn.execute(sql.SQL("PREPARE {} AS ").format(name) + sql.SQL(statement))
    try:
        args = sql.SQL(", ").join(sql.Literal(v) for v in values)
        query = sql.SQL("EXPLAIN {} EXECUTE {}({})").format(_explain_options(analyze), name, args)
        return conn.execute(query).fetchone()["QUERY PLAN"][0]
    finally:
        # In a failed transaction nothing more can run; the rollback (or closing
        # the connection) takes the prepared statement with it.
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
            conn.execute(sql.SQL("DEALLOCATE {}").format(name))
            conn.execute("RESET plan_cache_mode")


@contextmanager
def rolled_back(conn: psycopg.Connection, *, timeout_ms: int, read_only: bool) -> Iterator[None]:
    """A transaction that is always rolled back, with a local statement timeout."""
    with conn.transaction(force_rollback=True):
        conn.execute("SELECT set_config('statement_timeout', %s, true)", [f"{int(timeout_ms)}ms"])
        if read_only:
            conn.execute("SET TRANSACTION READ ONLY")
        yield


def relation_sizes(
    conn: psycopg.Connection, relations: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], float]:
    """reltuples by (schema, relation), for the relations a plan scans."""
    rows = conn.execute(
        """
        SELECT n.nspname, c.relname, c.reltuples
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN unnest(%s::text[], %s::text[]) AS r(nspname, relname)
          ON r.nspname = n.nspname AND r.relname = c.relname
        WHERE c.relkind IN ('r', 'p', 'm')
        """,
        [[s for s, _ in relations], [t for _, t in relations]],
    ).fetchall()
    return {(r["nspname"], r["relname"]): max(r["reltuples"], 0) for r in rows}


# --- catalog: tables, columns, stats, indexes ---------------------------------


def resolve_table(conn: psycopg.Connection, schema: str | None, table: str) -> dict | None:
    """The relation a name in a statement points at (search_path applies when unqualified)."""
    ident = sql.Identifier(schema, table) if schema else sql.Identifier(table)
    text = ident.as_string(conn)
    return conn.execute(
        """
        SELECT c.oid, n.nspname AS schema, c.relname AS table, c.reltuples, c.relkind
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.oid = to_regclass(%s) AND c.relkind IN ('r', 'p', 'm')
        """,
        [text],
    ).fetchone()


def table_columns(conn: psycopg.Connection, oid: int) -> list[str]:
    rows = conn.execute(
        """
        SELECT attname FROM pg_attribute
        WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum
        """,
        [oid],
    ).fetchall()
    return [r["attname"] for r in rows]


def pattern_opclass(conn: psycopg.Connection, oid: int, column: str) -> str | None:
    """The operator class a `LIKE 'prefix%'` on the column needs: "" when the column's
    collation is C or POSIX (the default one serves it), the type's *_pattern_ops for
    text, varchar and char, None for any other type."""
    row = conn.execute(
        """
        SELECT CASE
            WHEN COALESCE(NULLIF(co.collname, 'default'), d.datcollate) IN ('C', 'POSIX')
                THEN ''
            WHEN t.typname = 'text' THEN 'text_pattern_ops'
            WHEN t.typname = 'varchar' THEN 'varchar_pattern_ops'
            WHEN t.typname = 'bpchar' THEN 'bpchar_pattern_ops'
            END AS opclass
        FROM pg_attribute a
        JOIN pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_collation co ON co.oid = a.attcollation
        JOIN pg_database d ON d.datname = current_database()
        WHERE a.attrelid = %s AND a.attname = %s AND NOT a.attisdropped
        """,
        [oid, column],
    ).fetchone()
    return None if row is None else row["opclass"]


def column_stats(conn: psycopg.Connection, schema: str, table: str) -> dict[str, dict]:
    """pg_stats per column: n_distinct (negative = fraction of rows), null_frac."""
    rows = conn.execute(
        """
        SELECT attname, n_distinct, null_frac, correlation
        FROM pg_stats WHERE schemaname = %s AND tablename = %s
        """,
        [schema, table],
    ).fetchall()
    return {r["attname"]: r for r in rows}


def primary_key_columns(conn: psycopg.Connection, oid: int) -> list[str]:
    rows = conn.execute(
        """
        SELECT a.attname FROM pg_index i
        JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = %s AND i.indisprimary ORDER BY k.ord
        """,
        [oid],
    ).fetchall()
    return [r["attname"] for r in rows]


INDEXES_SQL = """
SELECT n.nspname AS schema, t.relname AS table, ic.relname AS name, i.indexrelid AS oid,
       i.indisunique AS is_unique, i.indisprimary AS is_primary, i.indisvalid AS is_valid,
       am.amname AS method, i.indpred IS NOT NULL AS is_partial,
       i.indexprs IS NOT NULL AS has_expressions,
       ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             ORDER BY k.ord)::text[] AS columns,
       i.indkey::text AS indkey, i.indclass::text AS indclass,
       pg_get_indexdef(i.indexrelid) AS definition,
       pg_relation_size(i.indexrelid) AS size_bytes,
       COALESCE(s.idx_scan, 0) AS idx_scan,
       EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) AS backs_constraint
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_am am ON am.oid = ic.relam
LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND (%(schema)s::text IS NULL OR n.nspname = %(schema)s::text)
  AND (%(table_oid)s::oid IS NULL OR i.indrelid = %(table_oid)s::oid)
ORDER BY n.nspname, t.relname, ic.relname
"""


def indexes(
    conn: psycopg.Connection, *, schema: str | None = None, table_oid: int | None = None
) -> list[dict[str, Any]]:
    return conn.execute(INDEXES_SQL, {"schema": schema, "table_oid": table_oid}).fetchall()


def foreign_keys(conn: psycopg.Connection, *, schema: str | None = None) -> list[dict[str, Any]]:
    return conn.execute(
        """
        SELECT n.nspname AS schema, t.relname AS table, c.conname AS name, c.conrelid AS table_oid,
               ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
                     ORDER BY k.ord)::text[] AS columns,
               c.confrelid::regclass::text AS references
        FROM pg_constraint c
        JOIN pg_class t ON t.oid = c.conrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE c.contype = 'f'
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND (%(schema)s::text IS NULL OR n.nspname = %(schema)s::text)
        ORDER BY 1, 2, 3
        """,
        {"schema": schema},
    ).fetchall()


# --- hypopg -------------------------------------------------------------------


def index_statement(
    schema: str, table: str, columns: Sequence[str], *, name: str | None = None, concurrently=False
) -> sql.Composed:
    """CREATE INDEX [CONCURRENTLY] [name] ON schema.table (columns); a column may be an
    expression or carry a pattern operator class (see index_elements)."""
    parts = [sql.SQL("CREATE INDEX")]
    if concurrently:
        parts.append(sql.SQL("CONCURRENTLY"))
    if name:
        parts.append(sql.Identifier(name))
    parts.append(
        sql.SQL("ON {} ({})").format(
            sql.Identifier(schema, table), index_elements.elements_sql(columns)
        )
    )
    return sql.SQL(" ").join(parts)


def hypothetical_index(
    conn: psycopg.Connection, schema: str, table: str, columns: Sequence[str]
) -> dict:
    """Create a hypothetical index (this session only); returns its oid and size."""
    text = index_statement(schema, table, columns).as_string(conn)
    row = conn.execute("SELECT indexrelid FROM hypopg_create_index(%s)", [text]).fetchone()
    size = conn.execute("SELECT hypopg_relation_size(%s) AS size", [row["indexrelid"]]).fetchone()
    return {"oid": row["indexrelid"], "size_bytes": size["size"]}


def drop_hypothetical_indexes(conn: psycopg.Connection) -> None:
    conn.execute("SELECT hypopg_reset()")


# --- building and dropping real indexes ---------------------------------------


def set_timeouts(conn: psycopg.Connection, *, lock_timeout_ms: int, statement_timeout_ms: int):
    conn.execute("SELECT set_config('lock_timeout', %s, false)", [f"{int(lock_timeout_ms)}ms"])
    conn.execute(
        "SELECT set_config('statement_timeout', %s, false)", [f"{int(statement_timeout_ms)}ms"]
    )


def backend_pid(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]


def create_index_concurrently(
    conn: psycopg.Connection, schema: str, table: str, columns: Sequence[str], name: str
) -> None:
    conn.execute(index_statement(schema, table, columns, name=name, concurrently=True))


def drop_index_concurrently(conn: psycopg.Connection, schema: str, name: str) -> None:
    conn.execute(
        sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(schema, name))
    )


def index_state(conn: psycopg.Connection, schema: str, name: str) -> dict | None:
    """Whether the named index exists, and whether it is valid and ready."""
    return conn.execute(
        """
        SELECT ic.relname AS name, i.indisvalid AS is_valid, i.indisready AS is_ready,
               t.relname AS table, pg_get_indexdef(i.indexrelid) AS definition,
               pg_relation_size(i.indexrelid) AS size_bytes
        FROM pg_class ic
        JOIN pg_namespace n ON n.oid = ic.relnamespace
        JOIN pg_index i ON i.indexrelid = ic.oid
        JOIN pg_class t ON t.oid = i.indrelid
        WHERE n.nspname = %s AND ic.relname = %s
        """,
        [schema, name],
    ).fetchone()


def create_index_progress(conn: psycopg.Connection, pid: int) -> dict | None:
    return conn.execute(
        """
        SELECT phase, blocks_total, blocks_done, tuples_total, tuples_done,
               lockers_total, lockers_done
        FROM pg_stat_progress_create_index WHERE pid = %s
        """,
        [pid],
    ).fetchone()
