"""After a migration: the table page, dropping the kept original, readiness pings."""

import pytest

from opsconsole.models import AuditEvent
from partitions import services, warehouses
from partitions.models import Migration, MigrationState

from .conftest import ACCEPT_NULL_KEYS, relkind, run_inline, tables_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def migrated(payments, make_user):
    admin = make_user("admin")
    migration = services.plan_migration(
        admin,
        "main",
        payments,
        "payments",
        {"column": "created_at", "granularity": "month", **ACCEPT_NULL_KEYS},
    )
    Migration.objects.filter(pk=migration.pk).update(state=MigrationState.RUNNING)
    migration.refresh_from_db()
    run_inline(migration)
    migration.refresh_from_db()
    return migration


def test_it_shows_each_partition_of_a_migrated_table(client_as, migrated):
    response = client_as("viewer").get(
        f"/partitions/main/table/?schema={migrated.schema}&table=payments"
    )
    assert response.status_code == 200
    assert "payments_p20240101" in response.text and "payments_default" in response.text
    assert "Plan a partition migration" not in response.text


def test_it_lets_only_an_admin_drop_the_kept_original(client_as, migrated, warehouse_db):
    old = migrated.plan["names"]["old"]
    response = client_as("operator").post(
        f"/partitions/migrations/{migrated.pk}/drop-original/", {"confirm": "payments"}
    )
    assert response.status_code == 403
    assert old in tables_in(warehouse_db, migrated.schema)

    response = client_as("admin").post(
        f"/partitions/migrations/{migrated.pk}/drop-original/", {"confirm": "payments"}
    )

    assert response.status_code == 302
    assert tables_in(warehouse_db, migrated.schema) == {"payments", "customers"}
    assert relkind(warehouse_db, migrated.schema, "payments") == "p"
    migrated.refresh_from_db()
    assert migrated.result["original_dropped"] is True
    assert AuditEvent.objects.filter(action="partitions.drop_original", outcome="ok").count() == 1
    with pytest.raises(services.MigrationRefused, match="original table was dropped"):
        services.rollback_migration("tester", migrated, reason="too late")


def test_it_refuses_a_rollback_without_a_reason_as_a_form_error(client_as, migrated):
    response = client_as("operator").post(
        f"/partitions/migrations/{migrated.pk}/rollback/", {"reason": ""}
    )
    assert response.status_code == 400
    migrated.refresh_from_db()
    assert migrated.state == MigrationState.SUCCEEDED and migrated.rollback_run is None


def test_it_previews_retention_on_its_page(client_as, migrated):
    response = client_as("operator").get("/partitions/retention/")
    assert response.status_code == 200
    assert migrated.target in response.text
    assert not AuditEvent.objects.filter(action__startswith="partitions.retention").exists()


def test_it_pings_postgres_and_refuses_unknown_schemes(warehouse_db):
    assert warehouses.ping(warehouse_db).detail.startswith("PostgreSQL 15")
    with pytest.raises(ValueError, match="unsupported warehouse scheme"):
        warehouses.ping("mysql://localhost/x")
    with pytest.raises(Exception, match="connection"):
        warehouses.ping("postgres://postgres@127.0.0.1:9/nothing")
