"""PostgreSQL catalog queries: tables, partitions, columns and what depends on a table."""

from datetime import UTC, date, datetime
from typing import Any

import pglast
import psycopg
from pglast import ast
from pglast.visitors import Visitor
from psycopg import sql

from .. import uuid7
from ..base import TableInfo

TABLES = """
SELECT n.nspname, c.relname, c.relkind, c.reltuples::bigint,
       pg_total_relation_size(c.oid), pg_get_partkeydef(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'partman')
  AND n.nspname NOT LIKE 'pg\\_%%'
ORDER BY n.nspname, c.relname
"""

PARTITIONS = """
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), c.reltuples::bigint,
       pg_total_relation_size(c.oid),
       greatest(s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze),
       s.n_live_tup
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE i.inhparent = %s::regclass
ORDER BY pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT', c.relname
"""

COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       a.attidentity, a.attgenerated, pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

PRIMARY_KEY = """
SELECT a.attname FROM pg_index i
JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.ord
"""

VIEWS = """
SELECT DISTINCT v.oid, vn.nspname, v.relname, v.relkind, pg_get_viewdef(v.oid, true)
FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
JOIN pg_class v ON v.oid = r.ev_class JOIN pg_namespace vn ON vn.oid = v.relnamespace
WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = %s::regclass AND v.oid <> d.refobjid
ORDER BY vn.nspname, v.relname
"""

CONSTRAINTS = """
SELECT conname, contype, pg_get_constraintdef(oid), conrelid::regclass::text,
       conrelid = %(t)s::regclass,
       array(SELECT a.attname FROM unnest(confkey) WITH ORDINALITY AS k(n, o)
             JOIN pg_attribute a ON a.attrelid = confrelid AND a.attnum = k.n ORDER BY k.o)
FROM pg_constraint
WHERE (conrelid = %(t)s::regclass AND contype = 'f') OR (confrelid = %(t)s::regclass)
ORDER BY conname
"""

TRIGGERS = """
SELECT tgname, tgenabled, pg_get_triggerdef(oid) FROM pg_trigger
WHERE tgrelid = %s::regclass AND NOT tgisinternal ORDER BY tgname
"""

GRANTS = """
SELECT coalesce(r.rolname, 'PUBLIC'), a.privilege_type
FROM pg_class c, aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
WHERE c.oid = %s::regclass AND a.grantee <> c.relowner
ORDER BY 1, 2
"""

SEQUENCES = """
SELECT s.relname, sn.nspname, a.attname FROM pg_depend d
JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
JOIN pg_namespace sn ON sn.oid = s.relnamespace
JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE d.refobjid = %s::regclass AND d.deptype = 'a' AND d.classid = 'pg_class'::regclass
"""

INDEXES = """
SELECT ic.relname, i.indisunique, am.amname, i.indexprs IS NOT NULL OR i.indpred IS NOT NULL,
       array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o)
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
WHERE i.indrelid = %s::regclass AND NOT i.indisprimary
ORDER BY ic.relname
"""


HISTORY = """
SELECT query, calls FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query ILIKE %s AND query !~* '^\\s*(CREATE|ALTER|DROP|ANALYZE|VACUUM|COPY)'
ORDER BY calls DESC LIMIT 200
"""


def regclass(conn: psycopg.Connection, schema: str, table: str) -> str:
    """schema.table quoted as ::regclass reads it."""
    return sql.Identifier(schema, table).as_string(conn)


def partitioning(partkey: str) -> dict[str, Any]:
    """pg_get_partkeydef() text as {type, column, definition}."""
    method, _, rest = partkey.partition(" ")
    return {"type": method.lower(), "column": rest.strip("()"), "definition": partkey}


def generated_columns(conn: psycopg.Connection, info: TableInfo) -> list[str]:
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
        " AND NOT attisdropped AND attgenerated <> ''",
        [sql.Identifier(info.schema, info.name).as_string(conn)],
    )
    return [row[0] for row in rows]


def owned_sequences(conn: psycopg.Connection, info: TableInfo) -> list[dict[str, str]]:
    return [
        {"schema": s, "name": n, "column": c}
        for n, s, c in conn.execute(SEQUENCES, [regclass(conn, info.schema, info.name)])
    ]


def identity_columns(conn: psycopg.Connection, schema: str, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
        " AND NOT attisdropped AND attidentity <> '' ORDER BY attnum",
        [regclass(conn, schema, table)],
    )
    return [row[0] for row in rows]


def user_triggers(conn: psycopg.Connection, info: TableInfo) -> list[dict[str, str]]:
    """The table's own triggers with their definitions (pg_get_triggerdef)."""
    return [
        {"name": name, "enabled": enabled, "definition": definition}
        for name, enabled, definition in conn.execute(
            TRIGGERS, [regclass(conn, info.schema, info.name)]
        )
    ]


def inbound_foreign_keys(
    conn: psycopg.Connection, info: TableInfo, column: str
) -> list[dict[str, str]]:
    """Foreign keys of other tables that reference `column` (among others) of this one:
    the only ones a partitioned table can carry (its keys include the partition column)."""
    rows = conn.execute(
        "SELECT n.nspname, r.relname, c.conname, pg_get_constraintdef(c.oid),"
        " array(SELECT a.attname FROM unnest(c.confkey) AS k(n)"
        " JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n)"
        " FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid"
        " JOIN pg_namespace n ON n.oid = r.relnamespace"
        " WHERE c.confrelid = %s::regclass AND c.contype = 'f' ORDER BY c.conname",
        [regclass(conn, info.schema, info.name)],
    )
    return [
        {"schema": s, "table": t, "name": n, "definition": d}
        for s, t, n, d, cols in rows
        if column in cols
    ]


def plain_indexes(conn: psycopg.Connection, info: TableInfo) -> list[dict]:
    return [
        {"name": n, "unique": u, "method": m, "columns": cols}
        for n, u, m, expression, cols in conn.execute(
            INDEXES, [regclass(conn, info.schema, info.name)]
        )
        if not expression
    ]


def outbound_foreign_keys(conn: psycopg.Connection, info: TableInfo) -> list[dict]:
    rows = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname",
        [regclass(conn, info.schema, info.name)],
    )
    return [{"name": n, "definition": d} for n, d in rows]


# --- partitions of a partitioned table ----------------------------------------

PARTITION_BOUNDS = """
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = %s::regclass AND c.relispartition
"""


def partition_ranges(
    conn: psycopg.Connection, schema: str, table: str
) -> list[tuple[str, Any, Any]]:
    """(partition, from, to) of each range partition, oldest first: dates for date,
    timestamp and UUIDv7 bounds, integers for integer ones.

    PostgreSQL keeps the bound as a node tree and shows it only as text
    (pg_get_expr), so the text is read with its own parser (pglast); the default
    partition and MINVALUE/MAXVALUE bounds are left out."""
    found = []
    for name, bound in conn.execute(PARTITION_BOUNDS, [regclass(conn, schema, table)]):
        ends = range_bounds(bound or "")
        if ends is not None:
            found.append((name, *ends))
    return sorted(found, key=lambda r: r[1])


def range_bounds(bound: str) -> tuple[Any, Any] | None:
    """FOR VALUES FROM ('2024-01-01 00:00:00+00') TO (…) → the two dates (UTC); a
    UUIDv7 bound → the date it starts; an integer bound → the integer."""
    statement = pglast.parse_sql(f"CREATE TABLE p PARTITION OF t {bound}")[0].stmt
    spec = statement.partbound
    if spec is None or spec.is_default or spec.strategy != "r":
        return None
    lower, upper = spec.lowerdatums or (), spec.upperdatums or ()
    if len(lower) != 1 or len(upper) != 1:
        return None
    ends = [_constant(lower[0]), _constant(upper[0])]
    return None if None in ends else (ends[0], ends[1])


def _constant(datum: ast.Node) -> date | int | None:
    # MINVALUE/MAXVALUE are no constants; an unquoted bigint past 32 bits parses as a Float.
    if not isinstance(datum, ast.A_Const) or datum.isnull:
        return None
    if isinstance(datum.val, ast.Integer):
        return datum.val.ival
    if isinstance(datum.val, ast.Float):
        return int(datum.val.fval)
    if not isinstance(datum.val, ast.String):
        return None
    text = datum.val.sval
    if text.lstrip("-").isdigit():  # pg_get_expr quotes integer bounds: ('1000')
        return int(text)
    value = uuid7.moment_of(text) if len(text) == 36 else datetime.fromisoformat(text)
    if value is None:
        return None
    return value.astimezone(UTC).date() if value.tzinfo else value.date()


# --- the table's query history -------------------------------------------------


def filters_on(query: str, column: str) -> bool:
    """Whether a recorded statement has a WHERE clause that reads `column`.

    Read with PostgreSQL's parser (pglast); a statement it cannot parse (say, text
    pg_stat_statements cut short) counts as not filtering."""
    try:
        statements = pglast.parse_sql(query)
    except pglast.parser.ParseError:
        return False
    finder = _WhereColumns()
    finder(statements)
    return column.lower() in finder.columns


class _WhereColumns(Visitor):
    """Columns named in the WHERE clause of any SELECT, UPDATE or DELETE."""

    def __init__(self):
        self.columns: set[str] = set()

    def _where(self, node) -> None:
        if node.whereClause is not None:
            _ColumnNames(self.columns)(node.whereClause)

    def visit_SelectStmt(self, ancestors, node) -> None:
        self._where(node)

    def visit_UpdateStmt(self, ancestors, node) -> None:
        self._where(node)

    def visit_DeleteStmt(self, ancestors, node) -> None:
        self._where(node)


class _ColumnNames(Visitor):
    def __init__(self, into: set[str]):
        self.into = into

    def visit_ColumnRef(self, ancestors, node) -> None:
        last = node.fields[-1]
        if isinstance(last, ast.String):
            self.into.add(last.sval.lower())
