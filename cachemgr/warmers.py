"""The demo's warmers: real rows from the demo warehouse's product tables (jobs/demo.py),
in schema CACHE_DEMO_SCHEMA (public).

They show the shape product code follows: a generator of (key, value[, ttl]) rows.
"""

from collections.abc import Iterator

import psycopg
from celery.schedules import crontab
from psycopg import sql

from partitions import warehouses
from partitions.warehouses import postgres as connections

from . import conf
from .registry import warmer

WAREHOUSE = "main"


def _connect() -> psycopg.Connection:
    url = warehouses.of_kind("postgres").get(WAREHOUSE)
    if url is None:
        found = warehouses.configured().get(WAREHOUSE) or "not set"
        raise RuntimeError(f"The demo warmers read PostgreSQL; warehouse {WAREHOUSE!r} is {found}.")
    conn = connections.connect(url, purpose="warmers", autocommit=False)
    schema = conf.get("CACHE_DEMO_SCHEMA")
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    return conn


@warmer("user_profile", description="Customer profiles with their plan (customers ⋈ plans)")
def user_profiles(limit: int | None) -> Iterator[tuple]:
    with _connect() as conn, conn.cursor(name="warm_user_profiles") as cur:
        cur.execute(
            """
            SELECT c.id, c.name, c.email, c.country, p.name, p.price_cents, c.created_at
            FROM customers AS c JOIN plans AS p ON p.id = c.plan_id
            ORDER BY c.id
            LIMIT %s
            """,
            [limit],
        )
        for cid, name, email, country, plan, price, created in cur:
            profile = {
                "id": cid,
                "name": name,
                "email": email,
                "country": country,
                "plan": {"name": plan, "price_cents": price},
                "customer_since": created.date().isoformat(),
            }
            yield cid, profile


@warmer(
    "usage_analysis",
    description="Per-customer payment summary (payments, by status)",
    schedule=crontab(minute="15"),
)
def usage_analysis(limit: int | None) -> Iterator[tuple]:
    with _connect() as conn, conn.cursor(name="warm_usage_analysis") as cur:
        cur.execute(
            """
            SELECT customer_id,
                   count(*),
                   coalesce(sum(amount_cents) FILTER (WHERE status = 'COMPLETED'), 0),
                   count(*) FILTER (WHERE status = 'FAILED'),
                   count(*) FILTER (WHERE status = 'REFUNDED'),
                   max(created_at)
            FROM payments
            GROUP BY customer_id
            ORDER BY customer_id
            LIMIT %s
            """,
            [limit],
        )
        for customer_id, payments, paid, failed, refunded, last in cur:
            summary = {
                "customer_id": customer_id,
                "payments": payments,
                "paid_cents": int(paid),
                "failed": failed,
                "refunded": refunded,
                "last_payment_at": last.isoformat() if last else None,
            }
            yield customer_id, summary
