import time

import psycopg
import pytest
from psycopg import sql

from jobs.models import ACTIVE_STATUSES, Run

from . import testjobs


def wait_for(
    run: Run, statuses=("succeeded", "failed", "cancelled", "timed_out", "lost"), timeout=20.0
) -> Run:
    """Poll the database until the run reaches one of `statuses`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status in statuses:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run #{run.pk} still {run.status} after {timeout} s")


@pytest.fixture
def release_slow_jobs(celery_worker):
    """Slow test jobs run until released; released (and finished) when the test ends,
    before the worker fixture waits for the test's tasks to end."""
    testjobs.released.clear()
    yield testjobs.released
    testjobs.released.set()
    # The next test must not meet this one's run still holding the exclusive lock.
    deadline = time.monotonic() + 10
    while Run.objects.filter(name="test_slow", status__in=ACTIVE_STATUSES).exists():
        assert time.monotonic() < deadline, "a test_slow run did not stop after its release"
        time.sleep(0.05)


@pytest.fixture
def source(warehouse_db, pg_schema, settings):
    """A payments-shaped source table with 1,000 rows in this test's schema."""
    settings.WAREHOUSES = {"main": warehouse_db}
    with psycopg.connect(warehouse_db, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                """CREATE TABLE {t} (
                    id bigserial PRIMARY KEY, customer_id bigint NOT NULL,
                    amount_cents bigint NOT NULL, status text NOT NULL,
                    note text, updated_at timestamptz NOT NULL)"""
            ).format(t=sql.Identifier(pg_schema, "payments"))
        )
        add_rows(conn, pg_schema, 1000)
    return pg_schema


def add_rows(conn, schema, count):
    # Many rows share one timestamp, so batch boundaries fall inside ties.
    conn.execute(
        sql.SQL(
            """INSERT INTO {t} (customer_id, amount_cents, status, note, updated_at)
               SELECT g %% 37, g * 7, 'PENDING', CASE WHEN g %% 5 = 0 THEN NULL ELSE 'n' || g END,
                      timestamptz '2026-01-01' + make_interval(mins => g / 10)
               FROM generate_series(1, %s) AS g"""
        ).format(t=sql.Identifier(schema, "payments")),
        [count],
    )


def fingerprint(url, schema, table):
    with psycopg.connect(url) as conn:
        return conn.execute(
            sql.SQL("SELECT count(*), sum(hashtextextended(t::text, 0)) FROM {} AS t").format(
                sql.Identifier(schema, table)
            )
        ).fetchone()
