"""`make demo`'s first minute: once `demo_setup` returns, the console has figures to show.

demo_setup runs as demo.sh runs it (migrations, each app's loaders, the admin, the
console's part); then the worker's start-up snapshots; then the dashboard is read."""

import json

import pytest
from django.core.management import call_command

from cachemgr import demo as cache_demo
from cachemgr.services import stats
from jobs import demo as jobs_demo
from jobs.models import Run
from opsconsole import dashboard
from partitions.queries import demo as queries_demo
from partitions.queries import slow
from tests.jobs.conftest import wait_for
from tests.queries.conftest import own_database, warehouses  # noqa: F401  (fixtures)


@pytest.fixture
def small_demo(own_database, warehouses, monkeypatch):  # noqa: F811
    """The demo's data at a test's size, in a warehouse database of this test's own."""
    warehouses(main=own_database)
    monkeypatch.setattr(jobs_demo, "DEMO_PAYMENTS", 2_000)
    monkeypatch.setattr(queries_demo, "FIRST_ORDERS", 5_000)
    monkeypatch.setattr(queries_demo, "DEMO_ORDERS", 20_000)
    monkeypatch.setattr(queries_demo, "FILL_BATCH", 10_000)
    for name in ("RESPONSES", "RECOMMENDATIONS", "SESSIONS"):
        monkeypatch.setattr(cache_demo, name, 50)


def test_it_populates_the_dashboard_before_the_full_load(celery_worker, small_demo, capsys):
    call_command("demo_setup", "--migrate", "--json")
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["loader_seconds"]) >= {"jobs.demo", "partitions.queries.demo"}
    run = Run.objects.get(name=queries_demo.FULL_LOAD_JOB)
    assert summary["console"]["partitions.queries.demo"].startswith(
        f"demo_shop_orders: run #{run.pk}"
    )
    stats.snapshot_all()  # what a worker does when it starts (SNAPSHOTS_ON_WORKER_START)
    slow.snapshot_all()

    tiles = dashboard.context()
    assert [tile["hit_rate"] is not None for tile in tiles["cache_tiles"]] == [True]
    assert "<svg" in tiles["cache_tiles"][0]["sparkline"]  # two points: drawn at once
    assert tiles["slow_queries"] and all(
        "orders" in q.query or "customers" in q.query for q in tiles["slow_queries"]
    )
    assert run.pk in {event.run_id for event in tiles["events"]}  # linked from the dashboard

    assert wait_for(run, timeout=60).status == "succeeded", run.error
    assert queries_demo.orders_loaded() == 20_000
    call_command("demo_setup", "--json")  # a second `make demo`: nothing left to load
    again = json.loads(capsys.readouterr().out)
    assert again["console"]["partitions.queries.demo"] == "full table loaded"
    assert again["partitions.queries.demo"]["statements_run"] == 0
