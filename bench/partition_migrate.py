"""Benchmark: migrate a payments-shaped table to monthly partitions three ways.

    .venv/bin/python bench/partition_migrate.py [--rows 10000000] [--batch-rows 250000]

In its own database (--database, default opsconsole_bench_part; recreated each run),
on the same data:
  console  the console's PostgreSQL backend: create, capture, batched copy with
           in-pass fingerprints (--copy-workers batches at once), index, verify
  plain    one INSERT INTO partitioned SELECT * FROM source, into an identical empty
           partitioned table with the primary key (id, created_at) created before
           (and, separately, with the key added after the load)
  partman  pg_partman's partition_data_proc with 1-month batches, on a copy
Prints rows/s, the ratios, WAL written and the verification share of copy time;
writes bench/out/partition_migrate.json.
"""

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from partitions.backends.base import MigrationOptions, StepReport  # noqa: E402
from partitions.backends.postgres import PostgresBackend  # noqa: E402
from partitions.backends.postgres.rules import partition_bounds  # noqa: E402

ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DB = "opsconsole_bench_part"
URL = f"postgres://postgres@127.0.0.1:5432/{DB}"

SOURCE = """
CREATE TABLE public.payments (
    id bigserial PRIMARY KEY, customer_id bigint NOT NULL, amount_cents bigint NOT NULL,
    currency char(3) NOT NULL, status text NOT NULL, description text,
    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)
"""

FILL = """
INSERT INTO public.payments
    (customer_id, amount_cents, currency, status, description, created_at, updated_at)
SELECT 1 + (random() * 4999)::bigint, (100 + random() * 50000)::bigint,
       (ARRAY['USD', 'EUR', 'GBP'])[1 + (random() * 2)::int],
       (ARRAY['COMPLETED', 'COMPLETED', 'PENDING', 'FAILED', 'REFUNDED'])[1 + (random() * 4)::int],
       'order ' || g || ' for a customer of the demo shop',
       ts, ts
FROM generate_series(1, %(rows)s) AS g,
     LATERAL (SELECT timestamptz '2023-01-01 00:00:00+00'
              + make_interval(secs => g::float8 * 730 * 86400 / %(rows)s)) AS t(ts)
"""


def connect(url: str | None = None) -> psycopg.Connection:
    return psycopg.connect(url or URL, autocommit=True, options="-c TimeZone=UTC")


def use_database(name: str) -> None:
    """Benchmark in database `name` (recreated) instead of the default."""
    global DB, URL
    DB, URL = name, f"postgres://postgres@127.0.0.1:5432/{name}"


def wal(conn) -> int:
    return conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0]


def timed(conn, label: str, work) -> dict:
    start_wal, start = wal(conn), time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    result = {"seconds": round(seconds, 2), "wal_bytes": int(wal(conn) - start_wal)}
    print(f"  {label}: {seconds:.1f} s, WAL {result['wal_bytes'] / 2**30:.2f} GiB", flush=True)
    return result


def prepare(rows: int) -> None:
    with connect(ADMIN_URL) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB)))
    with connect() as conn:
        conn.execute(SOURCE)
        print(f"filling {rows} rows …", flush=True)
        conn.execute(FILL, {"rows": rows})
        conn.execute("VACUUM ANALYZE public.payments")
        conn.execute("CHECKPOINT")


def monthly_table(conn, name: str, bounds, pk_before: bool) -> None:
    t = sql.Identifier("public", name)
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} (LIKE public.payments INCLUDING DEFAULTS)"
            " PARTITION BY RANGE (created_at)"
        ).format(t)
    )
    for lo, hi in bounds:
        conn.execute(
            sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                sql.Identifier("public", f"{name}_p{lo:%Y%m%d}"),
                t,
                sql.Literal(f"{lo} 00:00:00+00"),
                sql.Literal(f"{hi} 00:00:00+00"),
            )
        )
    conn.execute(
        sql.SQL("CREATE TABLE {} PARTITION OF {} DEFAULT").format(
            sql.Identifier("public", f"{name}_default"), t
        )
    )
    if pk_before:
        conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (id, created_at)").format(t))


def bench_console(rows: int, batch_rows: int, copy_workers: int) -> dict:
    backend = PostgresBackend(URL)
    info = backend.describe("public", "payments")
    options = MigrationOptions(
        column="created_at",
        granularity="month",
        batch_rows=batch_rows,
        copy_workers=copy_workers,
    )
    plan = backend.plan(1, info, options)
    report = StepReport()
    steps = {}
    with connect() as conn:
        for step in ("create", "capture", "copy", "index", "verify"):
            steps[step] = timed(
                conn, f"console {step}", lambda s=step: backend.run_step(plan, s, report)
            )
        backend.undo(plan, swapped=False, report=report)
    backend.close()
    copy_s = steps["copy"]["seconds"]
    return {
        "steps": steps,
        "copy_rows_per_s": round(rows / copy_s),
        "copy_and_index_rows_per_s": round(rows / (copy_s + steps["index"]["seconds"])),
        # what the issue compares with the plain statement: verification included
        "copy_index_verify_rows_per_s": round(
            rows / (copy_s + steps["index"]["seconds"] + steps["verify"]["seconds"])
        ),
        "verify_share_of_copy": round(steps["verify"]["seconds"] / copy_s, 3),
        "batches": len(plan["batches"]),
        "copy_workers": copy_workers,
        "wal_bytes": sum(s["wal_bytes"] for s in steps.values()),
    }


def bench_plain(rows: int, bounds, pk_before: bool) -> dict:
    name = "plain_pk_before" if pk_before else "plain_pk_after"
    with connect() as conn:
        monthly_table(conn, name, bounds, pk_before)
        t = sql.Identifier("public", name)

        def load():
            conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM public.payments").format(t))
            if not pk_before:
                conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (id, created_at)").format(t))

        result = timed(conn, f"plain ({name})", load)
        conn.execute(sql.SQL("DROP TABLE {}").format(t))
    result["rows_per_s"] = round(rows / result["seconds"])
    return result


def bench_partman(rows: int) -> dict:
    with connect() as conn:
        conn.execute("CREATE SCHEMA partman")
        conn.execute("CREATE EXTENSION pg_partman SCHEMA partman")
        conn.execute("CREATE TABLE public.partman_src AS SELECT * FROM public.payments")
        conn.execute("VACUUM ANALYZE public.partman_src")
        conn.execute(
            "CREATE TABLE public.partman_t (LIKE public.payments INCLUDING DEFAULTS)"
            " PARTITION BY RANGE (created_at)"
        )
        conn.execute(
            "SELECT partman.create_parent(p_parent_table := 'public.partman_t',"
            " p_control := 'created_at', p_type := 'native', p_interval := '1 month',"
            " p_premake := 4, p_start_partition := '2023-01-01 00:00:00+00', p_jobmon := false)"
        )
        conn.execute("ALTER TABLE public.partman_t ADD PRIMARY KEY (id, created_at)")
        conn.execute("CHECKPOINT")
        result = timed(
            conn,
            "pg_partman partition_data_proc",
            lambda: conn.execute(
                "CALL partman.partition_data_proc(p_parent_table := 'public.partman_t',"
                " p_source_table := 'public.partman_src', p_interval := '1 month',"
                " p_batch := 100000, p_wait := 0, p_quiet := true)"
            ),
        )
        moved = conn.execute("SELECT count(*) FROM public.partman_t").fetchone()[0]
    result["rows_moved"] = moved
    result["rows_per_s"] = round(moved / result["seconds"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--batch-rows", type=int, default=250_000)
    parser.add_argument("--skip-partman", action="store_true")
    parser.add_argument(
        "--copy-workers",
        type=int,
        default=min(os.cpu_count() or 1, 4),
        help="batches the console copies at once (default: min(CPU count, 4))",
    )
    parser.add_argument(
        "--database",
        default=DB,
        help=f"the benchmark's own database, dropped and recreated (default {DB})",
    )
    args = parser.parse_args()
    use_database(args.database)

    prepare(args.rows)
    bounds = partition_bounds(
        datetime(2023, 1, 1, tzinfo=UTC),
        datetime(2024, 12, 31, tzinfo=UTC),
        "month",
        3,
        datetime.now(UTC).date(),
    )
    out: dict = {"rows": args.rows, "partitions": len(bounds) + 1}
    out["console"] = bench_console(args.rows, args.batch_rows, args.copy_workers)
    with connect() as conn:
        conn.execute("CHECKPOINT")
    out["plain_pk_before"] = bench_plain(args.rows, bounds, pk_before=True)
    with connect() as conn:
        conn.execute("CHECKPOINT")
    out["plain_pk_after"] = bench_plain(args.rows, bounds, pk_before=False)
    if not args.skip_partman:
        out["partman"] = bench_partman(args.rows)

    console = out["console"]["copy_and_index_rows_per_s"]
    plain = out["plain_pk_before"]["rows_per_s"]
    print(f"\n{args.rows} rows into {out['partitions']} monthly partitions")
    verified = out["console"]["copy_index_verify_rows_per_s"]
    print(f"  console copy+index+verify {verified:>8,} rows/s")
    print(f"  console copy+index      {console:>10,} rows/s")
    print(f"  console copy alone      {out['console']['copy_rows_per_s']:>10,} rows/s")
    print(f"  plain, PK before        {plain:>10,} rows/s")
    print(f"  plain, PK after         {out['plain_pk_after']['rows_per_s']:>10,} rows/s")
    out["ratios"] = {
        "console_verified_vs_plain_pk_after": round(
            verified / out["plain_pk_after"]["rows_per_s"], 2
        ),
        "console_vs_plain_pk_before": round(console / plain, 2),
        "console_vs_plain_pk_after": round(console / out["plain_pk_after"]["rows_per_s"], 2),
    }
    if "partman" in out:
        print(f"  pg_partman              {out['partman']['rows_per_s']:>10,} rows/s")
        out["ratios"]["console_vs_partman"] = round(console / out["partman"]["rows_per_s"], 2)
    print(f"  ratios: {out['ratios']}")
    print(f"  verification: {out['console']['verify_share_of_copy']:.0%} of copy time")
    target = Path(__file__).resolve().parent / "out" / "partition_migrate.json"
    target.parent.mkdir(exist_ok=True)
    target.write_text(json.dumps(out, indent=2))
    print(f"  written to {target}")


if __name__ == "__main__":
    main()
