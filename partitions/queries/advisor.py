"""Index suggestions for the slow statements of a PostgreSQL warehouse.

For each slow statement: parse it with pglast, collect candidate indexes from its
equality and range predicates, join columns and ORDER BY (column order by
selectivity from pg_stats), and price each candidate with a hypopg hypothetical
index (EXPLAIN cost before/after, generic plans for `$n` statements). A candidate
is kept when it cuts the statement's cost by at least the configured margin and no
existing index already covers it; candidates are then merged across statements.
Read-only: hypothetical indexes live in the advisor's own session and are reset.
"""

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from django.conf import settings

from partitions.warehouses import ExtensionMissing
from partitions.warehouses.postgres import open_warehouse, require_extension

from . import parsing, pg

MAX_INDEX_COLUMNS = 3
NARROWER_WITHIN = 0.02  # prefer fewer columns when the cost is this close to the best
HEURISTIC_MIN_ROWS = 10_000


def min_cost_cut() -> float:
    return float(getattr(settings, "QUERIES_MIN_COST_CUT", 0.5))


@dataclass
class Helped:
    queryid: int
    query: str
    cost_before: float
    cost_after: float | None
    calls: int = 0
    mean_ms: float = 0.0


@dataclass
class Suggestion:
    schema: str
    table: str
    columns: list[str]
    name: str
    helps: list[Helped] = field(default_factory=list)
    size_bytes: int | None = None
    method: str = "hypopg"  # or "heuristic" when hypopg is missing

    @property
    def create_statement(self) -> str:
        cols = ", ".join(_quote(c) for c in self.columns)
        return (
            f"CREATE INDEX CONCURRENTLY {_quote(self.name)} "
            f"ON {_quote(self.schema)}.{_quote(self.table)} ({cols})"
        )

    @property
    def cost_before(self) -> float:
        return sum(h.cost_before for h in self.helps)

    @property
    def cost_after(self) -> float | None:
        if any(h.cost_after is None for h in self.helps):
            return None
        return sum(h.cost_after for h in self.helps)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["statement_ids"] = [h.queryid for h in self.helps]
        data["cost_before"] = round(self.cost_before, 2)
        after = self.cost_after
        data["cost_after"] = round(after, 2) if after is not None else None
        data["create_statement"] = self.create_statement
        return data


@dataclass
class Skipped:
    queryid: int
    query: str
    reason: str


@dataclass
class Advice:
    warehouse: str
    suggestions: list[Suggestion] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    analysed: int = 0
    hypopg: bool = True
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "warehouse": self.warehouse,
            "method": "hypopg" if self.hypopg else "heuristic",
            "analysed": self.analysed,
            "notes": self.notes,
            "suggestions": [s.as_dict() for s in self.suggestions],
            "skipped": [asdict(s) for s in self.skipped],
        }


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def index_name(table: str, columns: list[str]) -> str:
    """PostgreSQL's own naming style, shortened with a hash to fit 63 bytes."""
    name = f"{table}_{'_'.join(columns)}_idx"
    if len(name.encode()) <= 63:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name.encode()[:50].decode(errors='ignore')}_{digest}_idx"


# --- the catalog view of one statement ----------------------------------------


class _Catalog:
    """Caches what the advisor reads about tables while it works on many statements."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn
        self._tables: dict[tuple, dict | None] = {}
        self._columns: dict[int, list[str]] = {}
        self._stats: dict[int, dict] = {}
        self._indexes: dict[int, list[dict]] = {}

    def table(self, ref: parsing.TableRef) -> dict | None:
        key = (ref.schema, ref.name)
        if key not in self._tables:
            self._tables[key] = pg.resolve_table(self.conn, ref.schema, ref.name)
        return self._tables[key]

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

    def covered(self, table: dict, columns: tuple[str, ...]) -> bool:
        """An existing valid plain b-tree index starts with these columns."""
        for index in self.indexes(table):
            plain = index["method"] == "btree" and not index["is_partial"]
            usable = plain and index["is_valid"] and not index["has_expressions"]
            if usable and tuple(index["columns"][: len(columns)]) == columns:
                return True
        return False


def _owner(use: parsing.ColumnUse, shape: parsing.Shape, catalog: _Catalog) -> dict | None:
    """The table a column belongs to (an unqualified column: the one table that has it)."""
    refs = [use.table] if use.table is not None else shape.tables
    owners = []
    for ref in refs:
        table = catalog.table(ref)
        if table is not None and use.column in catalog.columns(table):
            owners.append(table)
    return owners[0] if len(owners) == 1 else None


def candidates(shape: parsing.Shape, catalog: _Catalog) -> list[tuple[dict, tuple[str, ...]]]:
    """Candidate (table, columns) for one statement, not already covered by an index."""
    per_table: dict[int, dict[str, Any]] = {}

    def slot(table: dict) -> dict[str, Any]:
        return per_table.setdefault(
            table["oid"], {"table": table, "eq": [], "range": [], "join": [], "order": []}
        )

    for kind, uses in (("eq", shape.equality), ("range", shape.ranges), ("join", shape.joins)):
        for use in uses:
            table = _owner(use, shape, catalog)
            if table is not None and use.column not in slot(table)[kind]:
                slot(table)[kind].append(use.column)
    order_tables = {
        t["oid"] for use, _ in shape.order_by if (t := _owner(use, shape, catalog)) is not None
    }
    if len(order_tables) == 1 and len(shape.order_by) <= MAX_INDEX_COLUMNS:
        table = _owner(shape.order_by[0][0], shape, catalog)
        slot(table)["order"] = [use.column for use, _ in shape.order_by]

    found: list[tuple[dict, tuple[str, ...]]] = []
    for entry in per_table.values():
        table = entry["table"]
        eq = sorted(entry["eq"], key=lambda c: -catalog.distinct_values(table, c))
        options = [(c,) for c in eq + entry["range"] + entry["join"]]
        if len(eq) > 1:
            options.append(tuple(eq[:MAX_INDEX_COLUMNS]))
        if eq and entry["range"]:
            options.append(tuple(eq[: MAX_INDEX_COLUMNS - 1]) + (entry["range"][0],))
        if entry["order"]:
            tail = [c for c in entry["order"] if c not in eq]
            options.append(tuple((eq + tail)[:MAX_INDEX_COLUMNS]))
        for columns in dict.fromkeys(options):
            if columns and not catalog.covered(table, columns):
                found.append((table, columns))
    return found


# --- pricing with EXPLAIN -----------------------------------------------------


def plan_of(conn: psycopg.Connection, text: str, parameters: int) -> dict:
    """The statement's EXPLAIN (FORMAT JSON); `$n` statements get a generic plan."""
    if parameters:
        return pg.explain_prepared(conn, text, values=[None] * parameters, generic=True)
    return pg.explain_plain(conn, text)


def plan_cost(conn: psycopg.Connection, text: str, parameters: int) -> float:
    return float(plan_of(conn, text, parameters)["Plan"]["Total Cost"])


def _seq_scanned(node: dict) -> set[str]:
    """Tables the plan reads with a sequential scan."""
    found = {node["Relation Name"]} if node.get("Node Type") == "Seq Scan" else set()
    for child in node.get("Plans", []):
        found |= _seq_scanned(child)
    return found


def _price(conn, text: str, parameters: int, table: dict, columns: tuple[str, ...]) -> tuple:
    hypo = pg.hypothetical_index(conn, table["schema"], table["table"], columns)
    try:
        return plan_cost(conn, text, parameters), hypo["size_bytes"]
    finally:
        pg.drop_hypothetical_indexes(conn)


def _best(priced: list[tuple], cost_before: float, margin: float) -> tuple | None:
    """The candidate with the lowest cost, or a narrower one that is nearly as good."""
    good = [p for p in priced if p[2] <= cost_before * (1 - margin)]
    if not good:
        return None
    lowest = min(p[2] for p in good)
    close = [p for p in good if p[2] <= lowest * (1 + NARROWER_WITHIN) + 0.01]
    return min(close, key=lambda p: (len(p[1]), p[2]))


def _merge_prefixes(conn, found: dict, texts: dict, margin: float) -> None:
    """Fold a suggestion into a wider one on the same table when the wider index still
    gives each of its statements the required cut (one index serving many)."""
    for key in sorted(found, key=lambda k: len(k[2])):
        schema, table, columns = key
        wider = [
            k
            for k in found
            if k[:2] == (schema, table)
            and len(k[2]) > len(columns)
            and k[2][: len(columns)] == columns
        ]
        if not wider or key not in found:
            continue
        target = found[wider[0]]
        table_row = {"schema": schema, "table": table}
        repriced = []
        for helped in found[key].helps:
            text, params = texts[helped.queryid]
            try:
                cost, _ = _price(conn, text, params, table_row, target.columns)
            except psycopg.Error:
                break
            if cost > helped.cost_before * (1 - margin):
                break
            repriced.append(Helped(**{**asdict(helped), "cost_after": cost}))
        else:
            target.helps.extend(repriced)
            del found[key]


def suggest_indexes(
    warehouse: str,
    *,
    min_mean_ms: float | None = None,
    containing: str | None = None,
    limit: int = 200,
    margin: float | None = None,
) -> Advice:
    """Suggest indexes for warehouse `warehouse`'s slow statements. Changes nothing:
    hypothetical indexes exist only in this session and are reset after each use."""
    margin = min_cost_cut() if margin is None else margin
    min_mean_ms = settings.SLOW_QUERY_MS if min_mean_ms is None else min_mean_ms
    advice = Advice(warehouse=warehouse)
    # Its own session: hypopg's hypothetical indexes live in it until it closes.
    with open_warehouse(warehouse, own_session=True) as conn:
        require_extension(conn, "pg_stat_statements", warehouse)
        try:
            require_extension(conn, "hypopg", warehouse)
        except ExtensionMissing as exc:
            advice.hypopg = False
            advice.notes.append(
                f"{exc} Until then, suggestions come from EXPLAIN-only heuristics "
                "(sequential scans of big tables filtered on a selective column) "
                "and carry no cost after."
            )
        rows = pg.statements(conn, min_mean_ms=min_mean_ms, containing=containing, limit=limit)
        catalog = _Catalog(conn)
        found: dict[tuple, Suggestion] = {}
        texts: dict[int, tuple[str, int]] = {}
        for row in rows:
            outcome = _advise_statement(conn, catalog, row, advice, margin)
            if outcome is None:
                continue
            table, columns, helped, size, parameters = outcome
            texts[row["queryid"]] = (row["query"], parameters)
            key = (table["schema"], table["table"], columns)
            if key not in found:
                found[key] = Suggestion(
                    schema=table["schema"],
                    table=table["table"],
                    columns=list(columns),
                    name=index_name(table["table"], list(columns)),
                    size_bytes=size,
                    method="hypopg" if advice.hypopg else "heuristic",
                )
            found[key].helps.append(helped)
        if advice.hypopg:
            _merge_prefixes(conn, found, texts, margin)
    advice.suggestions = sorted(
        found.values(), key=lambda s: -(s.cost_before - (s.cost_after or 0))
    )
    return advice


def _advise_statement(conn, catalog: _Catalog, row: dict, advice: Advice, margin: float):
    """The best candidate for one statement, or None (recording why it was skipped)."""
    queryid, text = row["queryid"], row["query"]
    try:
        shape = parsing.shape_of(text)
    except parsing.UnparsableStatement as exc:
        advice.skipped.append(Skipped(queryid, text, f"unparsable: {exc}"))
        return None
    if shape.kind in ("ddl", "utility"):
        advice.skipped.append(Skipped(queryid, text, f"{shape.kind} statement: nothing to index"))
        return None
    if shape.kind == "insert":
        return None
    advice.analysed += 1
    options = candidates(shape, catalog)
    if not options:
        return None
    try:
        before = plan_cost(conn, text, shape.parameters)
    except psycopg.Error as exc:
        advice.skipped.append(Skipped(queryid, text, f"EXPLAIN failed: {_first_line(exc)}"))
        return None
    if not advice.hypopg:
        scanned = _seq_scanned(plan_of(conn, text, shape.parameters)["Plan"])
        return _heuristic(catalog, row, shape, options, before, scanned)
    priced = []
    for table, columns in options:
        try:
            cost, size = _price(conn, text, shape.parameters, table, columns)
        except psycopg.Error:
            continue  # e.g. a column type with no b-tree operator class: not a candidate
        priced.append((table, columns, cost, size))
    best = _best(priced, before, margin)
    if best is None:
        return None
    table, columns, cost, size = best
    helped = Helped(queryid, text, before, cost, row["calls"], row["mean_ms"])
    return table, columns, helped, size, shape.parameters


def _heuristic(catalog: _Catalog, row: dict, shape, options, before: float, scanned: set):
    """Without hypopg: a selective equality column of a big table the plan scans
    sequentially. No cost after (it cannot be measured without building the index)."""
    for table, columns in options:
        big = table["reltuples"] >= HEURISTIC_MIN_ROWS and table["table"] in scanned
        distinct = catalog.distinct_values(table, columns[0])
        if big and distinct >= 100 and len(columns) == 1:
            helped = Helped(
                row["queryid"], row["query"], before, None, row["calls"], row["mean_ms"]
            )
            return table, columns, helped, None, shape.parameters
    return None


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
