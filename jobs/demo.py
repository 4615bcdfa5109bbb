"""Demo data in the demo warehouse database: the product's own tables.

public.plans, public.customers and public.payments (the seeds' payments shape)
play the product's OLTP tables; schema `analytics` is the warehouse that the
table_sync job feeds. Idempotent: tables are created once and topped up.
"""

import psycopg

from jobs.schedules import ensure_periodic_task
from partitions import warehouses
from partitions.warehouses import postgres as connections

DEMO_WAREHOUSE = "main"
DEMO_PAYMENTS = 200_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS public.plans (
    id integer PRIMARY KEY,
    name text NOT NULL,
    price_cents integer NOT NULL
);
CREATE TABLE IF NOT EXISTS public.customers (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL,
    plan_id integer NOT NULL REFERENCES public.plans (id),
    country char(2) NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS public.payments (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL,
    amount_cents bigint NOT NULL,
    currency char(3) NOT NULL,
    status text NOT NULL,
    description text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS payments_updated_at_id ON public.payments (updated_at, id);
CREATE SCHEMA IF NOT EXISTS analytics;
CREATE MATERIALIZED VIEW IF NOT EXISTS analytics.daily_revenue AS
    SELECT date_trunc('day', created_at)::date AS day, currency,
           count(*) AS payments, sum(amount_cents) AS amount_cents
    FROM public.payments WHERE status = 'COMPLETED' GROUP BY 1, 2;
CREATE UNIQUE INDEX IF NOT EXISTS daily_revenue_day_currency
    ON analytics.daily_revenue (day, currency);
"""

PLANS = [(1, "free", 0), (2, "starter", 900), (3, "team", 4900), (4, "enterprise", 29900)]


def demo_url() -> str:
    return warehouses.url_of(DEMO_WAREHOUSE)


def create_tables(conn: psycopg.Connection) -> None:
    conn.execute(SCHEMA)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO public.plans VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING", PLANS
        )


def insert_payments(conn: psycopg.Connection, count: int, days_back: int = 730) -> int:
    """Add `count` payments spread over the last `days_back` days (newest last)."""
    conn.execute(
        """
        INSERT INTO public.payments
            (customer_id, amount_cents, currency, status, description, created_at, updated_at)
        SELECT 1 + (random() * 4999)::bigint,
               (100 + random() * 50000)::bigint,
               (ARRAY['USD', 'EUR', 'GBP'])[1 + (random() * 2)::int],
               (ARRAY['COMPLETED', 'COMPLETED', 'COMPLETED', 'PENDING', 'FAILED', 'REFUNDED'])
                   [1 + (random() * 5)::int],
               'order ' || g,
               ts, ts
        FROM generate_series(1, %(count)s) AS g,
             LATERAL (SELECT now() - make_interval(secs => (%(count)s - g)::float8
                      * %(days)s * 86400 / %(count)s) AS ts) AS t
        """,
        {"count": count, "days": days_back},
    )
    return count


def feed_payments(url: str, rows: int) -> dict:
    """Demo traffic: `rows` new payments, and a tenth as many pending ones completed.

    Changes: rows of public.payments in the demo database only.
    """
    with connections.connect(url, purpose="demo") as conn:
        insert_payments(conn, rows, days_back=0)
        updated = conn.execute(
            """UPDATE public.payments SET status = 'COMPLETED', updated_at = now()
               WHERE id IN (SELECT id FROM public.payments WHERE status = 'PENDING'
                            ORDER BY id DESC LIMIT %s)""",
            [max(1, rows // 10)],
        ).rowcount
    return {"inserted": rows, "completed": updated}


def install_feed_schedule() -> None:
    ensure_periodic_task(
        "demo: payments keep arriving",
        "jobs.launch_scheduled",
        60,
        args=["demo_payments_feed"],
        kwargs={"warehouse": DEMO_WAREHOUSE, "rows": 200},
        description="Demo only: inserts payments every minute so table_sync has work.",
    )


def seed() -> dict:
    with connections.connect(demo_url(), purpose="demo") as conn:
        create_tables(conn)
        conn.execute(
            """
            INSERT INTO public.customers (id, name, email, plan_id, country, created_at)
            SELECT g, 'Customer ' || g, 'customer' || g || '@example.com',
                   1 + (g % 4), (ARRAY['US', 'GB', 'DE', 'FR', 'BR'])[1 + g % 5],
                   now() - make_interval(days => (g % 700))
            FROM generate_series(1, 5000) AS g
            ON CONFLICT (id) DO NOTHING
            """
        )
        existing = conn.execute("SELECT count(*) FROM public.payments").fetchone()[0]
        added = insert_payments(conn, DEMO_PAYMENTS - existing) if existing < DEMO_PAYMENTS else 0
        conn.execute("ANALYZE public.payments")
        conn.execute("REFRESH MATERIALIZED VIEW analytics.daily_revenue")
    return {"warehouse": DEMO_WAREHOUSE, "payments_added": added, "customers": 5000}


def set_up_console(actor) -> str:
    """Payments keep arriving every minute, so the sync jobs have work to show."""
    install_feed_schedule()
    return "payments feed scheduled every minute"
