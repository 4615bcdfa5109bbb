"""Demo data for partition migrations.

The PostgreSQL demo table (public.payments in the demo warehouse) is created by
jobs.demo. Here: the BigQuery demo, for any `bigquery://…?endpoint=…` warehouse
whose emulator answers (start one with
`.venv/bqemulator/bin/bqemulator start --rest-port 9050 --project demo-proj` and set
WAREHOUSES=main=postgres://…,analytics=bigquery://demo-proj/analytics?endpoint=http://127.0.0.1:9050).
"""

from google.api_core import exceptions as gexc

from . import backends, warehouses

DEMO_ROWS = 20_000


def seed() -> dict:
    seeded = {}
    for name in warehouses.of_kind("bigquery"):
        if not warehouses.get(name).endpoint:  # only the emulator gets demo rows
            continue
        seeded[name] = seed_bigquery(name)
    return seeded or {"bigquery": "no emulator warehouse configured; PostgreSQL demo only"}


def seed_bigquery(name: str) -> str:
    backend = backends.for_warehouse(name)
    try:
        try:
            backend.ping()
        except Exception:
            backend.client.create_dataset(f"{backend.project}.{backend.dataset}", exists_ok=True)
        if backend.table("payments") is not None:
            return "payments already there"
        table = backend.name("payments")  # validated and backtick-quoted by the backend
        backend.query(
            f"CREATE TABLE {table} (id INT64, customer_id INT64, amount_cents INT64,"
            " currency STRING, status STRING, description STRING, created_at TIMESTAMP,"
            " updated_at TIMESTAMP)"
        )
        backend.query(
            f"INSERT INTO {table} SELECT x, 1 + MOD(x * 7919, 5000), "  # noqa: S608 (name above)
            "100 + MOD(x * 104729, 50000),"
            " ['USD', 'EUR', 'GBP'][OFFSET(MOD(x, 3))],"
            " ['COMPLETED', 'COMPLETED', 'PENDING', 'FAILED'][OFFSET(MOD(x, 4))],"
            " CONCAT('order ', CAST(x AS STRING)),"
            " TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL (@n - x) * 3150 SECOND),"
            " CURRENT_TIMESTAMP() FROM UNNEST(GENERATE_ARRAY(1, @n)) AS x",
            {"n": DEMO_ROWS},
        )
        return f"payments created with {DEMO_ROWS} rows"
    except (gexc.GoogleAPIError, OSError) as exc:
        return f"skipped: the emulator did not answer ({type(exc).__name__})"
    finally:
        backend.close()
