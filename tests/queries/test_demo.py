"""The demo workload gives the Queries pages something real to show."""

import psycopg
import pytest

from partitions.queries import advisor, demo, health
from partitions.queries.models import StatementSnapshot
from tests.jobs.conftest import wait_for


@pytest.mark.django_db
def test_it_seeds_a_workload_with_suggestions_and_findings(pg_schema):
    outcome = demo.seed(schema=pg_schema, orders=40_000)
    assert outcome["created"] and outcome["statements_run"] > 1000
    advice = advisor.suggest_indexes("main", min_mean_ms=0, containing=pg_schema)
    tables = {(s.table, s.columns[0]) for s in advice.suggestions}
    assert ("orders", "customer_id") in tables
    assert ("orders", "lower(note)") in tables  # an expression index
    by_default = advisor.suggest_indexes("main", containing=pg_schema)  # no threshold given
    assert ("orders", "customer_id") in {(s.table, s.columns[0]) for s in by_default.suggestions}
    assert {s.schema for s in by_default.suggestions} == {pg_schema}
    report = health.index_health("main", schema=pg_schema)
    assert {r["name"] for r in report.redundant} == {"orders_created_idx", "orders_status_idx"}
    assert [f["name"] for f in report.unindexed_foreign_keys] == ["orders_customer_id_fkey"]
    assert len(report.n_plus_one) == 1
    assert demo.seed(schema=pg_schema, orders=40_000)["created"] is False


def test_it_loads_the_full_orders_table_in_a_run(
    celery_worker, own_database, warehouses, monkeypatch
):
    warehouses(main=own_database)
    monkeypatch.setattr(demo, "FILL_BATCH", 10_000)
    demo.seed(orders=5_000, full=30_000)
    run = demo.start_full_load("cli:test", orders=30_000)
    assert wait_for(run, timeout=60).status == "succeeded", run.error
    assert demo.orders_loaded() == 30_000
    assert (run.progress_done, run.progress_total) == (30_000, 30_000)
    with psycopg.connect(own_database) as conn:  # the small table's indexes, not the copy's
        schemas = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'shop%'")
        assert [name for (name,) in schemas] == ["shop"]
    report = health.index_health("main", schema="shop")
    assert {r["name"] for r in report.redundant} == {"orders_created_idx", "orders_status_idx"}
    assert [f["name"] for f in report.unindexed_foreign_keys] == ["orders_customer_id_fkey"]
    latest = StatementSnapshot.objects.filter(warehouse="main").latest("taken_at")
    assert latest.taken_at > run.started_at  # the workload on the full table, snapshotted
    assert demo.start_full_load("cli:test", orders=30_000) is None  # loaded: nothing to do


def test_a_second_seed_keeps_the_recorded_workload(own_database, warehouses):
    warehouses(main=own_database)
    assert demo.seed(orders=2_000, full=4_000)["statements_run"] > 1000
    assert demo.seed(orders=2_000, full=4_000) | {"seconds": 0} == {
        "schema": "shop",
        "created": False,
        "statements_run": 0,
        "seconds": 0,
    }
