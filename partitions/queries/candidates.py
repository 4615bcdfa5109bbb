"""Candidate indexes for one statement: the relations it reads (views expanded to
their base tables), which columns it filters, joins and sorts on, and the column
lists worth pricing, minus what an existing index already serves and relations that
get no index (system, extension-owned, tiny, excluded). Read-only catalog look-ups,
cached for the whole run."""

from typing import Any

import psycopg

from . import index_elements, parsing, pg, workload

MAX_INDEX_COLUMNS = 3
MAX_VIEW_DEPTH = 8  # views over views: deeper than this is a cycle or a pathology
INDEXABLE_RELKINDS = ("r", "p", "m")


class Catalog:
    """Caches what the advisor reads about tables while it works on many statements."""

    def __init__(
        self,
        conn: psycopg.Connection,
        *,
        min_table_rows: int = 10_000,
        include_tables: tuple[str, ...] = (),
        exclude_tables: tuple[str, ...] = (),
    ):
        self.conn = conn
        self.min_table_rows = min_table_rows
        self.include_tables = set(include_tables)
        self.exclude_tables = set(exclude_tables)
        self._tables: dict[tuple, dict | None] = {}
        self._views: dict[int, parsing.Shape | None] = {}
        self._columns: dict[int, list[str]] = {}
        self._stats: dict[int, dict] = {}
        self._indexes: dict[int, list[dict]] = {}
        self._patterns: dict[tuple[int, str], str | None] = {}

    def table(self, ref: parsing.TableRef) -> dict | None:
        key = (ref.schema, ref.name)
        if key not in self._tables:
            self._tables[key] = workload.relation(self.conn, ref.schema, ref.name)
        return self._tables[key]

    def view_shape(self, table: dict) -> parsing.Shape | None:
        """What a view's own SELECT filters and joins on, and what its columns are."""
        if table["oid"] not in self._views:
            try:
                body = workload.view_definition(self.conn, table["oid"]).rstrip().rstrip(";")
                self._views[table["oid"]] = parsing.shape_of(body)
            except parsing.UnparsableStatement:
                self._views[table["oid"]] = None
        return self._views[table["oid"]]

    def unfit(self, table: dict) -> str | None:
        """Why no index is proposed on this relation (None: it may get one)."""
        if table["is_system"] or table["extension_owned"]:
            return f"{table['schema']}.{table['table']} belongs to the system or an extension"
        names = {table["table"], f"{table['schema']}.{table['table']}"}
        if self.include_tables and not names & self.include_tables:
            return f"{table['schema']}.{table['table']} is not among the included tables"
        if names & self.exclude_tables:
            return f"{table['schema']}.{table['table']} is excluded"
        if table["relkind"] not in INDEXABLE_RELKINDS:
            return f"{table['schema']}.{table['table']} is not a table"
        if table["reltuples"] < self.min_table_rows:
            return (
                f"tiny table: {table['schema']}.{table['table']} has "
                f"{int(table['reltuples'])} rows, read whole anyway"
            )
        return None

    def columns(self, table: dict) -> list[str]:
        if table["oid"] not in self._columns:
            self._columns[table["oid"]] = pg.table_columns(self.conn, table["oid"])
        return self._columns[table["oid"]]

    def stats(self, table: dict) -> dict:
        if table["oid"] not in self._stats:
            self._stats[table["oid"]] = pg.column_stats(self.conn, table["schema"], table["table"])
        return self._stats[table["oid"]]

    def indexes(self, table: dict) -> list[dict]:
        if table["oid"] not in self._indexes:
            self._indexes[table["oid"]] = pg.indexes(self.conn, table_oid=table["oid"])
        return self._indexes[table["oid"]]

    def distinct_values(self, table: dict, column: str) -> float:
        row = self.stats(table).get(column)
        if row is None or row["n_distinct"] is None:
            return 0.0
        n = float(row["n_distinct"])
        return -n * max(table["reltuples"], 1) if n < 0 else n

    def covered(self, table: dict, columns: tuple[str, ...]) -> str | None:
        """The existing valid b-tree index (not partial) that starts with these columns
        (expressions and operator classes compared as pg_get_indexdef prints them)."""
        wanted = [index_elements.canonical(c) for c in columns]
        for index in self.indexes(table):
            usable = index["method"] == "btree" and not index["is_partial"] and index["is_valid"]
            elements = index_elements.of_definition(index["definition"])
            if usable and elements[: len(wanted)] == wanted:
                return index["name"]
        return None

    def pattern_element(self, table: dict, column: str) -> str | None:
        """The index element a `LIKE 'prefix%'` on the column needs: the plain column
        under the C collation, else the column with its type's pattern operator class;
        None for a column of another type."""
        if (table["oid"], column) not in self._patterns:
            opclass = pg.pattern_opclass(self.conn, table["oid"], column)
            self._patterns[(table["oid"], column)] = opclass
        opclass = self._patterns[(table["oid"], column)]
        if opclass is None:
            return None
        if opclass == "":
            return column
        return index_elements.split(f"{_quoted(column)} {opclass}")[0]


def _quoted(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def expand_views(shape: parsing.Shape, catalog: Catalog) -> None:
    """Fold each view's own filters and joins (recursively) into the statement's shape,
    so the base tables under a view are considered too."""
    seen: set[int] = set()
    for depth_ref in shape.tables:  # grows while views are expanded
        table = catalog.table(depth_ref)
        if table is None or table["relkind"] != "v" or table["oid"] in seen:
            continue
        seen.add(table["oid"])
        if len(seen) > MAX_VIEW_DEPTH * 4:
            break
        body = catalog.view_shape(table)
        if body is None:
            continue
        shape.tables.extend(body.tables)
        shape.equality.extend(body.equality)
        shape.ranges.extend(body.ranges)
        shape.joins.extend(body.joins)
        shape.join_pairs.extend(body.join_pairs)
        shape.unindexable.extend(body.unindexable)


def _owner(
    use: parsing.ColumnUse, shape: parsing.Shape, catalog: Catalog, depth: int = 0
) -> tuple[dict, str] | None:
    """The table and column a column use reads (an unqualified column: the one table
    that has it; a view's column: the base column it stands for)."""
    refs = [use.table] if use.table is not None else shape.tables
    owners: dict[tuple[int, str], tuple[dict, str]] = {}
    for ref in refs:
        table = catalog.table(ref)
        if table is None or use.column not in catalog.columns(table):
            continue
        if table["relkind"] == "v":
            body = catalog.view_shape(table) if depth < MAX_VIEW_DEPTH else None
            inner = body.outputs.get(use.column) if body is not None else None
            found = _owner(inner, body, catalog, depth + 1) if inner is not None else None
        else:
            found = (table, use.column)
        if found is not None:
            owners[(found[0]["oid"], found[1])] = found
    return next(iter(owners.values())) if len(owners) == 1 else None


def _element(use: parsing.ColumnUse, owner: tuple[dict, str], catalog: Catalog) -> str | None:
    """The index element that serves this use of the owner's column: the column, the
    expression over it, or the column with a pattern operator class (LIKE 'abc%')."""
    table, column = owner
    if use.expression is not None:
        # read through a view under another name: the expression's text would not match
        return use.expression if column == use.column else None
    if use.prefix:
        return catalog.pattern_element(table, column)
    return column


def candidates(
    shape: parsing.Shape, catalog: Catalog, unfit: list[str] | None = None
) -> list[tuple[dict, tuple[str, ...]]]:
    """Candidate (table, columns) for one statement, not already covered by an index.
    Relations that get no index (system, extension, tiny) and candidates an existing
    index already serves add their reason to `unfit`."""
    per_table: dict[int, dict[str, Any]] = {}
    unfit = [] if unfit is None else unfit

    def slot(table: dict) -> dict[str, Any] | None:
        reason = catalog.unfit(table)
        if reason is not None:
            if reason not in unfit:
                unfit.append(reason)
            return None
        return per_table.setdefault(
            table["oid"],
            {"table": table, "eq": [], "range": [], "join": [], "order": [], "join_keys": {}},
        )

    for kind, uses in (("eq", shape.equality), ("range", shape.ranges), ("join", shape.joins)):
        for use in uses:
            owner = _owner(use, shape, catalog)
            entry = slot(owner[0]) if owner is not None else None
            element = _element(use, owner, catalog) if entry is not None else None
            if element is not None and element not in entry[kind]:
                entry[kind].append(element)
    _join_keys(shape, catalog, per_table)
    ordered = [_owner(use, shape, catalog) for use, _ in shape.order_by]
    order_tables = {o[0]["oid"] for o in ordered if o is not None}
    one_table = ordered and None not in ordered and len(order_tables) == 1
    if one_table and len(ordered) <= MAX_INDEX_COLUMNS and (entry := slot(ordered[0][0])):
        entry["order"] = [column for _, column in ordered]

    found: list[tuple[dict, tuple[str, ...]]] = []
    for entry in per_table.values():
        table = entry["table"]
        eq = sorted(
            entry["eq"],
            key=lambda c: -catalog.distinct_values(table, index_elements.columns_of(c)[0]),
        )
        options = [(c,) for c in eq + entry["range"] + entry["join"]]
        if len(eq) > 1:
            options.append(tuple(eq[:MAX_INDEX_COLUMNS]))
        if eq and entry["range"]:
            options.append(tuple(eq[: MAX_INDEX_COLUMNS - 1]) + (entry["range"][0],))
        for key in entry["join_keys"].values():
            if len(key) > 1:  # a multi-column join key: one lookup on all of it
                by_selectivity = sorted(key, key=lambda c: -catalog.distinct_values(table, c))
                options.append(tuple(by_selectivity[:MAX_INDEX_COLUMNS]))
        if entry["order"]:
            tail = [c for c in entry["order"] if c not in eq]
            options.append(tuple((eq + tail)[:MAX_INDEX_COLUMNS]))
        for columns in dict.fromkeys(options):
            existing = catalog.covered(table, columns) if columns else None
            if existing is not None:
                note = f"already indexed by {table['schema']}.{existing}"
                if note not in unfit:
                    unfit.append(note)
            elif columns:
                found.append((table, columns))
    return found


def _join_keys(shape: parsing.Shape, catalog: Catalog, per_table: dict) -> None:
    """Group each table's join columns by the relation they are joined to: `l.a = p.a
    AND l.b = p.b` is one lookup on (a, b), which one index serves better than either
    column (and whose row estimate the planner gets from both)."""
    for left, right in shape.join_pairs:
        for mine, other in ((left, right), (right, left)):
            owner, other_owner = _owner(mine, shape, catalog), _owner(other, shape, catalog)
            if owner is None or other_owner is None or owner[0]["oid"] not in per_table:
                continue
            if other_owner[0]["oid"] == owner[0]["oid"] and other.table == mine.table:
                continue  # a column compared with another of the same row
            group = (other_owner[0]["oid"], other.table)
            keys = per_table[owner[0]["oid"]]["join_keys"].setdefault(group, [])
            if owner[1] not in keys:
                keys.append(owner[1])


def bundles(
    shape: parsing.Shape, catalog: Catalog, unfit: list[str] | None = None
) -> list[list[tuple[dict, tuple[str, ...]]]]:
    """For each OR across columns, the indexes its BitmapOr needs (one per branch not
    already served by an existing index), to be priced together; a group with a branch
    on a relation that gets no index, or that cannot be resolved, gives nothing."""
    unfit = [] if unfit is None else unfit
    groups = []
    for uses in shape.any_of:
        needed: list[tuple[dict, tuple[str, ...]]] = []
        for use in uses:
            owner = _owner(use, shape, catalog)
            reason = catalog.unfit(owner[0]) if owner is not None else "unresolved"
            element = _element(use, owner, catalog) if reason is None else None
            if element is None:
                if reason not in (None, "unresolved") and reason not in unfit:
                    unfit.append(reason)
                break
            if catalog.covered(owner[0], (element,)) is None:
                needed.append((owner[0], (element,)))
        else:
            unique = {(t["oid"], c): (t, c) for t, c in needed}
            if unique:
                groups.append(list(unique.values()))
    return groups
