"""Understanding a statement with pglast (the PostgreSQL parser): what kind it is,
how many `$n` parameters it has, and which columns of which tables it filters,
joins and sorts on. No regular expressions: everything comes from the parse tree."""

from collections.abc import Iterable
from dataclasses import dataclass, field

import pglast
from pglast import ast, enums
from pglast.visitors import Visitor

from .index_elements import expression_text

EQUALITY_OPS = {"="}
RANGE_OPS = {"<", "<=", ">", ">="}
LIKE_OPS = {"~~", "~~*", "!~~", "!~~*"}  # LIKE, ILIKE, NOT LIKE, NOT ILIKE


class UnparsableStatement(ValueError):
    """pglast could not parse the text, or it is not exactly one statement."""


@dataclass(frozen=True)
class TableRef:
    schema: str | None
    name: str
    alias: str | None

    @property
    def key(self) -> str:
        return self.alias or self.name


@dataclass(frozen=True)
class ColumnUse:
    """A column of a table reference, as a statement uses it: plainly, inside an
    expression an index could hold (`lower(email) = $1`), or as a LIKE prefix."""

    table: TableRef | None  # None: unqualified and several tables in FROM
    column: str  # the (first) column read
    expression: str | None = None  # the expression as an index element, qualifiers dropped
    prefix: bool = False  # `LIKE 'abc%'`: served by a pattern operator class


@dataclass(frozen=True)
class Unindexable:
    """A filter no b-tree index can serve, with the one-line reason an operator reads."""

    use: ColumnUse
    reason: str


@dataclass(frozen=True)
class Derived:
    """A CTE or a subquery in FROM: not a table, its output columns stand for columns
    of the tables inside it (a plain column each; an expression maps to nothing)."""

    outputs: tuple[tuple[str, ColumnUse | None], ...]

    def column(self, name: str) -> ColumnUse | None:
        return dict(self.outputs).get(name)


Scope = dict[str, "TableRef | Derived"]


@dataclass
class Shape:
    """What the index advisor needs to know about one statement."""

    kind: str  # select, insert, update, delete, ddl, utility
    parameters: int
    tables: list[TableRef] = field(default_factory=list)
    equality: list[ColumnUse] = field(default_factory=list)
    ranges: list[ColumnUse] = field(default_factory=list)
    joins: list[ColumnUse] = field(default_factory=list)
    join_pairs: list[tuple[ColumnUse, ColumnUse]] = field(default_factory=list)  # a = b
    order_by: list[tuple[ColumnUse, bool]] = field(default_factory=list)  # (column, descending)
    unindexable: list[Unindexable] = field(default_factory=list)
    any_of: list[tuple[ColumnUse, ...]] = field(default_factory=list)  # OR across columns
    read_only: bool = False  # a plain SELECT: no locking clause, INTO, or writing CTE
    outputs: dict[str, ColumnUse | None] = field(default_factory=dict)  # a SELECT's columns
    set_columns: list[str] = field(default_factory=list)  # the columns an UPDATE sets

    @property
    def explainable(self) -> bool:
        return self.kind in ("select", "insert", "update", "delete")


def parse_one(text: str) -> ast.Node:
    """The single statement in `text`; UnparsableStatement otherwise."""
    try:
        raw = pglast.parse_sql(text)
    except pglast.parser.ParseError as exc:
        raise UnparsableStatement(f"PostgreSQL's parser rejects it: {exc}") from None
    if len(raw) != 1:
        raise UnparsableStatement(f"expected one statement, found {len(raw)}")
    return raw[0].stmt


def fingerprint(text: str) -> str:
    """The statement's fingerprint (pg_query's, as pglast computes it): the same for
    its normalized pg_stat_statements text (`$1`) and a running text with values.
    UnparsableStatement for text the parser rejects (a truncated query, say)."""
    try:
        return pglast.parser.fingerprint(text)
    except pglast.parser.ParseError as exc:
        raise UnparsableStatement(f"PostgreSQL's parser rejects it: {exc}") from None


class _ParamCounter(Visitor):
    def __init__(self):
        self.highest = 0

    def visit_ParamRef(self, ancestors, node):
        self.highest = max(self.highest, node.number)


class _WriteFinder(Visitor):
    """Finds anything in a SELECT that can write or lock."""

    def __init__(self):
        self.writes = False

    def visit(self, ancestors, node):
        if isinstance(node, ast.InsertStmt | ast.UpdateStmt | ast.DeleteStmt | ast.MergeStmt):
            self.writes = True
        if isinstance(node, ast.SelectStmt) and (node.lockingClause or node.intoClause):
            self.writes = True


def _kind(stmt: ast.Node) -> str:
    names = {
        ast.SelectStmt: "select",
        ast.InsertStmt: "insert",
        ast.UpdateStmt: "update",
        ast.DeleteStmt: "delete",
    }
    for cls, name in names.items():
        if isinstance(stmt, cls):
            return name
    ddl = (ast.CreateStmt, ast.AlterTableStmt, ast.DropStmt, ast.IndexStmt, ast.TruncateStmt)
    return "ddl" if isinstance(stmt, ddl) else "utility"


SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema", "pg_toast"})


def is_housekeeping(text: str) -> bool:
    """Not the product's workload: DDL and utility statements, bulk loads (`INSERT …
    SELECT`), and reads of the system catalogs only (the console's own and monitoring
    tools' statements). The Queries list hides these unless asked."""
    try:
        stmt = parse_one(text)
    except UnparsableStatement:
        return False
    if isinstance(stmt, ast.InsertStmt):
        return isinstance(stmt.selectStmt, ast.SelectStmt) and stmt.selectStmt.valuesLists is None
    if _kind(stmt) in ("ddl", "utility"):
        return True
    tables = _RangeVars()
    tables(stmt)
    return bool(tables.found) and all(_is_system(table) for table in tables.found)


def _is_system(table: ast.RangeVar) -> bool:
    if table.schemaname:
        return table.schemaname in SYSTEM_SCHEMAS
    return table.relname.startswith("pg_")  # an unqualified pg_* name resolves to pg_catalog


class _RangeVars(Visitor):
    def __init__(self):
        self.found: list[ast.RangeVar] = []

    def visit_RangeVar(self, ancestors, node):
        self.found.append(node)


def shape_of(text: str) -> Shape:
    """Parse `text` and describe it; raises UnparsableStatement."""
    stmt = parse_one(text)
    counter = _ParamCounter()
    counter(stmt)
    shape = Shape(kind=_kind(stmt), parameters=counter.highest)
    if shape.kind == "select":
        finder = _WriteFinder()
        finder(stmt)
        shape.read_only = not finder.writes
    if isinstance(stmt, ast.SelectStmt):
        shape.outputs = _select(stmt, shape, {}, {}, top=True)
    elif isinstance(stmt, ast.UpdateStmt | ast.DeleteStmt):
        table = _table(stmt.relation)
        shape.tables.append(table)
        _where(stmt.whereClause, {table.key: table}, shape, {})
        if isinstance(stmt, ast.UpdateStmt):
            shape.set_columns = [t.name for t in stmt.targetList or () if t.name]
    return shape


def _table(node: ast.RangeVar) -> TableRef:
    alias = node.alias.aliasname if node.alias else None
    return TableRef(schema=node.schemaname, name=node.relname, alias=alias)


def _from_items(items: Iterable, scope: Scope, joins: list, shape: Shape, ctes: dict) -> None:
    for item in items or ():
        if isinstance(item, ast.RangeVar):
            if item.schemaname is None and item.relname in ctes:
                # A CTE read by name: its columns stand for its body's columns.
                alias = item.alias.aliasname if item.alias else item.relname
                scope[alias] = ctes[item.relname]
                continue
            ref = _table(item)
            scope[ref.key] = ref
            shape.tables.append(ref)
        elif isinstance(item, ast.RangeSubselect) and isinstance(item.subquery, ast.SelectStmt):
            inner = _select(item.subquery, shape, ctes, {} if not item.lateral else scope)
            if item.alias is not None:
                scope[item.alias.aliasname] = Derived(tuple(inner.items()))
        elif isinstance(item, ast.JoinExpr):
            _from_items([item.larg, item.rarg], scope, joins, shape, ctes)
            if item.quals is not None:
                joins.append(item.quals)


def _with(stmt: ast.SelectStmt, shape: Shape, ctes: dict) -> dict:
    """Read each CTE's body (plain, MATERIALIZED or NOT: its WHERE and joins count the
    same) and name its output columns for the statement that reads it."""
    ctes = dict(ctes)
    for cte in stmt.withClause.ctes if stmt.withClause else ():
        if isinstance(cte.ctequery, ast.SelectStmt):
            outputs = _select(cte.ctequery, shape, ctes, {})
            names = [c.sval for c in cte.aliascolnames or ()]
            pairs = list(outputs.items())
            if names:  # WITH x(a, b) AS (...): the listed names win, in order
                pairs = [(n, use) for n, (_, use) in zip(names, pairs, strict=False)]
            ctes[cte.ctename] = Derived(tuple(pairs))
    return ctes


def _select(
    stmt: ast.SelectStmt, shape: Shape, ctes: dict, outer: Scope, *, top: bool = False
) -> dict:
    """Record what `stmt` filters, joins and (at the top) sorts on into `shape`; return
    its output columns (name -> the column it is, or None for an expression)."""
    ctes = _with(stmt, shape, ctes)
    if stmt.op != enums.SetOperation.SETOP_NONE:
        left = _select(stmt.larg, shape, ctes, outer)
        _select(stmt.rarg, shape, ctes, outer)
        return left
    scope: Scope = {}
    join_quals: list = []
    _from_items(stmt.fromClause, scope, join_quals, shape, ctes)
    visible = {**outer, **scope}
    for quals in join_quals:
        _where(quals, visible, shape, ctes)
    _where(stmt.whereClause, visible, shape, ctes)
    for target in stmt.targetList or ():  # scalar subqueries in the select list
        if isinstance(target, ast.ResTarget):
            _subquery(target.val, visible, shape, ctes)
    outputs = _outputs(stmt, visible)
    if top:  # only the statement's own ORDER BY is an order an index can give
        _order_by(stmt, visible, shape)
    return outputs


def _outputs(stmt: ast.SelectStmt, scope: Scope) -> dict[str, ColumnUse | None]:
    outputs: dict[str, ColumnUse | None] = {}
    for target in stmt.targetList or ():
        if not isinstance(target, ast.ResTarget):
            continue
        column = _column(target.val, scope)
        name = target.name or _last_name(target.val)
        if name is not None:
            outputs.setdefault(name, column)
    return outputs


def _last_name(node) -> str | None:
    if isinstance(node, ast.ColumnRef) and isinstance(node.fields[-1], ast.String):
        return node.fields[-1].sval
    return None


def _order_by(stmt: ast.SelectStmt, scope: Scope, shape: Shape) -> None:
    """ORDER BY columns, also by position (ORDER BY 1) and by output alias."""
    targets = [t for t in stmt.targetList or () if isinstance(t, ast.ResTarget)]
    order: list[tuple[ColumnUse, bool]] = []
    for sort in stmt.sortClause or ():
        node = sort.node
        if isinstance(node, ast.A_Const) and isinstance(node.val, ast.Integer):
            position = node.val.ival
            node = targets[position - 1].val if 0 < position <= len(targets) else None
        elif _is_output_alias(node, targets):
            node = next(t.val for t in targets if t.name == node.fields[0].sval)
        column = _column(node, scope)
        if column is None:
            break  # an expression: an index on plain columns cannot give this order
        order.append((column, sort.sortby_dir == enums.SortByDir.SORTBY_DESC))
    shape.order_by = order


def _is_output_alias(node, targets: list) -> bool:
    """A bare name in ORDER BY is an output column's name first (as PostgreSQL reads it)."""
    if not isinstance(node, ast.ColumnRef) or len(node.fields) != 1:
        return False
    name = node.fields[0]
    return isinstance(name, ast.String) and any(t.name == name.sval for t in targets)


def _column(node, scope: Scope) -> ColumnUse | None:
    if isinstance(node, ast.TypeCast):
        return _column(node.arg, scope)
    if not isinstance(node, ast.ColumnRef):
        return None
    names = [f.sval for f in node.fields if isinstance(f, ast.String)]
    if len(names) != len(node.fields):
        return None  # a star
    if len(names) == 1:
        return _unqualified(names[0], scope)
    qualifier, column = names[-2], names[-1]
    found = scope.get(qualifier)
    if isinstance(found, Derived):
        return found.column(column)
    return ColumnUse(found, column)


def _unqualified(column: str, scope: Scope) -> ColumnUse | None:
    derived = [d for d in scope.values() if isinstance(d, Derived)]
    for item in derived:
        if column in dict(item.outputs):
            return item.column(column)
    tables = [t for t in scope.values() if isinstance(t, TableRef)]
    only = tables[0] if len(tables) == 1 and not derived else None
    return ColumnUse(only, column)


def _is_value(node) -> bool:
    """A constant or parameter, possibly cast or computed without a column or subquery
    (`lower($1)`, `$1::date + 7`): something known before the scan, an index can look up."""
    if isinstance(node, ast.TypeCast):
        return _is_value(node.arg)
    if isinstance(node, ast.FuncCall | ast.A_Expr):
        subqueries = _Finder(ast.SubLink)
        subqueries(node)
        return not _column_refs(node) and not subqueries.found
    return isinstance(node, ast.A_Const | ast.ParamRef)


def _conjuncts(node) -> list:
    if isinstance(node, ast.BoolExpr) and node.boolop == enums.BoolExprType.AND_EXPR:
        out = []
        for arg in node.args:
            out.extend(_conjuncts(arg))
        return out
    return [node] if node is not None else []


def _where(node, tables: Scope, shape: Shape, ctes: dict) -> None:
    for conj in _conjuncts(node):
        if isinstance(conj, ast.A_Expr):
            _comparison(conj, tables, shape)
            _subquery(conj.lexpr, tables, shape, ctes)
            _subquery(conj.rexpr, tables, shape, ctes)
        elif isinstance(conj, ast.SubLink) and isinstance(conj.subselect, ast.SelectStmt):
            # EXISTS / IN (SELECT ...): the subquery's own filters, with the outer
            # tables visible for its correlated comparisons.
            _select(conj.subselect, shape, ctes, tables)
            tested = _column(conj.testexpr, tables) if conj.testexpr is not None else None
            if tested is not None:
                shape.joins.append(tested)
        elif isinstance(conj, ast.NullTest):
            column = _column(conj.arg, tables)
            if column is not None and conj.nulltesttype == enums.NullTestType.IS_NULL:
                shape.equality.append(column)
        elif isinstance(conj, ast.BoolExpr) and conj.boolop == enums.BoolExprType.OR_EXPR:
            _or(conj, tables, shape, ctes)


def _subquery(node, tables: Scope, shape: Shape, ctes: dict) -> None:
    """A scalar subquery (`col = (SELECT …)`, `SELECT (SELECT …)`): its own filters count."""
    if isinstance(node, ast.SubLink) and isinstance(node.subselect, ast.SelectStmt):
        _select(node.subselect, shape, ctes, tables)


def _or(node: ast.BoolExpr, tables: Scope, shape: Shape, ctes: dict) -> None:
    """`a = 1 OR a = 2` is a list of equalities on one column (one index serves it). An
    OR across columns needs a BitmapOr, which only an index on every branch gives: it
    is kept in `any_of` (the advisor prices the indexes together, all or nothing), with
    the reason no single index serves it."""
    branches = []
    for arg in node.args:
        branch = Shape(kind=shape.kind, parameters=shape.parameters)
        _where(arg, tables, branch, ctes)
        branches.append(branch)
    firsts = [(b.equality + b.ranges)[:1] for b in branches]
    uses = {use[0] for use in firsts if use}
    if len(uses) == 1 and all(firsts):
        (use,) = uses
        shape.equality.append(use)
        return
    if all(firsts):
        shape.any_of.append(tuple(use[0] for use in firsts))
    columns = sorted({u.column for u in uses})
    if columns:
        reason = (
            f"OR across columns {', '.join(columns)}: a BitmapOr needs an index on every "
            "branch, and no one index serves it"
        )
        shape.unindexable.append(Unindexable(next(iter(uses)), reason))


def _operand(node, scope: Scope) -> ColumnUse | None:
    """A comparison's side as something an index could hold: a column, or a function
    of one table's columns with constant arguments (an expression index)."""
    column = _column(node, scope)
    if column is not None or not isinstance(node, ast.FuncCall):
        return column
    refs = _column_refs(node)
    if not refs or _has_parameter(node):
        return None
    uses = [_column(ref, scope) for ref in refs]
    if any(u is None or u.expression for u in uses) or len({u.table for u in uses}) != 1:
        return None
    if any(u.column != _last_name(ref) for u, ref in zip(uses, refs, strict=True)):
        return None  # read through a CTE or subquery under another name
    text = expression_text(node)
    return ColumnUse(uses[0].table, uses[0].column, expression=text) if text else None


class _Finder(Visitor):
    def __init__(self, kind):
        self.kind, self.found = kind, []

    def visit(self, ancestors, node):
        if isinstance(node, self.kind):
            self.found.append(node)


def _column_refs(node) -> list:
    finder = _Finder(ast.ColumnRef)
    finder(node)
    return finder.found


def _has_parameter(node) -> bool:
    finder = _Finder(ast.ParamRef)
    finder(node)
    return bool(finder.found)


def _like(expr: ast.A_Expr, tables: Scope, shape: Shape) -> None:
    """`col LIKE 'abc%'` is a range on col (with a pattern operator class unless the
    collation is C); anything else a b-tree cannot serve gets its reason."""
    column = _column(expr.lexpr, tables)
    if column is None:
        return
    op = expr.name[-1].sval
    pattern = expr.rexpr.arg if isinstance(expr.rexpr, ast.TypeCast) else expr.rexpr
    constant = isinstance(pattern, ast.A_Const) and isinstance(pattern.val, ast.String)
    literal = pattern.val.sval if constant else None
    if op != "~~":
        reason = f"ILIKE or NOT LIKE on {column.column}: a b-tree cannot serve it"
    elif literal is None:
        reason = (
            f"LIKE with a $n pattern on {column.column}: an index serves only a constant "
            "prefix ('abc%'), and the statement's text does not say which"
        )
    elif not literal or literal[0] in "%_":
        reason = (
            f"leading-wildcard LIKE on {column.column}: a b-tree cannot serve it "
            "(a pg_trgm GIN index could)"
        )
    else:
        shape.ranges.append(ColumnUse(column.table, column.column, prefix=True))
        return
    shape.unindexable.append(Unindexable(column, reason))


def _comparison(expr: ast.A_Expr, tables: Scope, shape: Shape) -> None:
    op = expr.name[-1].sval if expr.name else ""
    kind = expr.kind
    if kind in (enums.A_Expr_Kind.AEXPR_LIKE, enums.A_Expr_Kind.AEXPR_ILIKE) or (
        kind == enums.A_Expr_Kind.AEXPR_OP and op in LIKE_OPS  # as pg_get_viewdef prints it
    ):
        _like(expr, tables, shape)
        return
    left, right = _operand(expr.lexpr, tables), _operand(expr.rexpr, tables)
    if kind == enums.A_Expr_Kind.AEXPR_IN and left is not None:
        shape.equality.append(left)
        return
    if kind in (enums.A_Expr_Kind.AEXPR_BETWEEN,) and left is not None:
        shape.ranges.append(left)
        return
    if kind == enums.A_Expr_Kind.AEXPR_OP_ANY and left is not None and op in EQUALITY_OPS:
        shape.equality.append(left)  # col = ANY($1): a list of equalities
        return
    if kind != enums.A_Expr_Kind.AEXPR_OP:
        return
    if left is not None and right is not None:
        if op in EQUALITY_OPS and not (left.expression or right.expression):
            shape.joins.extend([left, right])
            shape.join_pairs.append((left, right))
        return
    column, other = (left, expr.rexpr) if left is not None else (right, expr.lexpr)
    if column is None:
        _functions_of_columns(expr, tables, shape)
        return
    if not _is_value(other):
        return
    if op in EQUALITY_OPS:
        shape.equality.append(column)
    elif op in RANGE_OPS:
        shape.ranges.append(column)


def _functions_of_columns(expr: ast.A_Expr, tables: Scope, shape: Shape) -> None:
    """A function of a column no expression index could hold (a `$n` argument, say)."""
    for side in (expr.lexpr, expr.rexpr):
        if not isinstance(side, ast.FuncCall):
            continue
        for ref in _column_refs(side):
            if (inner := _column(ref, tables)) is not None:
                why = "with a $n argument" if _has_parameter(side) else "the index cannot hold"
                reason = f"a function of {inner.column} ({why}): a plain index cannot serve it"
                shape.unindexable.append(Unindexable(inner, reason))
