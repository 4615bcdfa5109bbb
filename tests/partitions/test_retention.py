"""Retention: pre-create upcoming partitions and drop expired ones, preview first."""

import pytest

from opsconsole.models import AuditEvent
from partitions import retention, services
from partitions.backends.postgres.catalog import partition_ranges
from partitions.backends.postgres.retention import maintain
from partitions.models import Migration, MigrationState

from .conftest import ACCEPT_NULL_KEYS, checksum, connect, run_inline

pytestmark = pytest.mark.django_db


def migrated(schema, make_user, retention_days):
    admin = make_user("admin")
    migration = services.plan_migration(
        admin,
        "main",
        schema,
        "payments",
        {
            "column": "created_at",
            "granularity": "month",
            "retention_days": retention_days,
            "premake": 1,
            **ACCEPT_NULL_KEYS,
        },
    )
    Migration.objects.filter(pk=migration.pk).update(state=MigrationState.RUNNING)
    migration.refresh_from_db()
    run_inline(migration)
    return migration


def partition_names(url, schema):
    with connect(url) as conn:
        return [name for name, _lo, _hi in partition_ranges(conn, schema, "payments")]


def test_it_previews_then_drops_partitions_past_retention(warehouse_db, payments, make_user):
    migrated(payments, make_user, retention_days=365 * 2 - 300)  # keeps part of 2024's tail
    before = partition_names(warehouse_db, payments)
    rows_before = checksum(warehouse_db, payments, "payments")[0]

    preview = retention.apply_retention("tester", dry_run=True)

    planned = preview["tables"][0]
    assert planned["expired"]
    assert partition_names(warehouse_db, payments) == before
    assert not AuditEvent.objects.filter(action__startswith="partitions.retention").exists()

    done = retention.apply_retention("tester", dry_run=False)

    after = partition_names(warehouse_db, payments)
    assert set(done["tables"][0]["expired"]).isdisjoint(after)
    assert checksum(warehouse_db, payments, "payments")[0] < rows_before
    assert AuditEvent.objects.filter(action="partitions.retention").count() == 1


def test_it_precreates_upcoming_partitions(warehouse_db, payments, make_user):
    migration = migrated(payments, make_user, retention_days=None)
    with connect(warehouse_db) as conn:
        from datetime import date

        later = date.today().replace(day=1).replace(year=date.today().year + 1)
        result = maintain(conn, migration.plan, dry_run=False, today=later)
    assert result["statements"] and all("PARTITION OF" in s for s in result["statements"])
    newest = partition_names(warehouse_db, payments)[-1]
    assert newest.endswith(f"{later.year}{later.month + 1:02d}01") or newest.endswith(
        f"{later.year + 1}0101"
    )
