"""Planning and confirming: the refusals an operator meets, and what a plan holds."""

import pytest
from psycopg import sql

from opsconsole.models import AuditEvent
from partitions import services
from partitions.models import Migration, MigrationState

from .conftest import ACCEPT_NULL_KEYS, connect, create_payments

pytestmark = pytest.mark.django_db


@pytest.fixture
def payments(payments_with_null_keys):
    """Here the payments table has NULL keys (1 row in 97)."""
    return payments_with_null_keys


MONTHLY = {"column": "created_at", "granularity": "month", **ACCEPT_NULL_KEYS}


def test_it_stores_a_hashed_plan_with_sql_and_rollback_for_every_step(payments, make_user):
    migration = services.plan_migration(
        make_user("operator"), "main", payments, "payments", MONTHLY
    )

    assert migration.state == MigrationState.PLANNED
    assert migration.plan_intact
    names = [s["name"] for s in migration.plan["steps"]]
    assert names == ["create", "capture", "copy", "index", "verify", "swap", "post_check"]
    assert all(s["sql"] for s in migration.plan["steps"])
    assert migration.plan["estimates"]["null_keys"] == 30
    assert migration.plan["estimates"]["rows"] == 3000
    kinds = {d["kind"] for d in migration.plan["dependents"]}
    assert {"view", "foreign key", "sequence"} <= kinds
    event = AuditEvent.objects.get(action="partitions.plan")
    assert event.params["migration_id"] == migration.pk


def test_it_refuses_null_keys_unless_the_operator_chooses_to_lose_uniqueness(payments, make_user):
    operator = make_user("operator")
    monthly = {"column": "created_at", "granularity": "month"}
    with pytest.raises(Exception, match="30 rows have no created_at.*Choices") as refused:
        services.plan_migration(operator, "main", payments, "payments", monthly)
    assert 'typed "lose uniqueness"' in str(refused.value)
    chosen = {**monthly, "null_keys": "lose_uniqueness", "consent": "lose uniq"}
    with pytest.raises(Exception, match='type "lose uniqueness" to confirm'):
        services.plan_migration(operator, "main", payments, "payments", chosen)
    assert not Migration.objects.filter(state=MigrationState.PLANNED).exists()

    migration = services.plan_migration(
        operator, "main", payments, "payments", {**chosen, "consent": "Lose uniqueness"}
    )

    assert migration.plan["null_keys"] == "lose uniqueness"
    assert any("you chose to lose uniqueness" in w for w in migration.plan["warnings"])
    index_sql = next(s for s in migration.plan["steps"] if s["name"] == "index")["sql"]
    assert not any("PRIMARY KEY" in statement for statement in index_sql)


def test_a_nullable_key_without_nulls_keeps_a_primary_key_and_says_so(
    warehouse_db, pg_schema, make_user
):
    create_payments(warehouse_db, pg_schema)  # created_at allows NULL, no row has one
    migration = services.plan_migration(
        make_user("operator"),
        "main",
        pg_schema,
        "payments",
        {"column": "created_at", "granularity": "month"},
    )
    assert any("makes it NOT NULL" in w for w in migration.plan["warnings"])
    index_sql = next(s for s in migration.plan["steps"] if s["name"] == "index")["sql"]
    assert any("PRIMARY KEY" in statement for statement in index_sql)


def test_it_refuses_ranges_of_a_column_that_is_no_time_integer_or_uuid(payments, make_user):
    with pytest.raises(Exception, match="needs a timestamp, date, integer or UUIDv7 column"):
        services.plan_migration(
            make_user("operator"),
            "main",
            payments,
            "payments",
            {"column": "status", "granularity": "month"},
        )
    assert not Migration.objects.filter(state=MigrationState.PLANNED).exists()


def test_it_refuses_a_table_that_is_already_partitioned(warehouse_db, pg_schema, make_user):
    with connect(warehouse_db) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {} (id bigint, at timestamptz) PARTITION BY RANGE (at)").format(
                sql.Identifier(pg_schema, "events")
            )
        )
    with pytest.raises(Exception, match="already partitioned"):
        services.plan_migration(
            make_user("operator"),
            "main",
            pg_schema,
            "events",
            {"column": "at", "granularity": "day"},
        )


def test_it_refuses_a_table_that_other_tables_reference(warehouse_db, payments, make_user):
    with connect(warehouse_db) as conn:
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN joined timestamptz DEFAULT now()").format(
                sql.Identifier(payments, "customers")
            )
        )
    with pytest.raises(Exception, match="inbound foreign key"):
        services.plan_migration(
            make_user("operator"),
            "main",
            payments,
            "customers",
            {"column": "joined", "granularity": "month"},
        )


def test_it_refuses_a_second_migration_of_a_running_table(payments, make_user):
    operator = make_user("operator")
    first = services.plan_migration(operator, "main", payments, "payments", MONTHLY)
    Migration.objects.filter(pk=first.pk).update(state=MigrationState.RUNNING)

    with pytest.raises(services.MigrationRefused, match="one at a time"):
        services.plan_migration(operator, "main", payments, "payments", MONTHLY)


def test_it_supersedes_an_unstarted_plan_when_planning_again(payments, make_user):
    operator = make_user("operator")
    first = services.plan_migration(operator, "main", payments, "payments", MONTHLY)
    second = services.plan_migration(operator, "main", payments, "payments", MONTHLY)

    first.refresh_from_db()
    assert first.state == MigrationState.CANCELLED
    assert second.state == MigrationState.PLANNED


def test_it_refuses_to_start_when_the_schema_changed_since_the_plan(
    warehouse_db, payments, make_user
):
    operator = make_user("operator")
    migration = services.plan_migration(operator, "main", payments, "payments", MONTHLY)
    with connect(warehouse_db) as conn:
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN note text").format(
                sql.Identifier(payments, "payments")
            )
        )
    with pytest.raises(services.MigrationRefused, match="changed since this plan"):
        services.start_migration(operator, migration, confirm="payments", reason="r", dry_run=True)


def test_it_refuses_a_tampered_plan(payments, make_user):
    operator = make_user("operator")
    migration = services.plan_migration(operator, "main", payments, "payments", MONTHLY)
    migration.plan["steps"][0]["sql"].append("DROP TABLE important")
    with pytest.raises(services.MigrationRefused, match="does not match its hash"):
        services.start_migration(operator, migration, confirm="payments", reason="r", dry_run=True)


@pytest.mark.parametrize(
    ("confirm", "reason", "message"),
    [("Payments", "why", "type the table name"), ("payments", "  ", "give a reason")],
)
def test_it_requires_the_typed_table_name_and_a_reason(
    payments, make_user, confirm, reason, message
):
    operator = make_user("operator")
    migration = services.plan_migration(operator, "main", payments, "payments", MONTHLY)
    with pytest.raises(services.MigrationRefused, match=message):
        services.start_migration(operator, migration, confirm=confirm, reason=reason)
    migration.refresh_from_db()
    assert migration.state == MigrationState.PLANNED and migration.run is None


def test_it_leaves_large_tables_to_admins(payments, make_user, settings):
    settings.PARTITIONS_ADMIN_ABOVE_BYTES = 1000
    operator, admin = make_user("operator"), make_user("admin")
    migration = services.plan_migration(operator, "main", payments, "payments", MONTHLY)

    with pytest.raises(services.MigrationRefused, match="an admin must start it"):
        services.start_migration(operator, migration, confirm="payments", reason="r", dry_run=True)
    check = services.start_migration(admin, migration, confirm="payments", reason="r", dry_run=True)
    assert check.needs_admin and check.rows == 3000


def test_it_estimates_scan_reduction_from_the_query_history(warehouse_db, payments, make_user):
    with connect(warehouse_db) as conn:
        for _ in range(3):
            conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE created_at >= %s").format(
                    sql.Identifier(payments, "payments")
                ),
                ["2024-06-01"],
            )
    migration = services.plan_migration(
        make_user("operator"), "main", payments, "payments", MONTHLY
    )

    estimate = migration.plan["estimates"]["scan_reduction"]
    assert "filter on the partition column" in estimate
    assert "reads about 1/" in estimate


@pytest.mark.django_db(transaction=True)
def test_it_refuses_a_run_that_the_service_did_not_start(payments, make_user):
    from jobs import runner
    from jobs.models import Run

    migration = services.plan_migration(
        make_user("operator"), "main", payments, "payments", MONTHLY
    )
    Migration.objects.filter(pk=migration.pk).update(state=MigrationState.RUNNING)
    stray = Run.objects.create(
        name="partition_migration",
        params={"migration_id": migration.pk},
        actor_name="x",
        max_attempts=3,
    )
    assert runner.execute(stray.pk) == "failed"  # at once: never retried
    stray.refresh_from_db()
    assert stray.attempt == 1 and "belongs to another run" in stray.error
    assert not migration.steps.exclude(status="pending").exists()
