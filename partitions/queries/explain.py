"""EXPLAIN for one statement, as a plan tree with its problems highlighted.

EXPLAIN ANALYZE runs only plain SELECT statements (checked with pglast) whose every
function is known safe (explain_guard), inside a read-only transaction that is
always rolled back, under statement, lock and idle timeouts, as the warehouse's
low-privilege explain role when it names one. Every EXPLAIN ANALYZE is audited
(who, warehouse, statement fingerprint, outcome).
Statements with `$n` parameters get a generic plan (plan_cache_mode =
force_generic_plan) unless the operator gives sample values (a custom plan).
Nothing this module does changes the warehouse.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pglast
import psycopg
from django.conf import settings

from opsconsole import audit
from partitions import warehouses
from partitions.warehouses.postgres import open_warehouse

from . import explain_guard, parsing, pg
from .errors import QueriesError

AUDIT_ACTION = "queries.explain_analyze"

COSTLY_SHARE = 0.3  # a node whose own cost is this share of the whole plan
MISESTIMATE_FACTOR = 10


def timeout_ms() -> int:
    return int(getattr(settings, "QUERIES_EXPLAIN_TIMEOUT_MS", 10_000))


def big_table_rows() -> int:
    return int(getattr(settings, "QUERIES_BIG_TABLE_ROWS", 10_000))


class NotExplainable(QueriesError):
    pass


class ExplainRefused(NotExplainable):
    """Refused before running: the statement must not be executed."""


def explain_role(warehouse: str) -> str | None:
    """The low-privilege role EXPLAIN ANALYZE runs as (`?explain_role=` in the URL)."""
    return warehouses.get(warehouse).options.get("explain_role") or None


def fingerprint(statement: str) -> str:
    """The statement's shape without its constants (pglast), for the audit log."""
    try:
        return pglast.parser.fingerprint(statement)
    except pglast.parser.ParseError:
        return "text:" + hashlib.sha256(statement.encode()).hexdigest()[:16]


@dataclass
class PlanNode:
    depth: int
    node_type: str
    relation: str = ""
    schema: str = ""
    index: str = ""
    detail: str = ""
    total_cost: float = 0.0
    self_cost: float = 0.0
    plan_rows: float = 0.0
    actual_rows: float | None = None
    loops: float | None = None
    actual_ms: float | None = None
    flags: list[str] = field(default_factory=list)


@dataclass
class Explained:
    statement: str
    mode: str  # what kind of plan it is, in words
    analyze: bool
    plan: dict[str, Any]
    nodes: list[PlanNode]
    total_cost: float
    execution_ms: float | None = None

    @property
    def flagged(self) -> list[PlanNode]:
        return [n for n in self.nodes if n.flags]


def check_explainable(shape: parsing.Shape, analyze: bool, values: Sequence | None) -> None:
    """Refuse what must not run: anything but DML for EXPLAIN; anything but a plain
    SELECT for EXPLAIN ANALYZE; ANALYZE of a `$n` statement without sample values."""
    if not shape.explainable:
        raise ExplainRefused(
            f"This is a {shape.kind} statement; only SELECT, INSERT, UPDATE and DELETE "
            "can be explained."
        )
    if analyze and not (shape.kind == "select" and shape.read_only):
        raise ExplainRefused(
            "EXPLAIN ANALYZE runs the statement, so it is offered only for plain SELECT "
            "statements (no writes, no FOR UPDATE, no SELECT INTO). Use EXPLAIN instead."
        )
    if values is not None and len(values) != shape.parameters:
        raise ExplainRefused(
            f"The statement has {shape.parameters} parameter(s) but {len(values)} sample "
            "value(s) were given."
        )
    if analyze and shape.parameters and values is None:
        raise ExplainRefused(
            "EXPLAIN ANALYZE needs sample values for $1…$n (one per line); without them "
            "only the generic plan can be shown."
        )


def explain_statement(
    warehouse: str,
    statement: str,
    *,
    analyze: bool = False,
    values: Sequence[str] | None = None,
    actor: audit.Actor = None,
    ip_address: str | None = None,
) -> Explained:
    """EXPLAIN (FORMAT JSON) of `statement` in `warehouse`; changes nothing (the
    transaction is rolled back even for ANALYZE). An ANALYZE writes one audit
    event (ok, failed, or denied when refused before running)."""
    if not analyze:
        return _explain(warehouse, statement, analyze=False, values=values)
    facts = {"fingerprint": fingerprint(statement), "role": explain_role(warehouse) or ""}
    try:
        result = _explain(warehouse, statement, analyze=True, values=values)
    except ExplainRefused as exc:
        audit.denied(
            actor, AUDIT_ACTION, warehouse, ip_address=ip_address, **facts, reason=str(exc)
        )
        raise
    except Exception as exc:
        audit.write(
            actor,
            AUDIT_ACTION,
            warehouse,
            outcome=audit.Outcome.FAILED,
            error=f"{type(exc).__name__}: {exc}",
            ip_address=ip_address,
            params=facts,
        )
        raise
    audit.write(
        actor,
        AUDIT_ACTION,
        warehouse,
        ip_address=ip_address,
        params={**facts, "execution_ms": result.execution_ms},
    )
    return result


def _explain(
    warehouse: str, statement: str, *, analyze: bool, values: Sequence[str] | None
) -> Explained:
    try:
        shape = parsing.shape_of(statement)
    except parsing.UnparsableStatement as exc:
        raise ExplainRefused(f"Cannot explain this statement: {exc}") from None
    check_explainable(shape, analyze, values)
    if shape.parameters and values is None:
        mode = "generic plan (plan_cache_mode = force_generic_plan): parameter values unknown"
    elif shape.parameters:
        mode = "custom plan for the sample values given"
    else:
        mode = "plan for the statement as written"
    with open_warehouse(warehouse) as conn:
        plan = _plan(conn, warehouse, statement, shape, analyze=analyze, values=values)
        nodes = flatten(plan["Plan"])
        sizes = pg.relation_sizes(
            conn, sorted({(n.schema, n.relation) for n in nodes if n.relation})
        )
    highlight(nodes, sizes, analyze)
    return Explained(
        statement=statement,
        mode=mode,
        analyze=analyze,
        plan=plan,
        nodes=nodes,
        total_cost=float(plan["Plan"]["Total Cost"]),
        execution_ms=plan.get("Execution Time"),
    )


def _plan(
    conn: psycopg.Connection,
    warehouse: str,
    statement: str,
    shape: parsing.Shape,
    *,
    analyze: bool,
    values: Sequence[str] | None,
) -> dict:
    """The JSON plan, inside a rolled-back read-only transaction under limits."""
    try:
        with pg.rolled_back(conn, timeout_ms=timeout_ms(), read_only=True):
            if analyze:
                explain_guard.limit_transaction(
                    conn, timeout_ms=timeout_ms(), role=explain_role(warehouse)
                )
                _refuse_unsafe_calls(conn, statement)
            if shape.parameters:
                return pg.explain_prepared(
                    conn,
                    statement,
                    values=list(values) if values is not None else [None] * shape.parameters,
                    generic=values is None,
                    analyze=analyze,
                )
            return pg.explain_plain(conn, statement, analyze=analyze)
    except psycopg.errors.QueryCanceled:
        raise NotExplainable(
            f"Stopped after the {timeout_ms()} ms statement timeout (rolled back)."
        ) from None
    except psycopg.errors.LockNotAvailable:
        raise NotExplainable("Stopped waiting for a lock (lock timeout; rolled back).") from None
    except psycopg.Error as exc:
        if conn.broken:
            raise
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise NotExplainable(f"PostgreSQL refused to explain it: {message}") from None


def _refuse_unsafe_calls(conn: psycopg.Connection, statement: str) -> None:
    try:
        explain_guard.check_calls(conn, parsing.parse_one(statement))
    except explain_guard.UnsafeToRun as exc:
        raise ExplainRefused(
            f"EXPLAIN ANALYZE would run the statement, and {exc}. Use EXPLAIN instead."
        ) from None


DETAIL_KEYS = ("Index Cond", "Recheck Cond", "Filter", "Hash Cond", "Merge Cond", "Sort Key")


def flatten(node: dict, depth: int = 0) -> list[PlanNode]:
    """The plan tree as a list in display order, each node with its own cost."""
    children = node.get("Plans", [])
    child_cost = sum(float(c.get("Total Cost", 0)) for c in children)
    details = []
    for key in DETAIL_KEYS:
        if key in node:
            value = node[key]
            details.append(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
    out = [
        PlanNode(
            depth=depth,
            node_type=node["Node Type"],
            relation=node.get("Relation Name", ""),
            schema=node.get("Schema", ""),
            index=node.get("Index Name", ""),
            detail="; ".join(details),
            total_cost=float(node.get("Total Cost", 0)),
            self_cost=max(float(node.get("Total Cost", 0)) - child_cost, 0.0),
            plan_rows=float(node.get("Plan Rows", 0)),
            actual_rows=node.get("Actual Rows"),
            loops=node.get("Actual Loops"),
            actual_ms=node.get("Actual Total Time"),
        )
    ]
    for child in children:
        out.extend(flatten(child, depth + 1))
    return out


def highlight(
    nodes: list[PlanNode], relation_rows: dict[tuple[str, str], float], analyze: bool
) -> None:
    """Flag costly nodes, row-estimate misses (ANALYZE only) and sequential scans of
    big tables."""
    total = nodes[0].total_cost if nodes else 0.0
    for node in nodes:
        if total > 0 and node.self_cost >= COSTLY_SHARE * total:
            node.flags.append(f"costly: {node.self_cost / total:.0%} of the plan's cost")
        if analyze and node.actual_rows is not None:
            estimated, actual = max(node.plan_rows, 1), max(node.actual_rows, 1)
            if max(estimated / actual, actual / estimated) >= MISESTIMATE_FACTOR:
                node.flags.append(
                    f"row estimate off: planned {node.plan_rows:.0f}, got {node.actual_rows:.0f}"
                )
        rows = relation_rows.get((node.schema, node.relation), 0)
        if node.node_type == "Seq Scan" and rows >= big_table_rows():
            node.flags.append(f"sequential scan of a big table (~{rows:,.0f} rows)")
