"""Demo workload for the Queries pages: a small shop schema in the demo warehouse
and real statements run against it, so pg_stat_statements has slow queries, index
suggestions, a duplicate and an unused index, a foreign key without an index and a
possible N+1 to show. `seed` creates the shop with its first 50,000 orders and runs the
workload (seconds: the console starts with figures); `start_full_load` then loads the full
800,000 orders as a run, swaps them in and runs the workload again. Idempotent: tables are
created once, the workload runs again only when the statistics lost it, and the full load
starts only while the table is short of it.
"""

import random
import time
from collections.abc import Callable

import psycopg
from psycopg import sql

from jobs import runner
from jobs.models import Run
from partitions import warehouses
from partitions.warehouses import postgres as connections

from . import slow

DEMO_SCHEMA = "shop"
# The full table, for realistic plans and index advice, takes a minute to load: a run
# in the background loads it while the console already shows the first orders.
DEMO_ORDERS = 800_000
FIRST_ORDERS = 50_000
FILL_BATCH = 100_000
FULL_LOAD_JOB = "demo_shop_orders"


def _warehouse() -> str:
    """The demo warehouse: `main`, or the first PostgreSQL one."""
    names = warehouses.of_kind("postgres")
    return "main" if "main" in names else next(iter(names))


def customers_for(orders: int) -> int:
    return max(orders // 20, 100)


ORDERS_TABLE = """
    CREATE TABLE {s}.orders (
        id bigserial PRIMARY KEY, customer_id bigint NOT NULL,
        status text NOT NULL, total_cents integer NOT NULL, note text,
        created_at timestamptz NOT NULL);
"""

INDEXES = """
    CREATE INDEX orders_status_idx ON {s}.orders (status);
    CREATE INDEX orders_status_created_idx ON {s}.orders (status, created_at);
    CREATE INDEX orders_note_idx ON {s}.orders (note);
    CREATE INDEX orders_created_idx ON {s}.orders (created_at);
    CREATE INDEX orders_created_at_idx ON {s}.orders (created_at);
"""


def create_schema(conn: psycopg.Connection, schema: str, orders: int, customers: int) -> bool:
    """Tables and rows; False when they already exist."""
    exists = conn.execute("SELECT to_regclass(%s)", [f"{schema}.orders"]).fetchone()[0]
    if exists:
        return False
    ident = sql.Identifier(schema)
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
    conn.execute(
        sql.SQL(
            """
            CREATE TABLE {s}.customers (
                id bigint PRIMARY KEY, email text NOT NULL, country char(2) NOT NULL,
                created_at timestamptz NOT NULL)
            """
        ).format(s=ident)
    )
    conn.execute(sql.SQL(ORDERS_TABLE).format(s=ident))
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
    insert_orders(conn, schema, 1, orders, customers)
    index_orders(conn, schema, customers_schema=schema)
    conn.execute(sql.SQL("ANALYZE {s}.customers").format(s=ident))
    return True


def insert_orders(conn: psycopg.Connection, schema: str, first: int, last: int, customers: int):
    """Orders number `first` to `last`: the same rows whichever batches load them."""
    conn.execute(
        sql.SQL(
            """
            INSERT INTO {s}.orders (customer_id, status, total_cents, note, created_at)
            SELECT 1 + (g::bigint * 7919) %% %(customers)s,
                   (ARRAY['paid','paid','paid','open','refunded'])[1 + g %% 5],
                   100 + (g * 31) %% 50000, 'order ' || g,
                   now() - (g %% 100000) * interval '1 minute'
            FROM generate_series(%(first)s::bigint, %(last)s::bigint) g
            """
        ).format(s=sql.Identifier(schema)),
        {"first": first, "last": last, "customers": customers},
    )


def index_orders(conn: psycopg.Connection, schema: str, customers_schema: str) -> None:
    """Indexes (a duplicate and a prefix-redundant pair among them) and the foreign key,
    after the load: one sort per index and one validating scan, not work per row."""
    ident = sql.Identifier(schema)
    conn.execute(sql.SQL(INDEXES).format(s=ident))
    conn.execute(
        sql.SQL(
            "ALTER TABLE {s}.orders ADD CONSTRAINT orders_customer_id_fkey "
            "FOREIGN KEY (customer_id) REFERENCES {c}.customers (id)"
        ).format(s=ident, c=sql.Identifier(customers_schema))
    )
    conn.execute(sql.SQL("ANALYZE {s}.orders").format(s=ident))


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


def seed(schema: str = DEMO_SCHEMA, orders: int | None = None, full: int | None = None) -> dict:
    """Create the demo shop (once) with its first `orders` and run its workload in the
    demo warehouse. Its customers are those of the `full` table, which
    `start_full_load` builds afterwards."""
    started = time.monotonic()
    orders, full = orders or FIRST_ORDERS, full or DEMO_ORDERS
    with connections.connect(warehouses.url_of(_warehouse()), purpose="demo") as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
        with conn.transaction():
            created = create_schema(conn, schema, orders, customers_for(full))
        statements = 0
        if created or not workload_recorded(conn, schema):
            statements = restart_workload(conn, schema)
    return {
        "schema": schema,
        "created": created,
        "statements_run": statements,
        "seconds": round(time.monotonic() - started, 1),
    }


def workload_recorded(conn: psycopg.Connection, schema: str) -> bool:
    """Whether this database's statement statistics hold the workload already (a second
    `make demo` keeps them instead of running it again)."""
    orders = sql.SQL("{}.orders").format(sql.Identifier(schema)).as_string(conn)
    return conn.execute(
        "SELECT EXISTS (SELECT FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
        " WHERE d.datname = current_database() AND strpos(s.query, %s) > 0)",
        [orders],
    ).fetchone()[0]


def restart_workload(conn: psycopg.Connection, schema: str) -> int:
    """The demo loaders' bulk loads and DDL are not the workload: this database's
    statistics start afresh, with the product's statements only."""
    conn.execute(
        "SELECT pg_stat_statements_reset(0, d.oid, 0) FROM pg_database d"
        " WHERE d.datname = current_database()"
    )
    return run_workload(conn, schema)


def orders_loaded(schema: str = DEMO_SCHEMA) -> int:
    """How many orders the demo shop holds (its ids run from 1 without gaps)."""
    with connections.connect(warehouses.url_of(_warehouse()), purpose="demo") as conn:
        return conn.execute(
            sql.SQL("SELECT coalesce(max(id), 0) FROM {s}.orders").format(s=sql.Identifier(schema))
        ).fetchone()[0]


def start_full_load(actor, schema: str = DEMO_SCHEMA, orders: int | None = None) -> Run | None:
    """Start the run that loads the full orders table, unless it is loaded already.

    A run of the jobs runtime (audited job.start / job.end): the dashboard's running
    jobs show its progress while the console is already in use."""
    orders = orders or DEMO_ORDERS
    if orders_loaded(schema) >= orders:
        return None
    params = {"warehouse": _warehouse(), "schema": schema, "orders": orders}
    return runner.start(FULL_LOAD_JOB, params, actor)


def set_up_console(actor) -> str:
    """The console's part, once its database is migrated: the full load's run."""
    try:
        run = start_full_load(actor)
    except runner.LaunchRefused as exc:  # still loading since an earlier `make demo`
        return str(exc)
    return f"{FULL_LOAD_JOB}: run #{run.pk} loads the full table" if run else "full table loaded"


Progress = Callable[[int, int, str], None]


def load_full_orders(warehouse: str, schema: str, orders: int, progress: Progress) -> dict:
    """Build the full orders table beside the small one, then swap it in.

    Changes: schema `<schema>_load` (created, then dropped), `<schema>.orders` replaced
    in one transaction, this database's statement statistics restarted, one statement
    snapshot taken. Undo: drop schema `<schema>` and run `manage.py demo_setup` again.
    The rows go into a table without indexes (a quarter of the time of a load into the
    indexed table), and the pages never see a half-loaded table."""
    staging = f"{schema}_load"
    with connections.connect(warehouses.url_of(warehouse), purpose="demo") as conn:
        customers = conn.execute(
            sql.SQL("SELECT count(*) FROM {s}.customers").format(s=sql.Identifier(schema))
        ).fetchone()[0]
        _create_staging(conn, staging)
        for first in range(1, orders + 1, FILL_BATCH):
            last = min(first + FILL_BATCH - 1, orders)
            insert_orders(conn, staging, first, last, customers)
            progress(last, orders, f"{last:,} of {orders:,} orders loaded")
        progress(orders, orders, "building the indexes and the foreign key")
        index_orders(conn, staging, customers_schema=schema)
        _swap_in(conn, staging, schema)
        progress(orders, orders, "running the workload on the full table")
        statements = restart_workload(conn, schema)
    slow.take_snapshot(warehouse)
    return {"orders": orders, "statements_run": statements}


def _create_staging(conn: psycopg.Connection, staging: str) -> None:
    """An empty orders table in a schema of its own; a previous attempt's is dropped."""
    ident = sql.Identifier(staging)
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(ident))
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(ident))
    conn.execute(sql.SQL(ORDERS_TABLE).format(s=ident))


def _swap_in(conn: psycopg.Connection, staging: str, schema: str) -> None:
    """The loaded table (its indexes, key and id sequence move with it) replaces the
    small one; index names are per schema, so they stay those of the small table."""
    with conn.transaction():
        conn.execute(sql.SQL("DROP TABLE {}.orders").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL("ALTER TABLE {}.orders SET SCHEMA {}").format(
                sql.Identifier(staging), sql.Identifier(schema)
            )
        )
        conn.execute(sql.SQL("DROP SCHEMA {}").format(sql.Identifier(staging)))
