"""TPC-H for the index advisor benchmark (bench/index_advisor.py --workload tpch).

DuckDB's tpch extension (the file inside the duckdb-extension-tpch wheel, loaded from
there) generates the data and the 22 queries offline. The data is loaded into its own
PostgreSQL database with primary keys only; the workload is the 22 queries run a few
rounds with their dates shifted each round (pglast rewrites the date constants).
"""

import random
import statistics
import threading
import time
from pathlib import Path

import duckdb
import duckdb_extension_tpch
import psycopg
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from pglast import ast
from pglast.stream import RawStream
from pglast.visitors import Visitor
from psycopg import sql

from partitions.queries import advisor, longrunning, parsing, pg
from partitions.queries.models import LongExecution

DB = "opsconsole_bench_tpch"
ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
URL = f"postgres://postgres@127.0.0.1:5432/{DB}"
PRIMARY_KEYS = {
    "region": ["r_regionkey"],
    "nation": ["n_nationkey"],
    "part": ["p_partkey"],
    "supplier": ["s_suppkey"],
    "partsupp": ["ps_partkey", "ps_suppkey"],
    "customer": ["c_custkey"],
    "orders": ["o_orderkey"],
    "lineitem": ["l_orderkey", "l_linenumber"],
}
TYPES = {"BIGINT": "bigint", "INTEGER": "integer", "DATE": "date", "VARCHAR": "text"}
TARGET_RUNTIME_CUT = 0.30
TARGET_MAX_INDEXES = 10
TARGET_WORST_SLOWDOWN = 1.10
TARGET_ANALYSIS_S = 30.0


def extension_file() -> str:
    """tpch.duckdb_extension as shipped inside the duckdb-extension-tpch wheel."""
    root = Path(duckdb_extension_tpch.__file__).parent / "extensions"
    return str(next(root.glob("*/tpch.duckdb_extension")))


def generate(sf: float) -> tuple[duckdb.DuckDBPyConnection, list[tuple[int, str]]]:
    con = duckdb.connect()
    con.execute(f"LOAD '{extension_file()}'")  # a path we found, not operator input
    con.execute("CALL dbgen(sf = ?)", [sf])
    queries = con.execute("SELECT query_nr, query FROM tpch_queries() ORDER BY 1").fetchall()
    return con, [(n, q.strip().rstrip(";")) for n, q in queries]


def _pg_type(duck_type: str) -> str:
    if duck_type.startswith("DECIMAL"):
        return "numeric" + duck_type[len("DECIMAL") :]
    return TYPES.get(duck_type, "text")


def load(con: duckdb.DuckDBPyConnection, conn: psycopg.Connection) -> None:
    """Each TPC-H table created with its primary key only, rows copied in as CSV."""
    for table, key in PRIMARY_KEYS.items():
        columns = con.execute(f"DESCRIBE {table}").fetchall()  # a fixed TPC-H name
        conn.execute(
            sql.SQL("CREATE TABLE {} ({}, PRIMARY KEY ({}))").format(
                sql.Identifier(table),
                sql.SQL(", ").join(
                    sql.SQL("{} {} NOT NULL").format(sql.Identifier(c[0]), sql.SQL(_pg_type(c[1])))
                    for c in columns
                ),
                sql.SQL(", ").join(map(sql.Identifier, key)),
            )
        )
        csv_path = f"/tmp/{DB}_{table}.csv"
        con.execute(f"COPY {table} TO '{csv_path}' (HEADER false)")
        copy = sql.SQL("COPY {} FROM STDIN (FORMAT csv)").format(sql.Identifier(table))
        with open(csv_path, "rb") as source, conn.cursor().copy(copy) as sink:
            while chunk := source.read(1 << 20):
                sink.write(chunk)
        Path(csv_path).unlink()
        # Settled before anything is timed: without VACUUM, autovacuum's pass over the
        # freshly loaded tables (and hint bits) lands in whichever phase it happens to.
        conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))


class _ShiftDates(Visitor):
    """CAST('YYYY-MM-DD' AS date) constants moved by the same number of days."""

    def __init__(self, days: int):
        self.days = days

    def visit_TypeCast(self, ancestors, node):
        names = [n.sval for n in node.typeName.names]
        value = node.arg
        is_text = isinstance(value, ast.A_Const) and isinstance(value.val, ast.String)
        if names[-1] == "date" and is_text:
            shifted = _shift(value.val.sval, self.days)
            return ast.TypeCast(
                arg=ast.A_Const(val=ast.String(sval=shifted)), typeName=node.typeName
            )
        return None


def _shift(day: str, days: int) -> str:
    from_date = time.strptime(day, "%Y-%m-%d")
    seconds = time.mktime(from_date) + days * 86400 + 43200  # noon: no DST edge
    return time.strftime("%Y-%m-%d", time.localtime(seconds))


def varied(query: str, days: int) -> str:
    statement = parsing.parse_one(query)
    _ShiftDates(days)(statement)
    return RawStream()(statement)


def run_workload(conn, queries, rounds: int, timeout_s: float, seed: int) -> dict[int, float]:
    """Seconds per query number over all rounds (a timed-out run counts as the timeout)."""
    rng = random.Random(seed)
    conn.execute("SELECT set_config('statement_timeout', %s, false)", [f"{int(timeout_s)}s"])
    spent: dict[int, float] = {n: 0.0 for n, _ in queries}
    for _ in range(rounds):
        shift = rng.randint(-60, 60)
        for number, query in queries:
            text = varied(query, shift)
            started = time.perf_counter()
            try:
                conn.execute(text).fetchall()
                spent[number] += time.perf_counter() - started
            except psycopg.errors.QueryCanceled:
                spent[number] += timeout_s
                # not in pg_stat_statements (finished statements only): the console's
                # sampler saw it running
                print(f"  Q{number} timed out after {timeout_s:g} s")
    return spent


class Sampler(threading.Thread):
    """The console's beat task as it runs in production: every QUERIES_LONG_SAMPLE_S it
    records the statements running longer than QUERIES_LONG_RUNNING_MS, so the advisor
    sees the queries that time out (pg_stat_statements never does)."""

    def __init__(self, warehouse: str):
        super().__init__(daemon=True)
        self.warehouse, self.stop = warehouse, threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.wait(settings.QUERIES_LONG_SAMPLE_S):
                longrunning.sample(self.warehouse)
        finally:
            connection.close()

    def __enter__(self) -> "Sampler":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.join()


def _database(create: bool) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB)))
        if create:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB)))


def run(args) -> None:
    settings.WAREHOUSES = {**settings.WAREHOUSES, "tpch": URL}
    call_command("migrate", verbosity=0)  # the console's own tables (sampled statements)
    LongExecution.objects.filter(warehouse="tpch").delete()
    _database(create=True)
    try:
        started = time.perf_counter()
        con, queries = generate(args.sf)
        with psycopg.connect(URL, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
            conn.execute("CREATE EXTENSION hypopg")
            load(con, conn)
            took = time.perf_counter() - started
            print(f"TPC-H sf={args.sf:g}: generated and loaded in {took:.1f} s")
            conn.execute("SELECT pg_stat_statements_reset()")
            # Both phases start from a clean checkpoint: the load's (and later the index
            # builds') dirty pages are written now, not by the checkpointer during a phase.
            conn.execute("CHECKPOINT")
            with Sampler("tpch"):
                run_workload(conn, queries, 1, args.timeout_s, seed=0)  # warm the cache
                before = run_workload(conn, queries, args.rounds, args.timeout_s, seed=1)
            started = time.perf_counter()
            advice = advisor.suggest_indexes("tpch")  # the defaults
            analysis_s = time.perf_counter() - started
            size = _build(conn, advice)
            conn.execute("CHECKPOINT")
            run_workload(conn, queries, 1, args.timeout_s, seed=0)  # the same warm-up
            after = run_workload(conn, queries, args.rounds, args.timeout_s, seed=1)
            used = new_indexes_in_plans(conn, queries, advice)
        report(advice, analysis_s, size, before, after, used)
    finally:
        if not args.keep:
            _database(create=False)


def _build(conn, advice) -> int:
    """Create the chosen indexes for real; their total size in bytes."""
    total = 0
    for s in advice.suggestions:
        conn.execute(pg.index_statement(s.schema, s.table, s.columns, name=s.name))
        total += conn.execute(
            "SELECT pg_relation_size(to_regclass(%s))",
            [sql.Identifier(s.schema, s.name).as_string(conn)],
        ).fetchone()[0]
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(s.schema, s.table)))
    return total


def new_indexes_in_plans(conn, queries, advice) -> dict[int, list[str]]:
    """Per query, the chosen indexes its plan now uses: a query that got slower without
    using one changed only by timing noise (the machine, the cache), not by the advisor."""
    names = {s.name for s in advice.suggestions}
    used: dict[int, list[str]] = {}
    for number, query in queries:
        plan = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + sql.SQL(query)).fetchone()[0]
        used[number] = sorted(names & set(_index_names(plan[0]["Plan"])))
    return used


def _index_names(node: dict) -> list[str]:
    found = [node["Index Name"]] if "Index Name" in node else []
    for child in node.get("Plans", []):
        found += _index_names(child)
    return found


def report(advice, analysis_s: float, size: int, before: dict, after: dict, used: dict) -> None:
    print(
        f"analysis: {analysis_s:.1f} s for {advice.analysed} statements; "
        f"{len(advice.suggestions)} indexes, {size / 1024 / 1024:.1f} MiB in all; "
        f"estimated workload cost saved {advice.saved_share:.0%}"
    )
    for s in advice.suggestions:
        calls = sum(h.calls for h in s.helps)
        print(
            f"  {s.table}({', '.join(s.columns)}): serves {len(s.helps)} statements, {calls} calls"
        )
    for w in advice.why_not:
        print(f"  why not: {' '.join(w.query.split())[:70]}… {w.reason}")
    total_before, total_after = sum(before.values()), sum(after.values())
    ratios = {n: before[n] / max(after[n], 1e-6) for n in before}
    for n in sorted(before):
        uses = f"  uses {', '.join(used[n])}" if used[n] else ""
        print(f"  Q{n:<2} {before[n]:8.2f} s -> {after[n]:8.2f} s  x{ratios[n]:.2f}{uses}")
    slower = {n: r for n, r in ratios.items() if r < 1 / TARGET_WORST_SLOWDOWN}
    cut = 1 - total_after / max(total_before, 1e-6)
    print(
        f"workload {total_before:.1f} s -> {total_after:.1f} s ({cut:.0%} lower), "
        f"median speed-up x{statistics.median(ratios.values()):.2f}; "
        f"slower by > 10%: {', '.join(f'Q{n}' for n in slower) or 'none'}"
    )
    for n in slower:
        why = f"its plan uses {', '.join(used[n])}" if used[n] else "its plan uses no new index"
        print(f"  Q{n} slower: {why}")
    checks = {
        f"runtime >= {TARGET_RUNTIME_CUT:.0%} lower": cut >= TARGET_RUNTIME_CUT,
        f"<= {TARGET_MAX_INDEXES} indexes": len(advice.suggestions) <= TARGET_MAX_INDEXES,
        "no query > 10% slower": not slower,
        f"analysis < {TARGET_ANALYSIS_S:g} s": analysis_s < TARGET_ANALYSIS_S,
    }
    print("targets: " + "; ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in checks.items()))
