"""Index suggestions for the workload of a PostgreSQL warehouse.

Statements are chosen by weight, not by a mean-time threshold: ranked by total time
(calls x mean), the heaviest that together make the configured share (95%) of the
time of the statements an index could serve, at most a bounded count. A plan whose
cost is already under the cost floor (like Dexter's 100) is left alone, and nothing
is proposed on system or extension-owned relations or on tiny ones.

For each chosen statement: parse it with pglast (views expanded to their base
tables, CTEs and subqueries read), collect candidate indexes from its equality and
range predicates, join columns and ORDER BY (column order by selectivity from
pg_stats), and price each candidate with a hypopg hypothetical index (EXPLAIN cost
before/after, generic plans for `$n` statements). Statements that never finish come from
pg_stat_activity samples (longrunning.py); a range between two parameters is priced at a
realistic width (windows.py), and a plan that would reread a table at random through the
new index is no gain (scatter.py). A candidate is kept when it cuts
the statement's cost by at least the configured margin and no existing index
already covers it; candidates are then merged across statements.
Read-only: hypothetical indexes live in the advisor's own session and are reset.
"""

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from django.conf import settings

from partitions.warehouses import ExtensionMissing
from partitions.warehouses.postgres import open_warehouse, require_extension

from . import (
    index_elements,
    longrunning,
    parsing,
    pg,
    pg_partitioned,
    scatter,
    selection,
    windows,
    workload,
    writecost,
)
from .candidates import Catalog, bundles, candidates, expand_views

MAX_RESELECTIONS = 4  # choose again without the not-worth-it ones, at most this often
HEURISTIC_MIN_ROWS = 10_000


def min_cost_cut() -> float:
    return float(getattr(settings, "QUERIES_MIN_COST_CUT", 0.5))


@dataclass
class Options:
    """What the advisor looks at. Defaults come from settings (QUERIES_ADVISOR_*)."""

    workload_share: float = 0.95  # statements making this share of the workload's time
    max_statements: int = 100
    min_calls: int = 1
    min_mean_ms: float = 0.0
    min_cost: float = 100.0  # plans cheaper than this are already fine (Dexter's floor)
    min_table_rows: int = 10_000  # a table smaller than this is read whole anyway
    margin: float = 0.5  # the cost cut an index must give a statement
    containing: str | None = None
    max_indexes: int = 10  # the budget: indexes in all,
    max_per_table: int = 3  # on one table,
    max_total_mb: float | None = None  # and their total estimated size
    index_write_cost: float = writecost.INDEX_ENTRY_COST
    include_tables: tuple[str, ...] = ()  # "table" or "schema.table"; empty: all
    exclude_tables: tuple[str, ...] = ()

    def budget(self) -> selection.Budget:
        total = None if self.max_total_mb is None else int(self.max_total_mb * 1024 * 1024)
        return selection.Budget(self.max_indexes, self.max_per_table, total)

    @classmethod
    def from_settings(cls, **overrides: Any) -> "Options":
        prefix = "QUERIES_ADVISOR_"
        values = {
            name: getattr(settings, prefix + name.upper(), default)
            for name, default in asdict(cls()).items()
        }
        values["margin"] = min_cost_cut()
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class Helped:
    queryid: int
    query: str
    cost_before: float
    cost_after: float | None
    calls: int = 0
    mean_ms: float = 0.0
    seen_running: bool = False  # weighed by samples of its runs (some never finished)


@dataclass
class Suggestion:
    schema: str
    table: str
    columns: list[str]
    name: str
    helps: list[Helped] = field(default_factory=list)
    size_bytes: int | None = None
    method: str = "hypopg"  # or "heuristic" when hypopg is missing
    relkind: str = "r"  # "p": a partitioned table, built ON ONLY + per partition
    writes: writecost.IndexWrites | None = None
    together_with: list[str] = field(default_factory=list)  # an OR's BitmapOr needs these too

    @property
    def saved(self) -> float:
        """Planner cost saved over the statements' calls (the gain the budget weighs)."""
        return sum(
            max(h.calls, 1) * (h.cost_before - (h.cost_after or h.cost_before)) for h in self.helps
        )

    @property
    def worth_it(self) -> bool:
        return self.writes is None or self.saved >= self.writes.cost

    @property
    def partitioned(self) -> bool:
        return self.relkind == "p"

    @property
    def create_statement(self) -> str:
        cols = index_elements.elements_sql(self.columns).as_string(None)
        target = f"{_quote(self.schema)}.{_quote(self.table)}"
        if self.partitioned:
            # CONCURRENTLY is refused on a partitioned table: the apply job builds
            # each partition's index concurrently and attaches it to this one.
            return (
                f"CREATE INDEX {_quote(self.name)} ON ONLY {target} ({cols}); "
                "-- then per partition: CREATE INDEX CONCURRENTLY …; "
                f"ALTER INDEX {_quote(self.schema)}.{_quote(self.name)} ATTACH PARTITION …"
            )
        return f"CREATE INDEX CONCURRENTLY {_quote(self.name)} ON {target} ({cols})"

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
        data["saved"] = round(self.saved, 2)
        data["worth_it"] = self.worth_it
        data["partitioned"] = self.partitioned
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
    why_not: list[Skipped] = field(default_factory=list)  # chosen, but no suggestion
    analysed: int = 0
    hypopg: bool = True
    notes: list[str] = field(default_factory=list)
    workload_ms: float = 0.0  # total time of the statements an index could serve
    not_worth_it: list[Suggestion] = field(default_factory=list)  # gain < write cost
    saved_share: float = 0.0  # of the analysed statements' cost (calls x plan cost)
    chosen_ms: float = 0.0  # of which the chosen statements

    @property
    def chosen_share(self) -> float:
        return self.chosen_ms / self.workload_ms if self.workload_ms else 0.0

    @property
    def chosen_percent(self) -> float:
        return 100 * self.chosen_share

    def as_dict(self) -> dict[str, Any]:
        return {
            "warehouse": self.warehouse,
            "method": "hypopg" if self.hypopg else "heuristic",
            "hypopg": self.hypopg,
            "analysed": self.analysed,
            "chosen_percent": round(self.chosen_percent, 1),
            "workload_ms": round(self.workload_ms, 3),
            "chosen_share": round(self.chosen_share, 4),
            "saved_share": round(self.saved_share, 4),
            "not_worth_it": [s.as_dict() for s in self.not_worth_it],
            "why_not": [asdict(w) for w in self.why_not],
            "notes": self.notes,
            "suggestions": [s.as_dict() for s in self.suggestions],
            "skipped": [asdict(s) for s in self.skipped],
        }


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def index_name(table: str, columns: list[str]) -> str:
    """PostgreSQL's own naming style (an expression named by its function, a pattern
    operator class as `_pattern`), shortened with a hash to fit 63 bytes."""
    name = f"{table}_{'_'.join(index_elements.name_part(c) for c in columns)}_idx"
    if len(name.encode()) <= 63:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name.encode()[:50].decode(errors='ignore')}_{digest}_idx"


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


def _hypothetical(conn, table: dict, columns: Sequence[str]) -> int:
    """Hypothetical index on the table; on a partitioned table, on each leaf partition
    too (the planner reads partitions' indexes, hypopg knows no index inheritance).
    Returns the estimated size in bytes."""
    size = pg.hypothetical_index(conn, table["schema"], table["table"], columns)["size_bytes"]
    if table.get("relkind") == "p":
        for child in pg_partitioned.partitions(conn, table["schema"], table["table"]):
            if child["is_leaf"]:
                hypo = pg.hypothetical_index(conn, child["schema"], child["table"], columns)
                size += hypo["size_bytes"]
    return size


def _price(conn, text: str, parameters: int, table: dict, columns: tuple[str, ...]) -> tuple:
    cost, sizes = _price_together(conn, text, parameters, [(table, columns)])
    return cost, sizes[0]


def _price_together(conn, text: str, parameters: int, indexes: list) -> tuple[float, list]:
    """The statement's cost with these hypothetical indexes all present (infinite when
    the plan would reread a table at random through them), and each one's estimated
    size."""
    try:
        sizes = [_hypothetical(conn, table, columns) for table, columns in indexes]
        plan = plan_of(conn, text, parameters)
        if scatter.rereads_table(conn, plan, indexes):
            return math.inf, sizes  # a gain the planner would be wrong about (scatter.py)
        return float(plan["Plan"]["Total Cost"]), sizes
    finally:
        pg.drop_hypothetical_indexes(conn)


def _price_wider(conn, priced: list, texts: dict, tables: dict, sizes: dict, margin) -> None:
    """Price each statement with the wider candidates its own candidates lead (a
    composite can serve a statement that filters on its first column only), so the
    selection can merge prefixes into one index serving many."""
    for statement in priced:
        text, parameters = texts[statement.queryid]["priced"]
        for wide in list(sizes):
            if selection.is_bundle(wide) or wide in statement.cost_with:
                continue
            led = any(
                not selection.is_bundle(key)
                and key[:2] == wide[:2]
                and len(key[2]) < len(wide[2])
                and wide[2][: len(key[2])] == key[2]
                for key in statement.cost_with
            )
            if not led:
                continue
            try:
                cost, _ = _price(conn, text, parameters, tables[wide], wide[2])
            except psycopg.Error:
                continue
            if cost < statement.cost_before:
                statement.cost_with[wide] = cost


def choose_statements(
    rows: list[dict], options: Options, advice: Advice
) -> list[tuple[dict, parsing.Shape]]:
    """The statements worth analysing: of those an index could serve (SELECT, UPDATE,
    DELETE), heaviest total time first, until they make `workload_share` of their time
    (at most `max_statements`). Unparsable and DDL/utility ones are listed as skipped."""
    servable: list[tuple[dict, parsing.Shape]] = []
    for row in rows:
        try:
            shape = parsing.shape_of(row["query"])
        except parsing.UnparsableStatement as exc:
            advice.skipped.append(Skipped(row["queryid"], row["query"], f"unparsable: {exc}"))
            continue
        if shape.kind in ("select", "update", "delete"):
            servable.append((row, shape))
    servable.sort(key=lambda pair: -pair[0]["total_ms"])
    advice.workload_ms = sum(row["total_ms"] for row, _ in servable)
    chosen: list[tuple[dict, parsing.Shape]] = []
    for row, shape in servable:
        if len(chosen) >= options.max_statements:
            break
        if chosen and advice.chosen_ms >= options.workload_share * advice.workload_ms:
            break
        chosen.append((row, shape))
        advice.chosen_ms += row["total_ms"]
    return chosen


def suggest_indexes(warehouse: str, **overrides: Any) -> Advice:
    """Suggest indexes for the heaviest statements of warehouse `warehouse` (see the
    module docstring; `overrides` are Options fields). Changes nothing: hypothetical
    indexes exist only in this session and are reset after each use."""
    options = Options.from_settings(**overrides)
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
        rows = workload.statements_by_weight(
            conn,
            min_calls=options.min_calls,
            min_mean_ms=options.min_mean_ms,
            containing=options.containing,
        )
        rows = longrunning.with_unfinished(rows, _unfinished(conn, warehouse, options))
        catalog = Catalog(
            conn,
            min_table_rows=options.min_table_rows,
            include_tables=options.include_tables,
            exclude_tables=options.exclude_tables,
        )
        chosen = choose_statements(rows, options, advice)
        if advice.hypopg:
            _advise_workload(conn, catalog, chosen, rows, advice, options)
        else:
            _advise_heuristically(conn, catalog, chosen, advice, options)
    return advice


def _unfinished(conn, warehouse: str, options: Options) -> list[dict]:
    """The sampled statements that never finished since pg_stat_statements' last reset,
    under the same filters as its rows."""
    since = workload.statements_reset_at(conn)
    return [
        s
        for s in longrunning.statements(warehouse, since)
        if s["calls"] >= options.min_calls
        and s["mean_ms"] >= options.min_mean_ms
        and (options.containing is None or options.containing in s["query"])
    ]


def _advise_workload(conn, catalog: Catalog, chosen: list, rows: list, advice, options) -> None:
    """Price every chosen statement's candidates, then choose one set of indexes for
    the workload under the budget; candidates whose write cost outweighs their gain
    are marked not worth it and the set is chosen again without them."""
    priced: list[selection.Priced] = []
    texts: dict[int, dict] = {}  # the statements priced, by queryid
    tables: dict[selection.Key, dict] = {}
    sizes: dict = {}  # per candidate (an index, or a bundle: their sum)
    index_sizes: dict[selection.Key, int] = {}
    blind: set[int] = set()  # statements with an expression candidate hypopg cannot price
    for row, shape in chosen:
        found = _price_statement(conn, catalog, row, shape, advice, options)
        if found is None:
            continue
        before, options_priced = found
        if _expression_hypopg_cannot_see(shape, catalog, options_priced):
            blind.add(row["queryid"])
        texts[row["queryid"]] = row
        statement = selection.Priced(row["queryid"], max(row["calls"], 1), before)
        for indexes, cost, each_size in options_priced:
            keys = tuple((t["schema"], t["table"], columns) for t, columns in indexes)
            tables.update(zip(keys, (t for t, _ in indexes), strict=True))
            index_sizes.update(zip(keys, each_size, strict=True))
            key = keys if len(keys) > 1 else keys[0]
            sizes[key] = sum(each_size)
            if cost < before:
                statement.cost_with[key] = cost
        priced.append(statement)
    _price_wider(conn, priced, texts, tables, sizes, options.margin)
    writes = writecost.WriteCosts(conn, rows, options.index_write_cost)
    by_id = {p.queryid: p for p in priced}
    excluded: set = set()
    for _ in range(MAX_RESELECTIONS):
        picked = selection.choose(priced, sizes, options.budget(), options.margin, excluded)
        built = [
            (c.key, _suggestions(c, tables, index_sizes, texts, by_id, writes)) for c in picked
        ]
        costly = [(key, made) for key, made in built if not _worth_building(made)]
        if not costly:
            break
        advice.not_worth_it.extend(s for _, made in costly for s in made)
        excluded |= {key for key, _ in costly}
    suggestions = [s for _, made in built for s in made]
    advice.suggestions = sorted(suggestions, key=lambda s: -s.saved)
    workload_cost = sum(p.calls * p.cost_before for p in priced)
    saved = sum(made[0].saved for _, made in built)  # a bundle's members share one saving
    advice.saved_share = saved / workload_cost if priced else 0
    _explain_unserved(priced, texts, advice, excluded, options, blind)


def _worth_building(made: list[Suggestion]) -> bool:
    """An index (or a bundle, all together) saves at least what its writes cost."""
    if any(s.writes is None for s in made):
        return True
    return made[0].saved >= sum(s.writes.cost for s in made)


def _suggestions(
    chosen, tables: dict, index_sizes: dict, texts: dict, by_id: dict, writes
) -> list[Suggestion]:
    """One suggestion per index of the chosen candidate (a bundle: each names the others
    it is only worth building with), each listing the statements the candidate serves."""
    keys = selection.members(chosen.key)
    names = [index_name(name, list(columns)) for _, name, columns in keys]
    made = []
    for (schema, name, columns), own_name in zip(keys, names, strict=True):
        table = tables[(schema, name, columns)]
        suggestion = Suggestion(
            schema=schema,
            table=name,
            columns=list(columns),
            name=own_name,
            size_bytes=index_sizes[(schema, name, columns)],
            relkind=table["relkind"],
            together_with=[n for n in names if n != own_name],
        )
        for queryid, cost in chosen.serves.items():
            row = texts[queryid]
            before = by_id[queryid].cost_before
            suggestion.helps.append(
                Helped(
                    queryid,
                    row["query"],
                    before,
                    cost,
                    row["calls"],
                    row["mean_ms"],
                    seen_running=row.get("seen_running", False),
                )
            )
        suggestion.writes = writes.for_index(table, list(columns))
        made.append(suggestion)
    return made


def _expression_hypopg_cannot_see(shape, catalog: Catalog, options_priced: list) -> bool:
    """Whether an expression candidate is on a relation other than the statement's first
    one: hypopg matches a hypothetical expression index only there (it keeps the
    expression numbered for the first relation), so its price says nothing."""
    first = catalog.table(shape.tables[0]) if shape.tables else None
    for indexes, _, _ in options_priced:
        for table, columns in indexes:
            expression = any(index_elements.is_expression(c) for c in columns)
            if expression and (first is None or table["oid"] != first["oid"]):
                return True
    return False


def _explain_unserved(
    priced: list, texts: dict, advice, excluded: set, options, blind: set[int]
) -> None:
    """A "why not" line for each priced statement no chosen index serves."""
    served = {h.queryid for s in advice.suggestions for h in s.helps}
    for statement in priced:
        if statement.queryid in served:
            continue
        row = texts[statement.queryid]
        halving = [
            key
            for key, cost in statement.cost_with.items()
            if cost <= statement.cost_before * (1 - options.margin)
        ]
        if halving and all(key in excluded for key in halving):
            reason = "not worth it: the index's write cost outweighs what it saves"
        elif halving:
            reason = "left out by the budget (max indexes, per table or total size)"
        else:
            reason = (
                "the planner prefers its current plan at this selectivity: no candidate "
                f"cuts cost {statement.cost_before:.1f} by {options.margin:.0%}"
            )
            if statement.queryid in blind:
                reason += (
                    "; an expression index on a table after the statement's first (or under "
                    "a view) cannot be priced by hypopg: try it with EXPLAIN once built"
                )
        advice.why_not.append(Skipped(statement.queryid, row["query"], reason))


def _price_statement(
    conn, catalog: Catalog, row: dict, shape: parsing.Shape, advice: Advice, options: Options
) -> tuple[float, list[tuple]] | None:
    """The statement's cost and each candidate's (table, columns, cost with it, size),
    or None (recording why not)."""
    candidates_found = _candidates_or_why_not(conn, catalog, row, shape, advice, options)
    if candidates_found is None:
        return None
    before, options_found, groups = candidates_found
    text, parameters = row["priced"]
    priced = []
    for indexes in [[option] for option in options_found] + groups:
        try:
            cost, size = _price_together(conn, text, parameters, indexes)
        except psycopg.Error:
            continue  # e.g. a column type with no b-tree operator class: not a candidate
        priced.append((indexes, cost, size))
    return before, priced


def _candidates_or_why_not(conn, catalog, row, shape, advice, options) -> tuple | None:
    """(cost before, candidates) of a statement worth pricing; None with a why-not."""
    queryid, text = row["queryid"], row["query"]

    def why_not(reason: str) -> None:
        advice.why_not.append(Skipped(queryid, text, reason))

    advice.analysed += 1
    expand_views(shape, catalog)
    unfit: list[str] = []
    options_found = candidates(shape, catalog, unfit)
    groups = bundles(shape, catalog, unfit)
    options_found += [g[0] for g in groups if len(g) == 1 and g[0] not in options_found]
    groups = [g for g in groups if len(g) > 1]
    if not options_found and not groups:
        why_not(_nothing_to_index(shape, unfit))
        return None
    try:
        row["priced"] = windows.priced_text(conn, text, shape, catalog)
        before = plan_cost(conn, *row["priced"])
    except psycopg.Error as exc:
        advice.skipped.append(Skipped(queryid, text, f"EXPLAIN failed: {_first_line(exc)}"))
        return None
    if before < options.min_cost:
        why_not(f"plan already cheap: cost {before:.1f} is under the floor {options.min_cost:g}")
        return None
    return before, options_found, groups


def _advise_heuristically(conn, catalog: Catalog, chosen: list, advice, options) -> None:
    """Without hypopg: one suggestion per statement from the plan's sequential scans."""
    found: dict[tuple, Suggestion] = {}
    for row, shape in chosen:
        candidates_found = _candidates_or_why_not(conn, catalog, row, shape, advice, options)
        if candidates_found is None:
            continue
        before, options_found, _ = candidates_found  # OR bundles need hypopg's pricing
        scanned = _seq_scanned(plan_of(conn, *row["priced"])["Plan"])
        outcome = _heuristic(catalog, row, shape, options_found, before, scanned)
        if outcome is None:
            continue
        table, columns, helped, _, _ = outcome
        key = (table["schema"], table["table"], columns)
        suggestion = found.setdefault(
            key,
            Suggestion(
                schema=table["schema"],
                table=table["table"],
                columns=list(columns),
                name=index_name(table["table"], list(columns)),
                method="heuristic",
                relkind=table["relkind"],
            ),
        )
        suggestion.helps.append(helped)
    advice.suggestions = list(found.values())


def _nothing_to_index(shape: parsing.Shape, unfit: list[str]) -> str:
    """The one-line reason a statement has no candidate index at all."""
    if unfit:
        return unfit[0]
    if shape.unindexable:
        return shape.unindexable[0].reason
    if shape.equality or shape.ranges or shape.joins or shape.order_by:
        return "already indexed: an existing index starts with the filtered columns"
    return "no filter, join or order an index could serve"


def _heuristic(catalog: Catalog, row: dict, shape, options, before: float, scanned: set):
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
