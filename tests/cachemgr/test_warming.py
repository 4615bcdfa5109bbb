"""Warmers: what they yield is written; limits; runs from the page; demo warmers; start-up."""

import json
from uuid import uuid4

import psycopg
import pytest
from psycopg import sql

from cachemgr import registry
from cachemgr.client import Cache
from cachemgr.services import warming
from cachemgr.tasks import warm_on_worker_start
from jobs.models import Run
from opsconsole.models import AuditEvent

from .conftest import wait_for


@pytest.fixture
def test_warmer(scratch):
    ns = scratch.ns("warm")
    name = f"warmer_{scratch.id}"

    @registry.warmer(ns, name=name, description="numbers")
    def numbers(limit):
        for i in range(250):
            yield (i, {"n": i}) if i % 2 else (i, {"n": i}, 60)

    yield name, ns
    registry.WARMERS.pop(name, None)


@pytest.mark.django_db
def test_it_writes_what_the_warmer_yields(scratch, test_warmer):
    name, ns = test_warmer
    figures = warming.warm("main", name, "tester")
    cache = Cache(client=scratch.redis)
    assert figures["written"] == 250
    assert [cache.get(ns, i) for i in (0, 1, 249)] == [{"n": 0}, {"n": 1}, {"n": 249}]
    assert 50 <= scratch.redis.ttl(f"{ns}:v1:0") <= 75  # 60 s fresh + the stale window
    event = AuditEvent.objects.get(action="cache.warm")
    assert event.params["written"] == 250 and event.params["namespace"] == ns


@pytest.mark.django_db
def test_it_stops_at_the_limit(scratch, test_warmer):
    name, ns = test_warmer
    assert warming.warm("main", name, "tester", limit=7)["written"] == 7
    assert len(set(scratch.redis.scan_iter(match=f"{ns}:*", count=1000))) == 7


def test_it_warms_through_a_run_started_from_the_page(
    celery_worker, client_as, scratch, test_warmer
):
    name, ns = test_warmer
    client = client_as("operator")
    key = uuid4().hex
    data = {"target": "main", "warmer": name, "limit": 100, "request_key": key}
    first = client.post("/cache/warm/start/", data)
    second = client.post("/cache/warm/start/", data)
    assert first["Location"] == second["Location"]
    run = wait_for(Run.objects.get())
    assert run.status == "succeeded", run.error
    assert run.result["written"] == 100
    assert len(set(scratch.redis.scan_iter(match=f"{ns}:*", count=1000))) == 100
    page = client.get("/cache/warm/", {"target": "main"}).content.decode()
    assert name in page and f"#{run.pk}" in page


@pytest.mark.django_db
def test_it_refuses_an_unknown_warmer_with_a_message(client_as):
    client = client_as("operator")
    response = client.post(
        "/cache/warm/start/", {"target": "main", "warmer": "nope", "request_key": "x"}, follow=True
    )
    assert response.status_code == 200
    assert "nope" in response.content.decode()
    assert not Run.objects.exists()


@pytest.fixture
def demo_tables(pg_schema, warehouse_db, settings):
    settings.CACHE_DEMO_SCHEMA = pg_schema
    with psycopg.connect(warehouse_db, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(pg_schema)))
        conn.execute(
            """
            CREATE TABLE plans (id int PRIMARY KEY, name text, price_cents int);
            CREATE TABLE customers (id bigint PRIMARY KEY, name text, email text,
                plan_id int REFERENCES plans (id), country char(2), created_at timestamptz);
            CREATE TABLE payments (id bigserial PRIMARY KEY, customer_id bigint,
                amount_cents bigint, currency char(3), status text, description text,
                created_at timestamptz, updated_at timestamptz);
            INSERT INTO plans VALUES (1, 'free', 0), (2, 'team', 4900);
            INSERT INTO customers SELECT g, 'Customer ' || g, 'c' || g || '@example.com',
                1 + g % 2, 'DE', now() FROM generate_series(1, 30) g;
            INSERT INTO payments (customer_id, amount_cents, currency, status, created_at,
                updated_at)
            SELECT 1 + g % 10, 100, 'EUR', CASE WHEN g % 3 = 0 THEN 'FAILED' ELSE 'COMPLETED' END,
                now(), now() FROM generate_series(1, 100) g;
            """
        )


@pytest.mark.django_db
def test_the_demo_warmers_write_real_rows_from_the_warehouse(own_redis, demo_tables):
    profiles = warming.warm("own", "user_profile", "tester")
    usage = warming.warm("own", "usage_analysis", "tester", limit=5)
    assert profiles["written"] == 30 and usage["written"] == 5
    cache = Cache(client=own_redis.client)
    assert cache.get("user_profile", 1)["plan"] == {"name": "team", "price_cents": 4900}
    summary = cache.get("usage_analysis", 1)
    assert summary["payments"] == 10 and summary["failed"] == 3
    assert summary["paid_cents"] == 700


@pytest.mark.django_db
def test_it_starts_the_configured_warmers_when_a_worker_starts(settings, test_warmer):
    name, _ = test_warmer
    settings.CACHE_WARM_ON_STARTUP = [f"main:{name}"]
    warm_on_worker_start()
    run = Run.objects.get()
    assert run.params == {"target": "main", "warmer": name}
    assert run.actor_name == "worker-startup"


@pytest.mark.django_db
def test_scheduled_warmers_and_the_stats_snapshot_get_beat_entries():
    from django_celery_beat.models import PeriodicTask

    from jobs.schedules import install_default_schedules
    from jobs.tasks import launch_scheduled

    install_default_schedules()
    snapshot = PeriodicTask.objects.get(name="cachemgr: stats snapshot")
    assert snapshot.task == "cachemgr.snapshot_stats" and snapshot.interval.every == 60
    warm = PeriodicTask.objects.get(name="job: cache.warm.usage_analysis")
    kwargs = json.loads(warm.kwargs)
    assert kwargs == {"target": "main", "warmer": "usage_analysis"}
    run = Run.objects.get(pk=launch_scheduled("cache.warm.usage_analysis", **kwargs))
    assert run.params == kwargs and run.actor_name.startswith("schedule:")
