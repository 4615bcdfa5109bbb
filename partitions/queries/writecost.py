"""What a new index costs its table's writes, in the planner's cost units so that it
can be set against what the index saves the workload's reads.

Every inserted row adds an entry to the index (cheap: a cached B-tree descent). An
UPDATE that sets an indexed column can no longer be a HOT update: it writes a new
entry in *every* index of the table, not only the new one (pganalyze's Index Advisor
weighs the same). The rows such UPDATEs touched come from pg_stat_statements (the
same period as the reads' gain); the table's write counts from pg_stat_user_tables.
"""

from dataclasses import dataclass

import psycopg
from django.conf import settings

from . import index_elements, parsing, workload

INDEX_ENTRY_COST = 0.01  # per inserted row: like cpu_tuple_cost, a cached descent
HOT_BREAK_COST = 1.0  # per index entry an updated indexed column adds: a page written


@dataclass
class IndexWrites:
    writes_per_s: float  # the table's inserts + updates + deletes per second
    inserts: int
    updates: int
    hot_updates: int
    updated_columns: list[str]  # the index's columns the workload's UPDATEs set
    updated_rows: int  # rows those UPDATEs changed (each one no longer HOT)
    cost: float  # estimated write cost over the workload's period, planner units


class WriteCosts:
    """Reads each table's write statistics once and prices a candidate's writes."""

    def __init__(self, conn: psycopg.Connection, rows: list[dict], entry_cost: float):
        self.conn = conn
        self.entry_cost = entry_cost
        self.hot_break_cost = float(
            getattr(settings, "QUERIES_ADVISOR_HOT_BREAK_COST", HOT_BREAK_COST)
        )
        self._set_rows = self._rows_setting_columns(rows)
        self._stats: dict[int, dict] = {}

    def _rows_setting_columns(self, rows: list[dict]) -> dict[tuple[int, str], int]:
        """(table oid, column) -> rows changed by the workload's UPDATEs setting it."""
        found: dict[tuple[int, str], int] = {}
        for row in rows:
            try:
                shape = parsing.shape_of(row["query"])
            except parsing.UnparsableStatement:
                continue
            if shape.kind != "update" or not shape.tables:
                continue
            target = shape.tables[0]
            table = workload.relation(self.conn, target.schema, target.name)
            if table is None:
                continue
            for column in shape.set_columns:
                key = (table["oid"], column)
                found[key] = found.get(key, 0) + int(row.get("rows") or 0)
        return found

    def for_index(self, table: dict, columns: list[str]) -> IndexWrites:
        stats = self._stats.setdefault(table["oid"], workload.write_stats(self.conn, table["oid"]))
        read = dict.fromkeys(c for e in columns for c in index_elements.columns_of(e))
        updated = [c for c in read if (table["oid"], c) in self._set_rows]
        updated_rows = max((self._set_rows[(table["oid"], c)] for c in updated), default=0)
        hot_share = stats["hot_updates"] / stats["updates"] if stats["updates"] else 1.0
        entries_per_update = 1 + stats["indexes"] * hot_share  # HOT lost: every index
        cost = (
            stats["inserts"] * self.entry_cost
            + updated_rows * entries_per_update * self.hot_break_cost
        )
        writes = stats["inserts"] + stats["updates"] + stats["deletes"]
        return IndexWrites(
            writes_per_s=round(writes / max(stats["seconds"], 1.0), 3),
            inserts=stats["inserts"],
            updates=stats["updates"],
            hot_updates=stats["hot_updates"],
            updated_columns=updated,
            updated_rows=updated_rows,
            cost=round(cost, 2),
        )
