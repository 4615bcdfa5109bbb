"""Queries fixtures: a real workload in the test's own schema of the warehouse database."""

import uuid

import psycopg
import pytest
from psycopg import sql


@pytest.fixture
def wh(warehouse_db):
    """An autocommit connection to the warehouse database."""
    with psycopg.connect(warehouse_db, autocommit=True) as conn:
        yield conn


@pytest.fixture
def shop(pg_schema, wh):
    """Tables with realistic distributions in the test's schema:
    orders.customer_id selective (~6,000 values), orders.status three values,
    orders.total 1,000 values, created_at distinct; customers with a primary key."""
    s = sql.Identifier(pg_schema)
    for statement in (
        "CREATE TABLE {s}.customers (id bigint PRIMARY KEY, email text NOT NULL)",
        """CREATE TABLE {s}.orders (
            id bigserial PRIMARY KEY, customer_id bigint NOT NULL, status text NOT NULL,
            total integer NOT NULL, note text, created_at timestamptz NOT NULL)""",
        "INSERT INTO {s}.customers SELECT g, 'c' || g || '@example.com' "
        "FROM generate_series(1, 6000) g",
        """INSERT INTO {s}.orders (customer_id, status, total, note, created_at)
            SELECT 1 + (g * 7919) % 6000, (ARRAY['paid', 'open', 'void'])[1 + g % 3],
                   g % 1000, 'order ' || g, now() - g * interval '1 minute'
            FROM generate_series(1, 60000) g""",
        "ANALYZE {s}.customers",
        "ANALYZE {s}.orders",
    ):
        wh.execute(sql.SQL(statement).format(s=s))
    return pg_schema


@pytest.fixture
def run_statement(wh):
    """Run a statement `times` times with parameters so pg_stat_statements records it."""

    def run(template: str, schema: str, params=(), times: int = 3):
        query = sql.SQL(template).format(s=sql.Identifier(schema))
        for _ in range(times):
            wh.execute(query, list(params))
        return query.as_string(wh)

    return run


@pytest.fixture
def own_database():
    """A database of its own (pg_stat_statements reset there leaves others' stats alone)."""
    name = f"opsconsole_test_q_{uuid.uuid4().hex[:8]}"
    admin = "postgres://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = f"postgres://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        conn.execute("CREATE EXTENSION hypopg")
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def warehouses(settings, warehouse_db):
    """Point WAREHOUSES at given URLs for one test: warehouses(main=url, other=url)."""

    def set_to(**named):
        settings.WAREHOUSES = {"main": warehouse_db, **named}
        return settings.WAREHOUSES

    return set_to
