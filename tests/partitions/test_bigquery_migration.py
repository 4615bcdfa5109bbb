"""The same flow against the BigQuery emulator: every effect read back."""

import pytest
import sqlglot

from partitions import faults, services, warehouses
from partitions.backends.base import PlanRefused
from partitions.backends.bigquery import BigQueryBackend
from partitions.models import Migration, MigrationState
from tests.bigquery import bq_checksum

from .conftest import run_inline

pytestmark = pytest.mark.django_db

OPTIONS = {
    "column": "created_at",
    "granularity": "MONTH",
    "clustering": ["customer_id", "status"],
    "retention_days": 2555,
    "batch_rows": 400,
}


def plan_and_start(actor, **options):
    migration = services.plan_migration(actor, "bq", "ignored", "payments", {**OPTIONS, **options})
    services.check_start(actor, migration, "payments", "test")
    Migration.objects.filter(pk=migration.pk).update(state=MigrationState.RUNNING)
    migration.refresh_from_db()
    return migration


def test_it_migrates_a_bigquery_table_and_rolls_it_back(bq_dataset, make_user):
    before = bq_checksum(bq_dataset, "payments")
    migration = plan_and_start(make_user("admin"))

    _run, result = run_inline(migration)

    assert result["swap"]["mode"] in ("rename", "view")
    assert bq_checksum(bq_dataset, "payments") == before
    new = bq_dataset.table(
        migration.plan["names"]["new"] if result["swap"]["mode"] == "view" else "payments"
    )
    assert new.time_partitioning is not None
    assert (
        bq_dataset.query(f"SELECT SUM(n) FROM {bq_dataset.name('payments_by_status')}")[0][0]
        == 1500
    )

    Migration.objects.filter(pk=migration.pk).update(state=MigrationState.ROLLING_BACK)
    _run, undone = run_inline(migration, name="partition_rollback")

    assert undone["swapped_back"] is True
    restored = bq_dataset.table("payments")
    assert restored.table_type == "TABLE" and restored.time_partitioning is None
    assert bq_checksum(bq_dataset, "payments") == before
    left = {
        t.table_id for t in bq_dataset.client.list_tables(bq_dataset.ref("x").rsplit(".", 1)[0])
    }
    assert left == {"payments", "payments_by_status"}


def test_it_resumes_a_bigquery_copy_after_a_worker_death(bq_dataset, make_user):
    before = bq_checksum(bq_dataset, "payments")
    migration = plan_and_start(make_user("admin"))
    faults.arm("copy", 2, attempt=1)

    run, _result = run_inline(migration)

    assert run.attempt == 2
    assert bq_checksum(bq_dataset, "payments") == before


def test_it_refuses_the_swap_and_rolls_back_when_the_table_was_written(bq_dataset, make_user):
    migration = plan_and_start(make_user("admin"))
    table = bq_dataset.name("payments")
    faults.arm(
        "verify",
        0,
        action=lambda: bq_dataset.query(
            f"INSERT INTO {table} (id, created_at) VALUES (99999, TIMESTAMP '2024-05-05')"
        ),
    )

    with pytest.raises(Exception, match="rolled back"):
        run_inline(migration)

    migration.refresh_from_db()
    assert migration.state == MigrationState.FAILED
    assert bq_dataset.table("payments").table_type == "TABLE"
    assert bq_checksum(bq_dataset, "payments")[0] == 1501
    assert bq_dataset.table(migration.plan["names"]["new"]) is None
    assert bq_dataset.table(migration.plan["names"]["backup"]) is None


def test_it_writes_bigquery_sql_that_sqlglot_parses(bq_dataset, make_user):
    migration = services.plan_migration(make_user("operator"), "bq", "x", "payments", OPTIONS)
    statements = [
        s
        for step in migration.plan["steps"]
        for s in step["sql"] + step["rollback"]
        if not s.startswith("--")
    ]
    assert len(statements) > 10
    for statement in statements:
        parsed = sqlglot.parse_one(statement, read="bigquery")
        assert not isinstance(parsed, sqlglot.exp.Command), statement
    create = sqlglot.parse_one(migration.plan["sql"]["create"], read="bigquery")
    assert "TIMESTAMP_TRUNC(`created_at`, MONTH)" in create.sql("bigquery")
    assert "partition_expiration_days = 2555" in migration.plan["sql"]["create"]


@pytest.mark.parametrize("name", ["pay`ments", "a; DROP TABLE x", "x\\y", ""])
def test_it_refuses_names_that_cannot_be_quoted_safely(bq_dataset, name):
    with pytest.raises(PlanRefused, match="invalid BigQuery table name"):
        bq_dataset.name(name)


def test_it_refuses_a_string_column_for_bigquery(bq_dataset, make_user):
    with pytest.raises(PlanRefused, match="only TIMESTAMP, DATETIME and DATE"):
        services.plan_migration(
            make_user("operator"), "bq", "x", "payments", {"column": "status", "granularity": "DAY"}
        )


def test_it_pings_a_bigquery_warehouse_for_readyz(bq_dataset):
    from django.conf import settings

    assert warehouses.ping(settings.WAREHOUSES["bq"]).detail.startswith("BigQuery demo-proj.")
    with pytest.raises(Exception):  # noqa: B017 - any failure is what readyz needs
        warehouses.ping("bigquery://demo-proj/missing_ds?endpoint=http://127.0.0.1:9")
    assert isinstance(bq_dataset, BigQueryBackend)
