"""Plans that would read a table at random more than once over.

A nested loop that looks up a scattered column (one whose values are spread over the
whole table: pg_stats correlation near 0) once per outer row fetches a heap page at
random for each row it finds. When those fetches add up to more than the table's pages,
the plan reads the table several times over, at random, where a sequential scan reads it
once in order. The planner prices it cheaper all the same, trusting effective_cache_size
to keep the pages cached: on a table larger than shared_buffers it is routinely wrong
(TPC-H Q7 and Q21 with `lineitem(l_suppkey)`: 57 % cheaper by the estimate, 1.8 to 3.7
times slower in fact). The advisor does not take such a gain: an index has to pay off
without rereading its table at random.
"""

import psycopg

SCATTERED_BELOW = 0.5  # |correlation| under this: the table is not in the column's order
INDEX_SCANS = {"Index Scan"}  # an Index Only Scan reads the heap only for unvacuumed pages


def hypothetical(index_name: str) -> bool:
    """hypopg names its indexes `<oid>btree_table_columns`."""
    return index_name.startswith("<")


def random_fetches(node: dict, loops: float = 1.0) -> list[tuple[str, str, float]]:
    """(relation, index, rows fetched over all loops) for every index scan in the plan.
    The inner side of a nested loop runs once per outer row, and below a Gather each
    process runs its part (a plan's rows there are per process). A correlated subplan
    counts once: it looks up the same few keys again and again, from cached pages."""
    found = []
    if node.get("Node Type") in INDEX_SCANS:
        found.append((node["Relation Name"], node["Index Name"], node["Plan Rows"] * loops))
    children = node.get("Plans", [])
    if node.get("Node Type") in ("Gather", "Gather Merge"):
        loops *= node.get("Workers Planned", 0) + 1
    if node.get("Node Type") == "Nested Loop" and len(children) == 2:
        outer, inner = children
        found += random_fetches(outer, loops)
        found += random_fetches(inner, loops * max(outer["Plan Rows"], 1))
        return found
    for child in children:
        found += random_fetches(child, loops)
    return found


def rereads_table(conn: psycopg.Connection, plan: dict, indexes: list) -> bool:
    """Whether the plan looks up one of the hypothetical `indexes` ((table, columns)
    pairs) on a scattered column so often that it fetches more rows than its table
    has pages."""
    tables = {table["table"]: (table, columns) for table, columns in indexes}
    for relation, index, rows in random_fetches(plan["Plan"]):
        if not hypothetical(index) or relation not in tables:
            continue
        table, columns = tables[relation]
        if rows > max(table["relpages"], 1) and _scattered(conn, table, columns[0]):
            return True
    return False


def _scattered(conn: psycopg.Connection, table: dict, column: str) -> bool:
    row = conn.execute(
        """
        SELECT correlation FROM pg_stats
        WHERE schemaname = %s AND tablename = %s AND attname = %s
        ORDER BY inherited DESC LIMIT 1
        """,
        [table["schema"], table["table"], column],
    ).fetchone()
    correlation = row["correlation"] if row is not None else None
    return correlation is None or abs(correlation) < SCATTERED_BELOW
