"""The demo data: a BigQuery payments table in the emulator when one is configured."""

import uuid

import pytest

from partitions import backends, demo
from tests.bigquery import BQ_PROJECT

from .conftest import ACCEPT_NULL_KEYS


def test_it_seeds_the_bigquery_demo_table_once(bq_emulator, settings):
    dataset = f"demo_{uuid.uuid4().hex[:8]}"
    settings.WAREHOUSES = {
        "analytics": f"bigquery://{BQ_PROJECT}/{dataset}?endpoint={bq_emulator}",
    }
    backend = backends.for_warehouse("analytics")
    try:
        assert demo.seed() == {"analytics": f"payments created with {demo.DEMO_ROWS} rows"}
        assert demo.seed() == {"analytics": "payments already there"}
        rows = backend.query(f"SELECT COUNT(*) FROM {backend.name('payments')}")[0][0]
        assert rows == demo.DEMO_ROWS
    finally:
        backend.client.delete_dataset(
            f"{BQ_PROJECT}.{dataset}", delete_contents=True, not_found_ok=True
        )
        backend.close()


def test_it_says_when_no_emulator_warehouse_is_configured(settings, warehouse_db):
    settings.WAREHOUSES = {"main": warehouse_db}
    assert "PostgreSQL demo only" in demo.seed()["bigquery"]


@pytest.mark.django_db
def test_it_polls_the_migration_status_only_while_its_run_is_active(client_as, payments):
    from jobs.models import Run, RunStatus
    from partitions import services

    client = client_as("operator")
    migration = services.plan_migration(
        client.user,
        "main",
        payments,
        "payments",
        {"column": "created_at", "granularity": "month", **ACCEPT_NULL_KEYS},
    )
    run = Run.objects.create(name="partition_migration", status=RunStatus.RUNNING, actor_name="t")
    type(migration).objects.filter(pk=migration.pk).update(run=run)
    url = f"/partitions/migrations/{migration.pk}/"
    assert 'hx-trigger="every 1s"' in client.get(url, HTTP_HX_REQUEST="true").text
    Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    assert "hx-trigger" not in client.get(url, HTTP_HX_REQUEST="true").text
