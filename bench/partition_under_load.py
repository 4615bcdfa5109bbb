"""Benchmark: a partition migration, its swap and its rollback under a paced writer.

    .venv/bin/python bench/partition_under_load.py [--rows 2000000] [--rate 1000]

In its own database (opsconsole_bench_load, recreated each run): a payments-shaped
table and an identical twin. A writer process runs at `--rate` writes/s (60% insert,
30% update, a third of those moving the row to another month, 10% delete) from before
the plan until after the rollback, and logs every write with the row it produced.
The console's PostgreSQL backend migrates (create, capture, copy, index, verify),
swaps under the writer, waits `--hold` seconds, and rolls back under the writer.
The writer's log is then replayed on the twin, and the two are checksummed.

Prints the replay rate vs the write rate, the time from the copy's end to the swap,
the exclusive-lock hold of the swap and of the rollback, the writer's p99 and max
latency per window, and the rows lost; writes bench/out/partition_under_load.json.
"""

import argparse
import json
import multiprocessing as mp
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from partitions.backends.base import MigrationOptions, StepReport  # noqa: E402
from partitions.backends.postgres import PostgresBackend  # noqa: E402

ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DB = "opsconsole_bench_load"
URL = f"postgres://postgres@127.0.0.1:5432/{DB}"
START = datetime(2023, 1, 1, tzinfo=UTC)
SPAN_DAYS = 730

SOURCE = """
CREATE TABLE public.{name} (
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
       'order ' || g || ' for a customer of the demo shop', ts, ts
FROM generate_series(1, %(rows)s) AS g,
     LATERAL (SELECT timestamptz '2023-01-01 00:00:00+00'
              + make_interval(secs => g::float8 * 730 * 86400 / %(rows)s)) AS t(ts)
"""

COLUMNS = "id, customer_id, amount_cents, currency, status, description, created_at, updated_at"
INSERT = (
    "INSERT INTO public.payments (customer_id, amount_cents, currency, status, description,"
    f" created_at, updated_at) VALUES (%s, %s, 'EUR', 'NEW', 'written under load', %s, now())"
    f" RETURNING {COLUMNS}"
)
UPDATE_AMOUNT = (
    "UPDATE public.payments SET amount_cents = amount_cents + 1, status = 'CHANGED',"
    f" updated_at = now() WHERE id = %s RETURNING {COLUMNS}"
)
UPDATE_MOVE = (  # to another month: another partition once partitioned
    "UPDATE public.payments SET created_at = created_at + interval '40 days',"
    f" updated_at = now() WHERE id = %s RETURNING {COLUMNS}"
)
DELETE = "DELETE FROM public.payments WHERE id = %s RETURNING id"


def connect(url: str = URL) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, options="-c TimeZone=UTC")


def prepare(rows: int) -> None:
    with connect(ADMIN_URL) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB)))
    with connect() as conn:
        conn.execute(SOURCE.format(name="payments"))
        conn.execute(SOURCE.format(name="twin"))
        print(f"filling {rows} rows …", flush=True)
        conn.execute(FILL, {"rows": rows})
        conn.execute("INSERT INTO public.twin SELECT * FROM public.payments")
        conn.execute("VACUUM ANALYZE public.payments")
        conn.execute("VACUUM ANALYZE public.twin")


# --- the writer -----------------------------------------------------------------


def writer(rate: float, rows: int, stop, log_path: str, seed: int, share: tuple) -> None:
    """Paced writes until `stop`; each logged as (start, latency, op, error, row).

    Writer k of n updates and deletes only the rows it owns (ids = k mod n at the
    start, and those it inserts), so each writer's log replays on its own."""
    rng = random.Random(seed)
    k, n = share
    live = [i for i in range(1, rows + 1) if i % n == k]
    out = []
    with connect() as conn:
        started = time.monotonic()
        i = 0
        while not stop.is_set():
            due = started + i / rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            i += 1
            roll = rng.random()
            begin = time.monotonic()
            error = ""
            row = None
            try:
                if roll < 0.6 or not live:
                    when = START + timedelta(seconds=rng.random() * SPAN_DAYS * 86400)
                    row = conn.execute(
                        INSERT, [1 + rng.randrange(5000), rng.randrange(10**6), when]
                    )
                    row = row.fetchone()
                    live.append(row[0])
                    op = "I"
                elif roll < 0.9:
                    pick = live[rng.randrange(len(live))]
                    statement = UPDATE_MOVE if roll < 0.7 else UPDATE_AMOUNT
                    row = conn.execute(statement, [pick]).fetchone()
                    op = "U"
                else:
                    at = rng.randrange(len(live))
                    live[at], live[-1] = live[-1], live[at]
                    row = conn.execute(DELETE, [live.pop()]).fetchone()
                    op = "D"
            except psycopg.Error as exc:
                op, error = "E", f"{type(exc).__name__}: {exc}"[:200]
            latency = time.monotonic() - begin
            out.append((begin, latency, op, error, _jsonable(row)))
    Path(log_path).write_text(json.dumps(out))


def _jsonable(row):
    if row is None:
        return None
    return [v.isoformat() if isinstance(v, datetime) else v for v in row]


def replay_on_twin(log: list) -> None:
    """The writer's log, in its order, on the twin (it never saw the migration)."""
    with connect() as conn, conn.transaction():
        for _begin, _latency, op, _error, row in log:
            if op == "I":
                conn.execute(
                    f"INSERT INTO public.twin ({COLUMNS}) VALUES ({', '.join(['%s'] * 8)})", row
                )
            elif op == "U":
                conn.execute(
                    "UPDATE public.twin SET customer_id = %s, amount_cents = %s, currency = %s,"
                    " status = %s, description = %s, created_at = %s, updated_at = %s"
                    " WHERE id = %s",
                    [*row[1:], row[0]],
                )
            elif op == "D":
                conn.execute("DELETE FROM public.twin WHERE id = %s", [row[0]])


def checksum(conn, table: str) -> tuple[int, str]:
    return tuple(
        conn.execute(
            sql.SQL(
                "SELECT count(*), coalesce(sum(hash_record_extended(t, 0)), 0)::text FROM {} t"
            ).format(sql.Identifier("public", table))
        ).fetchone()
    )


def latency_by_window(log: list, windows: list[tuple[str, float, float]]) -> dict:
    found = {}
    for name, lo, hi in windows:
        lat = sorted(entry[1] for entry in log if lo <= entry[0] < hi)
        if not lat:
            continue
        found[name] = {
            "writes": len(lat),
            "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 1),
            "max_ms": round(lat[-1] * 1000, 1),
        }
    return found


# --- the console -----------------------------------------------------------------


def migrate_and_roll_back(args, marks: dict) -> dict:
    backend = PostgresBackend(URL)
    report = StepReport(log=lambda line: print(f"    {line}", flush=True))
    info = backend.describe("public", "payments")
    options = MigrationOptions(
        column="created_at",
        granularity="month",
        batch_rows=args.batch_rows,
        lock_backlog=args.lock_backlog,
    )
    marks["plan"] = time.monotonic()
    plan = backend.plan(1, info, options)
    results = {}
    for step in ("create", "capture", "copy", "index", "verify", "swap", "post_check"):
        marks[step] = time.monotonic()
        results[step] = backend.run_step(plan, step, report)
        print(f"  {step}: {time.monotonic() - marks[step]:.2f} s", flush=True)
    marks["swapped"] = time.monotonic()
    time.sleep(args.hold)
    marks["rollback"] = time.monotonic()
    results["rollback"] = backend.undo(plan, swapped=True, report=report)
    marks["rolled_back"] = time.monotonic()
    print(f"  rollback: {marks['rolled_back'] - marks['rollback']:.2f} s", flush=True)
    backend.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--writers", type=int, default=4, help="processes sharing the rate")
    parser.add_argument("--batch-rows", type=int, default=100_000)
    parser.add_argument("--lock-backlog", type=int, default=200)
    parser.add_argument("--hold", type=float, default=20.0, help="seconds swapped")
    parser.add_argument("--settle", type=float, default=5.0, help="writer seconds around")
    args = parser.parse_args()

    prepare(args.rows)
    out_dir = Path(__file__).resolve().parent / "out"
    out_dir.mkdir(exist_ok=True)
    stop = mp.Event()
    paths = [str(out_dir / f"partition_under_load.writes.{k}.json") for k in range(args.writers)]
    procs = [
        mp.Process(
            target=writer,
            args=(args.rate / args.writers, args.rows, stop, path, 7 + k, (k, args.writers)),
        )
        for k, path in enumerate(paths)
    ]
    marks: dict[str, float] = {"writer": time.monotonic()}
    for proc in procs:
        proc.start()
    time.sleep(args.settle)
    results = migrate_and_roll_back(args, marks)
    time.sleep(args.settle)
    marks["writer_stop"] = time.monotonic()
    stop.set()
    logs = []
    for proc, path in zip(procs, paths, strict=True):
        proc.join()
        logs.append(json.loads(Path(path).read_text()))
    log = sorted((entry for one in logs for entry in one), key=lambda e: e[0])
    print(f"replaying {len(log)} logged writes on the twin …", flush=True)
    for one in logs:
        replay_on_twin(one)
    with connect() as conn:
        source, twin = checksum(conn, "payments"), checksum(conn, "twin")

    errors = [e for e in log if e[2] == "E"]
    writer_seconds = log[-1][0] - log[0][0] if log else 1
    verify_catch_up = results["verify"]["catch_up"]
    windows = [
        ("before the plan", marks["writer"], marks["plan"]),
        ("copy", marks["copy"], marks["index"]),
        ("index + verify", marks["index"], marks["swap"]),
        ("swap", marks["swap"], marks["post_check"]),
        ("swapped", marks["post_check"], marks["rollback"]),
        ("rollback", marks["rollback"], marks["rolled_back"]),
        ("after", marks["rolled_back"], marks["writer_stop"]),
    ]
    catch_ups = [verify_catch_up, results["rollback"]["catch_up"]]
    replayed = sum(c.get("replayed", 0) for c in catch_ups)
    busy = sum(c["replayed"] / c["replay_rate"] for c in catch_ups if c.get("replay_rate"))
    out = {
        "rows_at_start": args.rows,
        "replay_rate": round(replayed / busy) if busy else 0,
        "write_rate_asked": args.rate,
        "write_rate_done": round(len(log) / writer_seconds),
        "writer_errors": len(errors),
        "writer_error_examples": [e[3] for e in errors[:3]],
        "replay_rate_verify": verify_catch_up["replay_rate"],
        "replayed_in_verify": verify_catch_up["replayed"],
        "replay_rate_rollback": results["rollback"]["catch_up"].get("replay_rate", 0),
        "copy_end_to_swap_s": round(marks["post_check"] - marks["index"], 2),
        "swap_lock_hold_ms": results["swap"]["lock_hold_ms"],
        "swap_replayed_under_lock": results["swap"]["replayed_under_lock"],
        "rollback_lock_hold_ms": results["rollback"]["lock_hold_ms"],
        "rollback_replayed_since_swap": results["rollback"]["replayed_since_swap"],
        "rollback_replayed_under_lock": results["rollback"]["replayed_under_lock"],
        "writer_latency": latency_by_window(log, windows),
        "rows_at_end": source[0],
        "twin_rows": twin[0],
        "rows_lost": twin[0] - source[0],
        "checksum_equal": source == twin,
        "steps": {k: v for k, v in results.items()},
    }
    print(f"\nwriter {out['write_rate_done']}/s ({out['writer_errors']} errors)")
    print(
        f"replay {out['replay_rate']:,}/s over both catch-ups"
        f" ({out['replay_rate_verify']:,}/s in verify for {out['replayed_in_verify']} writes,"
        f" {out['replay_rate_rollback']:,}/s in the rollback's):"
        f" {out['replay_rate'] / max(1, out['write_rate_done']):.1f}x the write rate"
    )
    print(f"copy end to swap {out['copy_end_to_swap_s']} s")
    print(
        f"exclusive lock: swap {out['swap_lock_hold_ms']} ms"
        f" ({out['swap_replayed_under_lock']} writes replayed under it),"
        f" rollback {out['rollback_lock_hold_ms']} ms"
        f" ({out['rollback_replayed_under_lock']} of {out['rollback_replayed_since_swap']})"
    )
    for name, figures in out["writer_latency"].items():
        print(f"  writer {name:16} {figures}")
    print(f"rows lost {out['rows_lost']}, checksum equal to the twin: {out['checksum_equal']}")
    target = out_dir / "partition_under_load.json"
    target.write_text(json.dumps(out, indent=2, default=str))
    print(f"written to {target}")


if __name__ == "__main__":
    main()
