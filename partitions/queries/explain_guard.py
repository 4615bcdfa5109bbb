"""What EXPLAIN ANALYZE may run: only statements whose every function is known safe.

EXPLAIN ANALYZE executes the statement. A read-only transaction that is rolled
back does not stop a function from acting outside the transaction
(`pg_terminate_backend`, `pg_advisory_lock`, `pg_reload_conf`, `set_config`,
`dblink`, `lo_import`, `pg_read_file` ...), so before running it we walk the
pglast tree, resolve every function and operator it calls (and those of the views
it reads) against the warehouse's `pg_proc`, and refuse:

- volatile functions, except the few in SAFE_VOLATILE that only produce values;
- functions and operators outside the trusted schemas (`pg_catalog` and
  `information_schema` by default, setting QUERIES_EXPLAIN_TRUSTED_SCHEMAS): a
  user-defined function may declare itself IMMUTABLE and still do anything;
- unknown functions (we cannot tell what they do).

The statement then runs under statement, lock and idle-in-transaction timeouts,
read-only, and as the low-privilege role the warehouse URL names
(`?explain_role=`), so a missed case meets the role's privileges as a second wall.
Known limit: input functions of user-defined types behind casts are not resolved;
the low-privilege role is what covers them.
"""

from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
from django.conf import settings
from pglast import ast, enums
from pglast.visitors import Visitor
from psycopg import sql

from .parsing import parse_one

# Volatile only because their value changes from call to call (pg_sleep: it only
# waits, and the statement timeout bounds the wait); they touch nothing.
SAFE_VOLATILE = frozenset({"random", "clock_timestamp", "timeofday", "gen_random_uuid", "pg_sleep"})
DEFAULT_TRUSTED_SCHEMAS = ("pg_catalog", "information_schema")
# A_Expr kinds whose name is not an operator.
NOT_OPERATORS = {
    enums.A_Expr_Kind.AEXPR_BETWEEN,
    enums.A_Expr_Kind.AEXPR_NOT_BETWEEN,
    enums.A_Expr_Kind.AEXPR_BETWEEN_SYM,
    enums.A_Expr_Kind.AEXPR_NOT_BETWEEN_SYM,
}


class UnsafeToRun(Exception):
    """The statement calls something EXPLAIN ANALYZE must not execute."""


@dataclass(frozen=True)
class Callee:
    """A function or operator named in the statement: (schema or None, name)."""

    schema: str | None
    name: str

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


@dataclass
class Calls:
    functions: set[Callee]
    operators: set[Callee]
    relations: set[Callee]


class _CallFinder(Visitor):
    def __init__(self):
        self.calls = Calls(set(), set(), set())

    def visit_FuncCall(self, ancestors, node):
        self.calls.functions.add(_callee(node.funcname))

    def visit_A_Expr(self, ancestors, node):
        if node.kind not in NOT_OPERATORS and node.name:
            self.calls.operators.add(_callee(node.name))

    def visit_RangeVar(self, ancestors, node):
        self.calls.relations.add(Callee(node.schemaname, node.relname))


def _callee(names: Iterable) -> Callee:
    parts = [n.sval for n in names if isinstance(n, ast.String)]
    return Callee(parts[-2] if len(parts) > 1 else None, parts[-1])


def calls_of(stmt: ast.Node) -> Calls:
    """Every function, operator and relation the parse tree names."""
    finder = _CallFinder()
    finder(stmt)
    return finder.calls


def trusted_schemas() -> list[str]:
    return list(getattr(settings, "QUERIES_EXPLAIN_TRUSTED_SCHEMAS", DEFAULT_TRUSTED_SCHEMAS))


# --- the warehouse's catalog --------------------------------------------------

_FUNCTIONS_SQL = """
SELECT r.schema, r.name, f.nspname, f.proname, f.provolatile
FROM unnest(%s::text[], %s::text[]) AS r(schema, name)
LEFT JOIN LATERAL (
    SELECT n.nspname, p.proname, p.provolatile
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE p.proname = r.name
      AND CASE WHEN r.schema IS NULL THEN n.nspname = ANY (current_schemas(true))
               ELSE n.nspname = r.schema END
) f ON true
"""

_OPERATORS_SQL = """
SELECT n.nspname, o.oprname, pn.nspname AS func_schema, p.proname, p.provolatile
FROM unnest(%s::text[], %s::text[]) AS r(schema, name)
JOIN pg_operator o ON o.oprname = r.name
JOIN pg_namespace n ON n.oid = o.oprnamespace
JOIN pg_proc p ON p.oid = o.oprcode
JOIN pg_namespace pn ON pn.oid = p.pronamespace
WHERE (r.schema IS NULL AND n.nspname = ANY (current_schemas(true))) OR n.nspname = r.schema
"""

# The views among the relations a statement reads, with their definitions (parsed
# and checked like the statement: built-in functions are not in pg_depend).
_VIEWS_SQL = """
SELECT c.oid::regclass::text AS label, pg_get_viewdef(c.oid) AS definition
FROM unnest(%s::text[], %s::text[]) AS r(schema, name)
JOIN pg_class c ON c.oid = to_regclass(
    CASE WHEN r.schema IS NULL THEN quote_ident(r.name)
         ELSE quote_ident(r.schema) || '.' || quote_ident(r.name) END)
WHERE c.relkind = 'v'
"""
MAX_VIEW_DEPTH = 8


def _arrays(callees: Iterable[Callee]) -> list[list]:
    items = sorted(callees, key=lambda c: (c.schema or "", c.name))
    return [[c.schema for c in items], [c.name for c in items]]


def _refusal(schema: str, name: str, volatile: str, trusted: list[str]) -> str | None:
    """Why function schema.name must not run, or None when it may."""
    if schema not in trusted:
        return (
            f"function {schema}.{name} is outside the trusted schemas ({', '.join(trusted)}); "
            "it could do anything whatever volatility it declares"
        )
    if volatile == "v" and name not in SAFE_VOLATILE:
        return f"function {schema}.{name} is volatile (it may act beyond the rolled-back query)"
    return None


def check_calls(conn: psycopg.Connection, stmt: ast.Node) -> None:
    """Raise UnsafeToRun naming the first function, operator or view that must not
    be executed by EXPLAIN ANALYZE. Reads the catalog only."""
    _check_tree(conn, stmt, trusted_schemas(), within="", depth=0)


def _check_tree(
    conn: psycopg.Connection, stmt: ast.Node, trusted: list[str], *, within: str, depth: int
) -> None:
    calls = calls_of(stmt)
    prefix = f"view {within} calls " if within else ""
    for row in conn.execute(_FUNCTIONS_SQL, _arrays(calls.functions)).fetchall():
        schema, name, found_schema, proname, volatile = _values(row)
        if proname is None:
            label = Callee(schema, name).label
            raise UnsafeToRun(f"{prefix}function {label} is unknown to the warehouse")
        if reason := _refusal(found_schema, proname, volatile, trusted):
            raise UnsafeToRun(prefix + reason)
    for row in conn.execute(_OPERATORS_SQL, _arrays(calls.operators)).fetchall():
        op_schema, op_name, func_schema, proname, volatile = _values(row)
        if op_schema not in trusted:
            raise UnsafeToRun(
                f"{prefix}operator {op_schema}.{op_name} is outside the trusted schemas"
            )
        if reason := _refusal(func_schema, proname, volatile, trusted):
            raise UnsafeToRun(f"{prefix}operator {op_name} calls {reason}")
    for row in conn.execute(_VIEWS_SQL, _arrays(calls.relations)).fetchall():
        label, definition = _values(row)
        if depth >= MAX_VIEW_DEPTH:
            raise UnsafeToRun(f"view {label} is nested too deeply to check")
        _check_tree(conn, parse_one(definition), trusted, within=label, depth=depth + 1)


def _values(row) -> tuple:
    return tuple(row.values()) if isinstance(row, dict) else tuple(row)


def limit_transaction(conn: psycopg.Connection, *, timeout_ms: int, role: str | None) -> None:
    """Inside the caller's rolled-back transaction: lock and idle timeouts (the
    statement timeout is the transaction's own), and the low-privilege role when
    the warehouse names one. All are LOCAL: the rollback undoes them."""
    for name, value in (
        ("lock_timeout", f"{max(int(timeout_ms) // 4, 1)}ms"),
        ("idle_in_transaction_session_timeout", f"{int(timeout_ms) * 2}ms"),
    ):
        conn.execute("SELECT set_config(%s, %s, true)", [name, value])
    if role:
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
