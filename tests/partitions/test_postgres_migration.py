"""End-to-end PostgreSQL migrations: concurrent writes, worker deaths, rollback."""

import random

import psycopg
import pytest
from psycopg import sql

from opsconsole.models import AuditEvent
from partitions import faults, services
from partitions.backends.postgres import APPLICATION_NAME
from partitions.models import Migration, MigrationState

from .conftest import (
    ACCEPT_NULL_KEYS,
    Writer,
    checksum,
    connect,
    create_payments,
    relkind,
    run_inline,
    tables_in,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def payments(payments_with_null_keys):
    """Here the payments table has NULL keys (1 row in 97)."""
    return payments_with_null_keys


def plan_and_start(actor, schema, table="payments", **options):
    options = {
        "column": "created_at",
        "granularity": "month",
        "batch_rows": 250,
        **ACCEPT_NULL_KEYS,
        **options,
    }
    migration = services.plan_migration(actor, "main", schema, table, options)
    services.check_start(actor, migration, table, "test")
    Migration.objects.filter(pk=migration.pk).update(state=MigrationState.RUNNING)
    migration.refresh_from_db()
    return migration


def test_it_migrates_while_rows_are_written_and_loses_none(warehouse_db, payments, make_user):
    admin = make_user("admin")
    migration = plan_and_start(admin, payments, throttle_ms=20)
    writer = Writer(warehouse_db, payments, "payments")
    faults.arm("copy", 2, action=writer.start)
    faults.arm("before_swap", 0, action=writer.finish)

    _run, result = run_inline(migration)

    assert writer.done > 5
    assert relkind(warehouse_db, payments, "payments") == "p"
    original = migration.plan["names"]["old"]
    assert checksum(warehouse_db, payments, "payments") == checksum(
        warehouse_db, payments, original
    )
    swap = result["swap"]  # writes replayed before the lock (a retried lock) or under it
    replayed = swap["caught_up"]["replayed"] + swap["replayed_under_lock"]
    assert result["verify"]["replayed"] + replayed > 0
    with connect(warehouse_db) as conn:
        view = sql.Identifier(payments, "payments_by_status")
        by_status = dict(conn.execute(sql.SQL("SELECT status, n FROM {}").format(view)))
    assert by_status["COMPLETED"] > 0 and by_status["NEW"] > 0
    with connect(warehouse_db) as conn:  # the materialized view now refreshes from the new table
        daily = sql.Identifier(payments, "payments_daily")
        conn.execute(sql.SQL("REFRESH MATERIALIZED VIEW CONCURRENTLY {}").format(daily))
        total = conn.execute(sql.SQL("SELECT sum(n) FROM {}").format(daily)).fetchone()[0]
    assert total == checksum(warehouse_db, payments, "payments")[0]


def test_it_rolls_back_to_the_exact_original_with_rows_written_since(
    warehouse_db, payments, make_user
):
    admin = make_user("admin")
    migration = plan_and_start(admin, payments)
    run_inline(migration)
    with connect(warehouse_db) as conn:
        t = sql.Identifier(payments, "payments")
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (customer_id, amount_cents, currency, status, created_at,"
                " updated_at) VALUES (1, 5, 'EUR', 'AFTER', '2024-03-01', now())"
            ).format(t)
        )
        conn.execute(sql.SQL("DELETE FROM {} WHERE id = 7").format(t))
        conn.execute(sql.SQL("UPDATE {} SET status = 'CHANGED' WHERE id = 8").format(t))
    expected = checksum(warehouse_db, payments, "payments")
    Migration.objects.filter(pk=migration.pk).update(state=MigrationState.ROLLING_BACK)

    _run, result = run_inline(migration, name="partition_rollback")

    assert relkind(warehouse_db, payments, "payments") == "r"
    assert checksum(warehouse_db, payments, "payments") == expected
    assert result["replayed_since_swap"] == 3
    assert tables_in(warehouse_db, payments) == {"payments", "customers"}
    with connect(warehouse_db) as conn:
        view = sql.Identifier(payments, "payments_by_status")
        statuses = {r[0] for r in conn.execute(sql.SQL("SELECT status FROM {}").format(view))}
    assert "AFTER" in statuses and "CHANGED" in statuses


def test_it_resumes_from_its_checkpoint_after_a_worker_death_mid_copy(
    warehouse_db, payments, make_user
):
    migration = plan_and_start(make_user("admin"), payments)
    before = checksum(warehouse_db, payments, "payments")
    dies_at = random.randrange(1, len(migration.plan["batches"]))
    faults.arm("copy", dies_at, attempt=1)

    run, result = run_inline(migration)

    assert run.attempt == 2
    assert 0 < result["copy"]["rows_copied_this_attempt"] < before[0]
    assert checksum(warehouse_db, payments, "payments") == before
    assert Migration.objects.get(pk=migration.pk).state == MigrationState.SUCCEEDED


def test_it_ends_consistent_when_the_worker_dies_inside_the_swap(warehouse_db, payments, make_user):
    migration = plan_and_start(make_user("admin"), payments)
    before = checksum(warehouse_db, payments, "payments")
    faults.arm("swap", 0, attempt=1)

    run, _result = run_inline(migration)

    assert run.attempt == 2
    assert relkind(warehouse_db, payments, "payments") == "p"
    assert checksum(warehouse_db, payments, "payments") == before


def test_it_copies_a_table_without_primary_key_exactly(warehouse_db, pg_schema, make_user):
    create_payments(warehouse_db, pg_schema, pk=False)
    with connect(warehouse_db) as conn:  # identical duplicate rows must survive as duplicates
        t = sql.Identifier(pg_schema, "payments")
        conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM {} WHERE id < 40").format(t, t))
    migration = plan_and_start(make_user("admin"), pg_schema, throttle_ms=30)
    writer = Writer(warehouse_db, pg_schema, "payments")
    faults.arm("copy", 1, action=writer.start)
    faults.arm("before_swap", 0, action=writer.finish)

    run_inline(migration)

    assert writer.done > 5
    assert checksum(warehouse_db, pg_schema, "payments") == checksum(
        warehouse_db, pg_schema, migration.plan["names"]["old"]
    )


def test_it_migrates_a_table_with_quotes_spaces_percent_and_unicode_in_its_name(
    warehouse_db, pg_schema, make_user
):
    name = 'Zahlungen "Q1" 100% – é'
    create_payments(warehouse_db, pg_schema, table=name, rows=800)
    before = checksum(warehouse_db, pg_schema, name)
    migration = plan_and_start(make_user("admin"), pg_schema, table=name, granularity="week")

    run_inline(migration)

    assert relkind(warehouse_db, pg_schema, name) == "p"
    assert checksum(warehouse_db, pg_schema, name) == before


def test_it_rolls_back_by_itself_when_verification_finds_a_difference(
    warehouse_db, payments, make_user
):
    migration = plan_and_start(make_user("admin"), payments)
    before = checksum(warehouse_db, payments, "payments")
    new = sql.Identifier(payments, migration.plan["names"]["new"])

    def corrupt():
        with connect(warehouse_db) as conn:
            conn.execute(sql.SQL("UPDATE {} SET amount_cents = -1 WHERE id = 5").format(new))

    faults.arm("verify", 0, action=corrupt)

    with pytest.raises(Exception, match="verification found 1 partition ranges that differ"):
        run_inline(migration)

    migration.refresh_from_db()
    assert migration.state == MigrationState.FAILED
    assert relkind(warehouse_db, payments, "payments") == "r"
    assert checksum(warehouse_db, payments, "payments") == before
    assert tables_in(warehouse_db, payments) == {"payments", "customers"}
    event = AuditEvent.objects.get(action="partitions.auto_rollback")
    assert event.run_id is not None and event.outcome == "ok"


def test_it_refuses_to_verify_when_a_copied_batch_was_lost_with_its_checkpoint(
    warehouse_db, payments, make_user
):
    # what a warehouse crash before the flush of a batch committed without waiting
    # would leave: neither its rows nor its checkpoint (so the fingerprints agree)
    migration = plan_and_start(make_user("admin"), payments)
    before = checksum(warehouse_db, payments, "payments")
    batch = migration.plan["batches"][1]
    names = migration.plan["names"]

    def lose_batch():
        with connect(warehouse_db) as conn:
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE id >= %s AND id < %s").format(
                    sql.Identifier(payments, names["new"])
                ),
                [batch["lo"], batch["hi"]],
            )
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE batch = %s").format(
                    sql.Identifier(payments, names["progress"])
                ),
                [batch["n"]],
            )

    faults.arm("verify", 0, action=lose_batch)

    with pytest.raises(Exception, match="1 copy batches have no checkpoint"):
        run_inline(migration)

    migration.refresh_from_db()
    assert migration.state == MigrationState.FAILED
    assert relkind(warehouse_db, payments, "payments") == "r"
    assert checksum(warehouse_db, payments, "payments") == before


def test_it_fails_into_rollback_when_the_warehouse_goes_away(warehouse_db, payments, make_user):
    migration = plan_and_start(make_user("admin"), payments)
    before = checksum(warehouse_db, payments, "payments")

    def cut_connections():  # the migration's own connection, by its application name
        with connect(warehouse_db) as conn:
            killed = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = %s",
                [APPLICATION_NAME],
            ).fetchone()[0]
        assert killed >= 1

    faults.arm("copy", 3, action=cut_connections)

    with pytest.raises(Exception, match="rolled back"):
        run_inline(migration)

    assert Migration.objects.get(pk=migration.pk).state == MigrationState.FAILED
    assert checksum(warehouse_db, payments, "payments") == before
    assert tables_in(warehouse_db, payments) == {"payments", "customers"}


def test_it_builds_a_primary_key_with_the_partition_column(warehouse_db, pg_schema, make_user):
    create_payments(warehouse_db, pg_schema)
    with connect(warehouse_db) as conn:
        t = sql.Identifier(pg_schema, "payments")
        conn.execute(sql.SQL("DELETE FROM {} WHERE created_at IS NULL").format(t))
        conn.execute(sql.SQL("ALTER TABLE {} ALTER created_at SET NOT NULL").format(t))
    migration = plan_and_start(make_user("admin"), pg_schema)
    run_inline(migration)
    with connect(warehouse_db) as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            sql.SQL("INSERT INTO {} SELECT * FROM {} WHERE id = 3").format(
                sql.Identifier(pg_schema, "payments"), sql.Identifier(pg_schema, "payments")
            )
        )


def test_it_copies_batches_in_parallel_on_separate_connections(
    warehouse_db, payments, make_user, settings
):
    settings.PARTITIONS_COPY_WORKERS = 3
    migration = plan_and_start(make_user("admin"), payments, throttle_ms=30)
    before = checksum(warehouse_db, payments, "payments")
    lanes = []

    with connect(warehouse_db) as conn:
        started = conn.execute("SELECT clock_timestamp()").fetchone()[0]

    def count_connections():  # the run's connections (opened since it started)
        with connect(warehouse_db) as conn:
            lanes.append(
                conn.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND application_name = %s"
                    " AND backend_start >= %s",
                    [APPLICATION_NAME, started],
                ).fetchone()[0]
            )

    for n in (3, 6, 9):
        faults.arm("copy", n, action=count_connections)
    taken = []  # the order the lanes take the batches in
    for batch in migration.plan["batches"]:
        faults.arm("copy", batch["n"], action=lambda n=batch["n"]: taken.append(n))

    _run, result = run_inline(migration)

    assert result["copy"]["workers"] == 3
    assert max(lanes) == 3  # the migration's connection and two more, copying at once
    total = len(migration.plan["batches"])
    assert sorted(taken) == list(range(total))
    # the first three taken at once are a third of the key apart, not neighbours
    assert taken[1] - taken[0] >= total // 3 and taken[2] - taken[1] >= total // 3
    assert checksum(warehouse_db, payments, "payments") == before
