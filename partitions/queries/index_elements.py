"""Index elements beyond a plain column: an expression (`lower(email)`) or a column with
a pattern operator class (`email text_pattern_ops`, what a `LIKE 'prefix%'` needs unless
the column's collation is C), kept as text in CREATE INDEX's own syntax. A plain column
stays its bare name, so existing column lists keep working.

Text that reaches SQL is parsed with pglast and printed again from the tree: an
expression may hold only column references, constants, casts to built-in types and
calls of built-in functions (printed as `pg_catalog.name`, so no user function can be
reached), and only the pattern operator classes are accepted. Nothing typed on a page
can reach beyond the index definition.
"""

import copy

import pglast
from pglast import ast
from pglast.stream import RawStream
from psycopg import sql

PATTERN_OPCLASSES = frozenset({"text_pattern_ops", "varchar_pattern_ops", "bpchar_pattern_ops"})
MAX_ELEMENT_LENGTH = 200


class InvalidIndexElement(ValueError):
    """Text that is not an index element the console builds."""


def _parse_list(text: str) -> list[ast.IndexElem]:
    """The elements of `text` read as the inside of CREATE INDEX … ( … )."""
    try:
        statements = pglast.parse_sql(f"CREATE INDEX ON t ({text})")
    except pglast.parser.ParseError as exc:
        raise InvalidIndexElement(f"not a list of index columns or expressions: {exc}") from None
    stmt = statements[0].stmt if len(statements) == 1 else None
    if not isinstance(stmt, ast.IndexStmt) or stmt.whereClause or stmt.indexIncludingParams:
        raise InvalidIndexElement("give only index columns or expressions, nothing more")
    return list(stmt.indexParams)


def _expression_parts(node, columns: list[str]) -> None:
    """Check an expression holds only what an index expression may (see the module
    docstring), collecting the columns it reads; InvalidIndexElement otherwise."""
    if isinstance(node, ast.ColumnRef):
        names = [f.sval for f in node.fields if isinstance(f, ast.String)]
        if len(names) != len(node.fields):
            raise InvalidIndexElement("a star is not an index expression")
        columns.append(names[-1])
    elif isinstance(node, ast.A_Const):
        pass
    elif isinstance(node, ast.TypeCast):
        type_names = [n.sval for n in node.typeName.names]
        if len(type_names) > 1 and type_names[0] != "pg_catalog":
            raise InvalidIndexElement("only casts to built-in types are allowed")
        _expression_parts(node.arg, columns)
    elif isinstance(node, ast.FuncCall):
        plain_call = not (node.agg_star or node.agg_distinct or node.over or node.agg_filter)
        names = [n.sval for n in node.funcname]
        if not plain_call or node.agg_order or (len(names) > 1 and names[0] != "pg_catalog"):
            raise InvalidIndexElement("only calls of built-in functions are allowed")
        for arg in node.args or ():
            _expression_parts(arg, columns)
    else:
        raise InvalidIndexElement(
            "an index expression may hold only columns, constants, casts and function calls"
        )


def _is_special(elem: ast.IndexElem) -> bool:
    return elem.expr is not None or bool(elem.opclass)


def _check(elem: ast.IndexElem) -> list[str]:
    """The columns the element reads, once it is checked."""
    if elem.collation or elem.opclassopts or elem.ordering or elem.nulls_ordering:
        raise InvalidIndexElement("collations, orderings and options are not built here")
    if elem.opclass:
        opclass = [n.sval for n in elem.opclass]
        if opclass[-1] not in PATTERN_OPCLASSES or elem.expr is not None:
            raise InvalidIndexElement(
                f"operator class {'.'.join(opclass)} is not one the advisor builds"
            )
    if elem.expr is None:
        return [elem.name]
    columns: list[str] = []
    _expression_parts(elem.expr, columns)
    if not columns:
        raise InvalidIndexElement("an index expression must read a column")
    return columns


def _special(element: str) -> ast.IndexElem | None:
    """The parsed element when `element` is an expression or a column with an operator
    class written as the advisor prints it; None for a plain column name."""
    if "(" not in element and " " not in element:
        return None
    try:
        parsed = _parse_list(element)
    except InvalidIndexElement:
        return None  # a column name pglast cannot read unquoted: a plain column
    if len(parsed) != 1 or not _is_special(parsed[0]):
        return None
    try:
        _check(parsed[0])
    except InvalidIndexElement:
        return None  # not one the advisor builds: only ever a quoted column name
    return parsed[0]


def _printed(elem: ast.IndexElem) -> str:
    if elem.expr is not None:
        return RawStream()(elem.expr)
    return f"{RawStream()(ast.ColumnRef(fields=(ast.String(elem.name),)))} {elem.opclass[-1].sval}"


def split(text: str) -> list[str]:
    """A typed list of index elements ("lower(email), created_at") as element texts; a
    list pglast cannot read is split on commas as plain column names (names with
    spaces or capitals). Raises InvalidIndexElement for a disallowed expression."""
    try:
        parsed = _parse_list(text)
        for elem in parsed:
            _check(elem)
    except InvalidIndexElement:
        if "(" in text:
            raise
        return [part.strip() for part in text.split(",") if part.strip()]
    return [_printed(elem) if _is_special(elem) else elem.name for elem in parsed]


def columns_of(element: str) -> list[str]:
    """The table columns an element reads."""
    elem = _special(element)
    return [element] if elem is None else _check(elem)


def is_plain(element: str) -> bool:
    return _special(element) is None


def is_expression(element: str) -> bool:
    elem = _special(element)
    return elem is not None and elem.expr is not None


def _qualified(node):
    """A copy of the expression with function and type names in pg_catalog."""
    node = copy.deepcopy(node)
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, ast.FuncCall) and len(item.funcname) == 1:
            item.funcname = (ast.String("pg_catalog"), item.funcname[0])
        if isinstance(item, ast.TypeCast) and len(item.typeName.names) == 1:
            item.typeName.names = (ast.String("pg_catalog"), item.typeName.names[0])
        if isinstance(item, ast.FuncCall):
            stack.extend(item.args or ())
        elif isinstance(item, ast.TypeCast):
            stack.append(item.arg)
    return node


def element_sql(element: str) -> sql.Composable:
    """The element as it goes into CREATE INDEX: a quoted column, a column with its
    pattern operator class, or a checked expression in parentheses."""
    elem = _special(element)
    if elem is None:
        return sql.Identifier(element)
    if elem.expr is not None:
        return sql.SQL("({})").format(sql.SQL(RawStream()(_qualified(elem.expr))))
    return sql.SQL("{} {}").format(sql.Identifier(elem.name), sql.SQL(elem.opclass[-1].sval))


def elements_sql(elements) -> sql.Composable:
    return sql.SQL(", ").join(element_sql(e) for e in elements)


def name_part(element: str) -> str:
    """The element's share of an index name: `lower_email`, `email_pattern`, `email`."""
    elem = _special(element)
    if elem is None:
        return element
    columns = _check(elem)
    if elem.expr is None:
        return f"{elem.name}_pattern"
    function = elem.expr.funcname[-1].sval if isinstance(elem.expr, ast.FuncCall) else "expr"
    return "_".join([function, *dict.fromkeys(columns)])


def expression_text(node) -> str | None:
    """A statement's expression as an index element (column qualifiers dropped), or None
    when it is not one an index could hold."""
    node = copy.deepcopy(node)
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, ast.ColumnRef):
            item.fields = item.fields[-1:]
        elif isinstance(item, ast.FuncCall):
            stack.extend(item.args or ())
        elif isinstance(item, ast.TypeCast):
            stack.append(item.arg)
    try:
        _expression_parts(node, [])
    except InvalidIndexElement:
        return None
    return RawStream()(node)


def _without_constant_casts(node):
    """`'day'::text` as `'day'`: pg_get_indexdef adds casts a statement's text lacks."""
    if isinstance(node, ast.TypeCast) and isinstance(node.arg, ast.A_Const):
        return node.arg
    if isinstance(node, ast.FuncCall):
        node.args = tuple(_without_constant_casts(a) for a in node.args or ())
    return node


def of_definition(definition: str) -> list[str]:
    """An existing index's elements (from pg_get_indexdef) as element texts, to tell
    whether it already serves a candidate."""
    try:
        stmt = pglast.parse_sql(definition)[0].stmt
    except pglast.parser.ParseError:
        return []
    out = []
    for elem in stmt.indexParams or ():
        if elem.expr is not None:
            out.append(RawStream()(_without_constant_casts(elem.expr)))
        elif elem.opclass:
            out.append(_printed(elem))
        else:
            out.append(elem.name)
    return out


def canonical(element: str) -> str:
    """The element as of_definition prints it, for comparing the two."""
    elem = _special(element)
    if elem is None or elem.expr is None:
        return element
    return RawStream()(_without_constant_casts(copy.deepcopy(elem.expr)))
