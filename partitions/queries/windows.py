"""Pricing a range between two parameters at a realistic width.

A normalized statement (`ts >= $1 AND ts < $2`, `amount BETWEEN $1 AND $2`) does not say
how wide its window is. PostgreSQL's generic plan then guesses that it keeps 0.5 % of
the rows (DEFAULT_RANGE_INEQ_SEL): a guess made to plan an unknown query, which makes
nearly any index on the column look like a large win. Built on that guess, an index can
serve a one-year window worse than the sequential scan it replaces, and the planner,
seeing a near tie, still picks it (TPC-H Q6 on `lineitem(l_shipdate)`: 1 % cheaper by
its estimate, 1.6 times slower in fact).

So the advisor prices such a range at QUERIES_ADVISOR_RANGE_WINDOW (5 %) of the column's
values: the bounds are read from the column's histogram (pg_stats), centred, and put in
the text priced as constants; every other parameter stays a `$n` (renumbered) for the
generic plan. An index then has to pay off at that width, as one on a column the table
is ordered by (a timestamp of inserts) does, and one on a scattered column does not.
A statement seen running with its values (pg_stat_activity samples) is priced with
those and never comes here.
"""

from dataclasses import dataclass

import psycopg
from django.conf import settings
from pglast import ast, enums
from pglast.stream import RawStream
from pglast.visitors import Visitor

from . import parsing

LOWER_OPS = {">", ">="}
UPPER_OPS = {"<", "<="}
FLIPPED = {">": "<", ">=": "<=", "<": ">", "<=": ">="}


def window() -> float:
    return float(settings.QUERIES_ADVISOR_RANGE_WINDOW)


@dataclass(frozen=True)
class Bound:
    column: tuple[str, ...]  # the column reference as written: ("o", "o_orderdate")
    parameter: int
    upper: bool


class _Bounds(Visitor):
    """Every `column <op> $n` (a cast around `$n` allowed) and `column BETWEEN $a AND $b`."""

    def __init__(self):
        self.found: list[Bound] = []

    def visit_A_Expr(self, ancestors, node):
        op = node.name[-1].sval if node.name else ""
        if node.kind == enums.A_Expr_Kind.AEXPR_BETWEEN:
            column = _column(node.lexpr)
            low, high = node.rexpr
            for side, upper in ((low, False), (high, True)):
                if column and (number := _parameter(side)):
                    self.found.append(Bound(column, number, upper))
        elif node.kind == enums.A_Expr_Kind.AEXPR_OP and op in LOWER_OPS | UPPER_OPS:
            column, number = _column(node.lexpr), _parameter(node.rexpr)
            if not column:
                column, number, op = _column(node.rexpr), _parameter(node.lexpr), FLIPPED[op]
            if column and number:
                self.found.append(Bound(column, number, op in UPPER_OPS))


def _column(node) -> tuple[str, ...] | None:
    if isinstance(node, ast.ColumnRef) and all(isinstance(f, ast.String) for f in node.fields):
        return tuple(f.sval for f in node.fields)
    return None


def _parameter(node) -> int | None:
    if isinstance(node, ast.TypeCast):
        node = node.arg
    return node.number if isinstance(node, ast.ParamRef) else None


class _Substitute(Visitor):
    """Each chosen `$n` becomes its constant, the others are numbered anew from 1."""

    def __init__(self, values: dict[int, str], renumbered: dict[int, int]):
        self.values, self.renumbered = values, renumbered

    def visit_ParamRef(self, ancestors, node):
        if node.number in self.values:
            return ast.A_Const(val=ast.String(sval=self.values[node.number]))
        return ast.ParamRef(number=self.renumbered[node.number], location=node.location)


def two_sided(text: str) -> dict[tuple[str, ...], tuple[list[int], list[int]]]:
    """Per column compared with a parameter from below and from above: the parameters
    of its lower bounds and of its upper bounds."""
    finder = _Bounds()
    finder(parsing.parse_one(text))
    sides: dict[tuple[str, ...], tuple[list[int], list[int]]] = {}
    for bound in finder.found:
        lower, upper = sides.setdefault(bound.column, ([], []))
        (upper if bound.upper else lower).append(bound.parameter)
    return {column: pair for column, pair in sides.items() if pair[0] and pair[1]}


def priced_text(
    conn: psycopg.Connection, text: str, shape: parsing.Shape, catalog, share: float | None = None
) -> tuple[str, int]:
    """The text to price and its parameter count: `text` itself, or with each two-sided
    parameter range replaced by a window of `share` of the column's values."""
    if not shape.parameters:
        return text, 0
    share = window() if share is None else share
    values: dict[int, str] = {}
    for column, (lower, upper) in two_sided(text).items():
        window_bounds = _window(_statistics(conn, catalog, shape, column), share)
        if window_bounds is not None:
            values.update({n: window_bounds[0] for n in lower})
            values.update({n: window_bounds[1] for n in upper})
    if not values:
        return text, shape.parameters
    remaining = [n for n in range(1, shape.parameters + 1) if n not in values]
    renumbered = {old: new for new, old in enumerate(remaining, start=1)}
    statement = parsing.parse_one(text)
    _Substitute(values, renumbered)(statement)
    return RawStream()(statement), len(remaining)


def _window(statistics: dict | None, share: float) -> tuple[str, str] | None:
    """Bounds around the middle of the column's histogram keeping `share` of its values;
    a column with no histogram (a few distinct values, all common) gets one of its
    common values as both bounds: a range is at least one value wide."""
    if statistics is None:
        return None
    bounds, common = statistics["bounds"] or [], statistics["common"] or []
    if len(bounds) >= 2:
        last = len(bounds) - 1
        low = round((0.5 - share / 2) * last)
        high = max(round((0.5 + share / 2) * last), low + 1)
        return bounds[low], bounds[high]
    if common:
        middle = common[len(common) // 2]  # by frequency: neither the commonest nor rarest
        return middle, middle
    return None


def _statistics(conn: psycopg.Connection, catalog, shape: parsing.Shape, column) -> dict | None:
    """The column's histogram bounds and common values as text, from the one table of
    the statement it can belong to (by its qualifier, or the only one with the column)."""
    *qualifier, name = column
    refs = [t for t in shape.tables if not qualifier or t.key == qualifier[-1]]
    found: list[dict] = []
    for ref in refs:
        table = catalog.table(ref)
        if table is None:
            continue
        row = conn.execute(
            """
            SELECT histogram_bounds::text::text[] AS bounds,
                   most_common_vals::text::text[] AS common
            FROM pg_stats
            WHERE schemaname = %s AND tablename = %s AND attname = %s
            ORDER BY inherited DESC LIMIT 1
            """,
            [table["schema"], table["table"], name],
        ).fetchone()
        if row is not None:
            found.append(row)
    return found[0] if len(found) == 1 else None
