"""Benchmark: the index advisor on a synthetic workload and on TPC-H.

    .venv/bin/python bench/index_advisor.py [--workload synthetic|tpch|both] [--sf 1] [--keep]

TPC-H (needs bench/requirements.txt: duckdb and duckdb-extension-tpch, whose wheel
carries the extension file, loaded from there: nothing is downloaded): generates the
data at scale factor --sf with DuckDB's dbgen, loads it into its own database
(opsconsole_bench_tpch) with primary keys only, runs the 22 queries --rounds times with
their date parameters shifted each round (so pg_stat_statements holds the workload),
runs the advisor with its defaults, really creates the chosen indexes and runs the
same workload again. Prints the analysis time, the indexes and their total size, the
workload runtime before/after, each query's speed-up and any query that got slower,
against the targets (runtime >= 30% lower with <= 10 indexes, no query > 10% slower,
analysis < 30 s). A query past --timeout-s counts as taking the timeout.

Synthetic: 20 generated tables (up to 1M rows) and 1,000 statements.

Creates its own database (opsconsole_bench_idx, with pg_stat_statements and hypopg),
generates 20 tables of 20k to 1M rows, runs 1,000 distinct statements once each so
pg_stat_statements records them, then:
  1. times partitions.queries.advisor.suggest_indexes over the whole set;
  2. for each suggestion, times the statements it helps (best of 2 runs, with the same
     values), really creates the index, times them again, and drops it before the next
     one (each suggestion measured alone);
  3. prints the suggestions and the measured speed-ups (median and worst).
The database is dropped at the end unless --keep. It prints figures; it asserts nothing.
"""

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsconsole.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from partitions.queries import advisor, pg  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tpch_workload as tpch  # noqa: E402

ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DB = "opsconsole_bench_idx"
URL = f"postgres://postgres@127.0.0.1:5432/{DB}"
SIZES = [1_000_000, 600_000, 400_000, 300_000, 200_000, 200_000, 150_000, 100_000]
SIZES += [100_000, 80_000, 60_000, 50_000, 50_000, 40_000, 40_000, 30_000]
SIZES += [30_000, 25_000, 20_000, 20_000]
STATEMENTS = 1_000
MEASURE_PER_SUGGESTION = 5
SELECT_LISTS = [
    "id",
    "id, k_sel",
    "id, ts",
    "id, amount",
    "id, label",
    "*",
    "id, k_mid, ts",
    "count(*)",
    "id, ref_id",
]


def create_database() -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB)))
    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        conn.execute("CREATE EXTENSION hypopg")


def drop_database() -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB)))


def generate_tables(conn) -> None:
    """t01..t20: k_sel ~rows/5 values, k_mid 1,000, k_low 5, ts distinct, a label text."""
    for n, rows in enumerate(SIZES, start=1):
        t = sql.Identifier(f"t{n:02d}")
        conn.execute(
            sql.SQL(
                """
                CREATE TABLE {t} (
                    id bigint PRIMARY KEY, k_sel integer NOT NULL, k_mid integer NOT NULL,
                    k_low integer NOT NULL, ts timestamptz NOT NULL, amount integer NOT NULL,
                    label text NOT NULL, ref_id integer NOT NULL)
                """
            ).format(t=t)
        )
        conn.execute(
            sql.SQL(
                """
                INSERT INTO {t}
                SELECT g, (random() * %(sel)s)::int, (random() * 1000)::int,
                       (random() * 4)::int, now() - g * interval '1 second',
                       (random() * 100000)::int, md5(g::text), (random() * 20000)::int
                FROM generate_series(1, %(rows)s) g
                """
            ).format(t=t),
            {"rows": rows, "sel": max(rows // 5, 10)},
        )
        conn.execute(sql.SQL("ANALYZE {t}").format(t=t))


def statement_set() -> list[tuple[str, list]]:
    """1,000 distinct statements (distinct after normalization: all values are $n)."""
    rng = random.Random(7)
    shapes = [
        ("SELECT {cols} FROM {t} WHERE k_sel = %s", lambda r: [rng.randint(0, r // 5)]),
        (
            "SELECT {cols} FROM {t} WHERE k_mid = %s ORDER BY ts DESC LIMIT %s",
            lambda r: [rng.randint(0, 999), 20],
        ),
        ("SELECT {cols} FROM {t} WHERE k_low = %s", lambda r: [rng.randint(0, 4)]),
        ("SELECT {cols} FROM {t} WHERE label LIKE %s", lambda r: ["%ab%"]),
        ("SELECT {cols} FROM {t} WHERE id = %s", lambda r: [rng.randint(1, r)]),
        (
            "SELECT {cols} FROM {t} WHERE amount BETWEEN %s AND %s",
            lambda r: [v := rng.randint(0, 99_000), v + 50],
        ),
        (
            "SELECT {cols} FROM {t} WHERE k_mid = %s AND k_low = %s",
            lambda r: [rng.randint(0, 999), rng.randint(0, 4)],
        ),
        (
            "SELECT {cols} FROM {t} WHERE ts > %s AND ts < %s",
            lambda r: ["2020-01-01", "2020-01-02"],
        ),
    ]
    found: list[tuple[str, list]] = []
    seen = set()
    while len(found) < STATEMENTS:
        n = rng.randint(1, len(SIZES))
        template, values = rng.choice(shapes)
        cols = rng.choice(SELECT_LISTS)
        if cols == "count(*)" and "ORDER BY" in template:
            continue
        text = template.format(cols=cols, t=f"t{n:02d}")
        if text in seen:
            continue
        seen.add(text)
        found.append((text, values(SIZES[n - 1])))
    return found


def normalized(text: str) -> str:
    """What pg_stat_statements stores for it: psycopg sends %s as $1, $2, …"""
    parts = text.split("%s")
    out = parts[0]
    for i, part in enumerate(parts[1:], start=1):
        out += f"${i}" + part
    return out


def best_ms(conn, text: str, values: list, runs: int = 2) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        conn.execute(text, values).fetchall()
        best = min(best, (time.perf_counter() - started) * 1000)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--workload", choices=("synthetic", "tpch", "both"), default="both")
    parser.add_argument("--sf", type=float, default=1.0, help="TPC-H scale factor")
    parser.add_argument("--rounds", type=int, default=3, help="TPC-H runs of the 22 queries")
    parser.add_argument("--timeout-s", type=float, default=300.0, help="per TPC-H query")
    args = parser.parse_args()
    if args.workload in ("synthetic", "both"):
        synthetic(args)
    if args.workload in ("tpch", "both"):
        tpch.run(args)


def synthetic(args) -> None:
    settings.WAREHOUSES = {"bench": URL}
    create_database()
    try:
        with psycopg.connect(URL, autocommit=True) as conn:
            started = time.perf_counter()
            generate_tables(conn)
            print(
                f"generated 20 tables, {sum(SIZES):,} rows in {time.perf_counter() - started:.1f} s"
            )
            statements = statement_set()
            conn.execute("SELECT pg_stat_statements_reset()")
            started = time.perf_counter()
            for text, values in statements:
                conn.execute(text, values).fetchall()
            took = time.perf_counter() - started
            print(f"ran {len(statements)} distinct statements in {took:.1f} s")

        started = time.perf_counter()
        advice = advisor.suggest_indexes("bench")  # the defaults, budget included
        analysis_s = time.perf_counter() - started
        helped = sum(len(s.helps) for s in advice.suggestions)
        print(
            f"analysis: {analysis_s:.1f} s for {advice.analysed} statements "
            f"({len(advice.skipped)} skipped), the budget keeps {len(advice.suggestions)} "
            f"indexes helping {helped} statements ({len(advice.not_worth_it)} not worth it); "
            f"estimated workload cost saved {advice.saved_share:.0%}"
        )
        by_text = {normalized(text): (text, values) for text, values in statements}
        measure(advice, by_text)
    finally:
        if not args.keep:
            drop_database()


def measure(advice, by_text: dict) -> None:
    speedups: list[float] = []
    with psycopg.connect(URL, autocommit=True) as conn:
        for s in advice.suggestions:
            sample = [h for h in s.helps if h.query in by_text][:MEASURE_PER_SUGGESTION]
            before = [best_ms(conn, *by_text[h.query]) for h in sample]
            # an index of an OR's bundle is measured with the others it is built with
            bundle = [s] + [o for o in advice.suggestions if o.name in s.together_with]
            for index in bundle:
                conn.execute(
                    pg.index_statement(index.schema, index.table, index.columns, name=index.name)
                )
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(s.schema, s.table)))
            after = [best_ms(conn, *by_text[h.query]) for h in sample]
            for index in bundle:
                conn.execute(
                    sql.SQL("DROP INDEX {}").format(sql.Identifier(index.schema, index.name))
                )
            ratios = [b / max(a, 0.001) for b, a in zip(before, after, strict=True)]
            speedups.extend(ratios)
            cost = f"cost {s.cost_before:,.0f} -> {s.cost_after:,.0f}"
            print(
                f"  {s.table}({', '.join(s.columns)}): helps {len(s.helps)}, {cost}, "
                f"measured x{statistics.median(ratios):.1f} median, x{min(ratios):.1f} worst "
                f"({statistics.median(before):.1f} -> {statistics.median(after):.2f} ms)"
            )
    if speedups:
        print(
            f"speed-up over {len(speedups)} measured statements: "
            f"median x{statistics.median(speedups):.1f}, worst x{min(speedups):.2f}, "
            f"best x{max(speedups):.0f}"
        )


if __name__ == "__main__":
    main()
