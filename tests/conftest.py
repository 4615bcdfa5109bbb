"""Shared fixtures. Every service is real: Redis, PostgreSQL, a Celery worker."""

import time
import uuid

import psycopg
import pytest
import redis
from celery.worker import state as worker_state
from django.conf import settings
from psycopg import sql

from jobs import workers
from opsconsole import health
from opsconsole.roles import set_role

# Fixtures of their own modules: `page` (Playwright + Chromium), the BigQuery emulator.
pytest_plugins = ["tests.browser", "tests.bigquery"]

PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
WAREHOUSE_DB = settings.TEST_WAREHOUSE_DB


@pytest.fixture
def make_user(db, django_user_model):
    def make(role: str | None = "viewer", username: str | None = None, password="pw-for-tests-1"):
        user = django_user_model.objects.create_user(
            username=username or f"{role or 'norole'}-{uuid.uuid4().hex[:6]}", password=password
        )
        if role:
            set_role(user, role)
        return user

    return make


@pytest.fixture
def client_as(client, make_user):
    """client_as("operator") -> a test client logged in as a fresh operator."""

    def login(role: str | None):
        user = make_user(role)
        client.force_login(user)
        client.user = user
        return client

    return login


@pytest.fixture(scope="session")
def broker():
    """The test broker's Redis; this process's queue and keys are its own (tests/settings.py)."""
    conn = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    yield conn
    conn.delete(settings.CELERY_TASK_DEFAULT_QUEUE)
    for key in conn.scan_iter(match=settings.KEY_PREFIX + "*", count=1000):
        conn.unlink(key)
    conn.close()


@pytest.fixture(scope="session")
def _session_worker(broker, django_db_setup, django_db_blocker):
    from celery.contrib.testing.worker import start_worker

    from opsconsole.celery import app

    with (
        django_db_blocker.unblock(),
        start_worker(
            app, pool="threads", concurrency=2, perform_ping_check=False, shutdown_timeout=10
        ) as worker,
    ):
        # The in-thread worker reports itself like a real one (Celery sends no
        # worker_ready for it), without the reaper: tests call runner.reap() themselves.
        reporter = workers.Snapshots(worker.hostname, 2, reaps=False)
        reporter.start()
        yield worker
        reporter.stopped.set()
        reporter.join(timeout=5)


@pytest.fixture
def celery_worker(_session_worker, transactional_db):
    """A real Celery worker (threads) consuming the test broker. When the test ends, the
    tasks it left running (a run it launched and did not wait for, a notification) finish
    before its database is flushed: a task still writing would deadlock the flush."""
    yield _session_worker
    deadline = time.monotonic() + 30
    while worker_state.active_requests or worker_state.reserved_requests:
        if time.monotonic() > deadline:
            break  # a task that never ends is the test's own failure to report
        time.sleep(0.05)


@pytest.fixture(scope="session")
def warehouse_db():
    """The PostgreSQL database that plays the warehouse in tests."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [WAREHOUSE_DB])
        if not exists.fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(WAREHOUSE_DB)))
    url = f"postgres://postgres@127.0.0.1:5432/{WAREHOUSE_DB}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
    return url


@pytest.fixture
def pg_schema(warehouse_db):
    """A fresh schema in the warehouse database for one test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(warehouse_db, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(warehouse_db, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture(scope="session", autouse=True)
def _end_stray_sessions(django_db_setup, django_db_blocker):
    """Threads (the in-thread worker, the live server) may leave a connection to the test
    database open; end them so that PostgreSQL can drop it after the session."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(autouse=True)
def _fresh_worker_probe():
    """Readiness caches its worker probe for a few seconds: each test asks afresh."""
    health.worker_probe.forget()
    yield
