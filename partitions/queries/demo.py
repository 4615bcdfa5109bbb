"""Demo workload for the Queries pages: a small shop schema in the demo warehouse
and real statements run against it, so pg_stat_statements has slow queries, index
suggestions, a duplicate and an unused index, a foreign key without an index and a
possible N+1 to show. Idempotent: tables are created once; the workload reruns.
"""

import random
import time

import psycopg
from psycopg import sql

from partitions import warehouses
from partitions.warehouses import postgres as connections

DEMO_SCHEMA = "shop"
DEMO_ORDERS = 800_000


def _url() -> str:
    names = warehouses.of_kind("postgres")
    return names.get("main") or next(iter(names.values()))


INDEXES = """
    CREATE INDEX orders_status_idx ON {s}.orders (status);
    CREATE INDEX orders_status_created_idx ON {s}.orders (status, created_at);
    CREATE INDEX orders_note_idx ON {s}.orders (note);
    CREATE INDEX orders_created_idx ON {s}.orders (created_at);
    CREATE INDEX orders_created_at_idx ON {s}.orders (created_at);
"""


def create_schema(conn: psycopg.Connection, schema: str, orders: int) -> bool:
    """Tables and rows; False when they already exist."""
    exists = conn.execute("SELECT to_regclass(%s)", [f"{schema}.orders"]).fetchone()[0]
    if exists:
        return False
    ident = sql.Identifier(schema)
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
    ddl = """
        CREATE TABLE {s}.customers (
            id bigint PRIMARY KEY, email text NOT NULL, country char(2) NOT NULL,
            created_at timestamptz NOT NULL);
        CREATE TABLE {s}.orders (
            id bigserial PRIMARY KEY, customer_id bigint NOT NULL,
            status text NOT NULL, total_cents integer NOT NULL, note text,
            created_at timestamptz NOT NULL);
    """
    conn.execute(sql.SQL(ddl).format(s=ident))
    customers = max(orders // 20, 100)
    conn.execute(
        sql.SQL(
            """
            INSERT INTO {s}.customers
            SELECT g, 'customer' || g || '@example.com',
                   (ARRAY['US','DE','FR','GB','NL'])[1 + g %% 5], now() - g * interval '1 hour'
            FROM generate_series(1, %(n)s) g
            """
        ).format(s=ident),
        {"n": customers},
    )
    conn.execute(
        sql.SQL(
            """
            INSERT INTO {s}.orders (customer_id, status, total_cents, note, created_at)
            SELECT 1 + (g::bigint * 7919) %% %(customers)s,
                   (ARRAY['paid','paid','paid','open','refunded'])[1 + g %% 5],
                   100 + (g * 31) %% 50000, 'order ' || g,
                   now() - (g %% 100000) * interval '1 minute'
            FROM generate_series(1, %(n)s) g
            """
        ).format(s=ident),
        {"n": orders, "customers": customers},
    )
    # Indexes (a duplicate and a prefix-redundant pair among them) after the load.
    conn.execute(sql.SQL(INDEXES).format(s=ident))
    # The foreign key after the load: one validating scan instead of a check per row.
    conn.execute(
        sql.SQL(
            "ALTER TABLE {s}.orders ADD CONSTRAINT orders_customer_id_fkey "
            "FOREIGN KEY (customer_id) REFERENCES {s}.customers (id)"
        ).format(s=ident)
    )
    conn.execute(sql.SQL("ANALYZE {s}.customers, {s}.orders").format(s=ident))
    return True


def run_workload(conn: psycopg.Connection, schema: str, rounds: int = 6) -> int:
    """The product's statements, run for real: some slow (no index), some fast."""
    s = sql.Identifier(schema)
    statements = [
        ("SELECT * FROM {s}.orders WHERE customer_id = %s", lambda: [random.randint(1, 3000)]),
        (
            "SELECT id, total_cents FROM {s}.orders WHERE total_cents = %s "
            "ORDER BY created_at DESC LIMIT 20",
            lambda: [random.randint(100, 50000)],
        ),
        (
            "SELECT o.id, c.email FROM {s}.orders o JOIN {s}.customers c ON c.id = o.customer_id "
            "WHERE c.email = %s",
            lambda: [f"customer{random.randint(1, 3000)}@example.com"],
        ),
        ("SELECT count(*) FROM {s}.orders WHERE note LIKE %s", lambda: ["%77%"]),
        (  # a case-insensitive lookup: an expression index serves it
            "SELECT id, status FROM {s}.orders WHERE lower(note) = lower(%s)",
            lambda: [f"Order {random.randint(1, 40_000)}"],
        ),
        ("SELECT count(*) FROM {s}.orders WHERE status = %s", lambda: ["paid"]),
    ]
    # Sequential scans without parallel workers: what a busy OLTP box does anyway.
    conn.execute("SET max_parallel_workers_per_gather = 0")
    count = 0
    for _ in range(rounds):
        for text, values in statements:
            conn.execute(sql.SQL(text).format(s=s), values())
            count += 1
    for customer in range(1, 1201):  # a loop fetching customers one by one: an N+1
        conn.execute(sql.SQL("SELECT * FROM {s}.customers WHERE id = %s").format(s=s), [customer])
        count += 1
    return count


def seed(schema: str = DEMO_SCHEMA, orders: int = DEMO_ORDERS) -> dict:
    """Create the demo shop (once) and run its workload in the demo warehouse."""
    started = time.monotonic()
    with connections.connect(_url(), purpose="demo") as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
        with conn.transaction():
            created = create_schema(conn, schema, orders)
        # The demo loaders' bulk loads and DDL are not the workload: this database's
        # statistics start afresh, with the product's statements only.
        conn.execute(
            "SELECT pg_stat_statements_reset(0, d.oid, 0) FROM pg_database d"
            " WHERE d.datname = current_database()"
        )
        statements = run_workload(conn, schema)
    return {
        "schema": schema,
        "created": created,
        "statements_run": statements,
        "seconds": round(time.monotonic() - started, 1),
    }
