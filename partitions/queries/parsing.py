"""Understanding a statement with pglast (the PostgreSQL parser): what kind it is,
how many `$n` parameters it has, and which columns of which tables it filters,
joins and sorts on. No regular expressions: everything comes from the parse tree."""

from collections.abc import Iterable
from dataclasses import dataclass, field

import pglast
from pglast import ast, enums
from pglast.visitors import Visitor

EQUALITY_OPS = {"="}
RANGE_OPS = {"<", "<=", ">", ">="}


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
    """A column of a table reference, as a statement uses it."""

    table: TableRef | None  # None: unqualified and several tables in FROM
    column: str


@dataclass
class Shape:
    """What the index advisor needs to know about one statement."""

    kind: str  # select, insert, update, delete, ddl, utility
    parameters: int
    tables: list[TableRef] = field(default_factory=list)
    equality: list[ColumnUse] = field(default_factory=list)
    ranges: list[ColumnUse] = field(default_factory=list)
    joins: list[ColumnUse] = field(default_factory=list)
    order_by: list[tuple[ColumnUse, bool]] = field(default_factory=list)  # (column, descending)
    unindexable: list[ColumnUse] = field(default_factory=list)  # LIKE, functions of a column
    read_only: bool = False  # a plain SELECT: no locking clause, INTO, or writing CTE

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
        _select(stmt, shape)
    elif isinstance(stmt, ast.UpdateStmt | ast.DeleteStmt):
        table = _table(stmt.relation)
        shape.tables.append(table)
        _where(stmt.whereClause, {table.key: table}, shape)
    return shape


def _table(node: ast.RangeVar) -> TableRef:
    alias = node.alias.aliasname if node.alias else None
    return TableRef(schema=node.schemaname, name=node.relname, alias=alias)


def _from_items(items: Iterable, tables: dict[str, TableRef], joins: list) -> None:
    for item in items or ():
        if isinstance(item, ast.RangeVar):
            ref = _table(item)
            tables[ref.key] = ref
        elif isinstance(item, ast.JoinExpr):
            _from_items([item.larg, item.rarg], tables, joins)
            if item.quals is not None:
                joins.append(item.quals)


def _select(stmt: ast.SelectStmt, shape: Shape) -> None:
    if stmt.op != enums.SetOperation.SETOP_NONE:
        for side in (stmt.larg, stmt.rarg):
            _select(side, shape)
        return
    tables: dict[str, TableRef] = {}
    join_quals: list = []
    _from_items(stmt.fromClause, tables, join_quals)
    shape.tables.extend(tables.values())
    for quals in join_quals:
        _where(quals, tables, shape)
    _where(stmt.whereClause, tables, shape)
    for sort in stmt.sortClause or ():
        column = _column(sort.node, tables)
        if column is None:
            break  # an expression: an index on plain columns cannot give this order
        descending = sort.sortby_dir == enums.SortByDir.SORTBY_DESC
        shape.order_by.append((column, descending))


def _column(node, tables: dict[str, TableRef]) -> ColumnUse | None:
    if not isinstance(node, ast.ColumnRef):
        return None
    names = [f.sval for f in node.fields if isinstance(f, ast.String)]
    if len(names) != len(node.fields):
        return None  # a star
    if len(names) == 1:
        only = next(iter(tables.values())) if len(tables) == 1 else None
        return ColumnUse(only, names[0])
    qualifier, column = names[-2], names[-1]
    return ColumnUse(tables.get(qualifier), column)


def _is_value(node) -> bool:
    """A constant or parameter (possibly cast): something an index can look up."""
    if isinstance(node, ast.TypeCast):
        return _is_value(node.arg)
    return isinstance(node, ast.A_Const | ast.ParamRef)


def _conjuncts(node) -> list:
    if isinstance(node, ast.BoolExpr) and node.boolop == enums.BoolExprType.AND_EXPR:
        out = []
        for arg in node.args:
            out.extend(_conjuncts(arg))
        return out
    return [node] if node is not None else []


def _where(node, tables: dict[str, TableRef], shape: Shape) -> None:
    for conj in _conjuncts(node):
        if isinstance(conj, ast.A_Expr):
            _comparison(conj, tables, shape)
        elif isinstance(conj, ast.NullTest):
            column = _column(conj.arg, tables)
            if column is not None and conj.nulltesttype == enums.NullTestType.IS_NULL:
                shape.equality.append(column)


def _comparison(expr: ast.A_Expr, tables: dict[str, TableRef], shape: Shape) -> None:
    op = expr.name[-1].sval if expr.name else ""
    kind = expr.kind
    left, right = _column(expr.lexpr, tables), _column(expr.rexpr, tables)
    if kind in (enums.A_Expr_Kind.AEXPR_LIKE, enums.A_Expr_Kind.AEXPR_ILIKE):
        if left is not None:
            shape.unindexable.append(left)  # default b-tree opclasses cannot serve LIKE
        return
    if kind == enums.A_Expr_Kind.AEXPR_IN and left is not None:
        shape.equality.append(left)
        return
    if kind in (enums.A_Expr_Kind.AEXPR_BETWEEN,) and left is not None:
        shape.ranges.append(left)
        return
    if kind != enums.A_Expr_Kind.AEXPR_OP:
        return
    if left is not None and right is not None:
        if op in EQUALITY_OPS:
            shape.joins.extend([left, right])
        return
    column, other = (left, expr.rexpr) if left is not None else (right, expr.lexpr)
    if column is None:
        for side in (expr.lexpr, expr.rexpr):
            if isinstance(side, ast.FuncCall):
                for arg in side.args or ():
                    if (inner := _column(arg, tables)) is not None:
                        shape.unindexable.append(inner)
        return
    if not _is_value(other):
        return
    if op in EQUALITY_OPS:
        shape.equality.append(column)
    elif op in RANGE_OPS:
        shape.ranges.append(column)
