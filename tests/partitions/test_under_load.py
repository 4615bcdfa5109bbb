"""Catch-up and short locks: the swap and the rollback with a writer running, and a
worker killed during the catch-up. Rows lost are counted by checksum against a
twin on which the writer's log is replayed."""

import itertools

import pytest
from psycopg import sql

from partitions import faults, services
from partitions.models import Migration, MigrationState
from tests.jobs.conftest import wait_for
from tests.jobs.processes import kill_worker
from tests.jobs.test_faults import (  # noqa: F401 - fixtures
    private_broker,  # noqa: F811 - the fixture imported above
    wait_until,
    worker_processes,  # noqa: F811 - the fixture imported above
)

from .conftest import (
    LoggedWriter,
    checksum,
    connect,
    create_payments,
    make_twin,
    relkind,
    run_inline,
)
from .test_postgres_migration import plan_and_start

pytestmark = pytest.mark.django_db


@pytest.fixture
def payments(payments_with_null_keys):
    """Here the payments table has NULL keys (1 row in 97)."""
    return payments_with_null_keys


def test_it_swaps_while_a_writer_writes_and_loses_no_row(
    warehouse_db, payments, make_user, settings
):
    settings.PARTITIONS_LOCK_BACKLOG = 20
    make_twin(warehouse_db, payments)
    writer = LoggedWriter(warehouse_db, payments, "payments", owned_above=0)
    writer.start()  # from before the plan until after the swap
    wait_until(lambda: writer.done > 20, 10, "the writer writes")
    migration = plan_and_start(make_user("admin"), payments, throttle_ms=10)
    at_swap = {}
    faults.arm("swap", 0, action=lambda: at_swap.setdefault("writes", writer.done))

    _run, result = run_inline(migration)

    wait_until(lambda: writer.done > at_swap["writes"] + 50, 10, "writes after the swap")
    writer.finish()
    writer.replay_on("twin")
    assert relkind(warehouse_db, payments, "payments") == "p"
    assert checksum(warehouse_db, payments, "payments") == checksum(warehouse_db, payments, "twin")
    swap = result["swap"]
    assert swap["caught_up"]["backlog_left"] <= 20  # the lock came after the catch-up
    assert swap["replayed_under_lock"] < 200
    assert swap["lock_hold_ms"] < 2000
    assert result["verify"]["replayed"] > 0
    migration.refresh_from_db()
    assert migration.lock_holds_ms == {"swap": swap["lock_hold_ms"]}


def test_it_rolls_back_under_writes_locking_only_for_the_last_ones(
    warehouse_db, payments, make_user, settings
):
    settings.PARTITIONS_LOCK_BACKLOG = 30
    settings.PARTITIONS_REPLAY_BATCH = 500
    migration = plan_and_start(make_user("admin"), payments)
    run_inline(migration)
    make_twin(warehouse_db, payments)
    backlog = 2500  # one statement, as many captured writes, on rows the writer leaves alone
    bulk = "UPDATE {} SET amount_cents = amount_cents * 3, status = 'BULK' WHERE id <= %s"
    with connect(warehouse_db) as conn:
        for table in ("payments", "twin"):
            t = sql.Identifier(payments, table)
            conn.execute(sql.SQL(bulk).format(t), [backlog])
    writer = LoggedWriter(warehouse_db, payments, "payments", owned_above=backlog)
    writer.start()
    wait_until(lambda: writer.done > 100, 20, "the writer writes while swapped")
    Migration.objects.filter(pk=migration.pk).update(state=MigrationState.ROLLING_BACK)

    _run, result = run_inline(migration, name="partition_rollback")

    written = writer.done
    wait_until(lambda: writer.done > written + 50, 10, "writes after the rollback")
    writer.finish()
    writer.replay_on("twin")
    assert relkind(warehouse_db, payments, "payments") == "r"
    assert checksum(warehouse_db, payments, "payments") == checksum(warehouse_db, payments, "twin")
    assert result["replayed_since_swap"] >= backlog + 100
    # The lock covered the last few writes only, not the backlog, and was held for a
    # fraction of the time the catch-up outside it took.
    assert result["replayed_under_lock"] <= 30 + 50
    assert result["catch_up"]["replayed"] >= backlog
    assert result["lock_hold_ms"] < result["catch_up"]["seconds"] * 1000
    assert result["identical_to_partitioned"]
    migration.refresh_from_db()
    assert set(migration.lock_holds_ms) == {"swap", "rollback"}


def test_a_worker_killed_during_the_catch_up_resumes_and_loses_no_row(
    transactional_db,
    private_broker,  # noqa: F811 - the fixture imported above
    worker_processes,  # noqa: F811 - the fixture imported above
    warehouse_db,
    pg_schema,
    make_user,
    settings,
):
    settings.WAREHOUSES = {"main": warehouse_db}
    settings.PARTITIONS_REPLAY_BATCH = 50  # many short rounds: room to kill one
    settings.PARTITIONS_LOCK_BACKLOG = 0
    create_payments(warehouse_db, pg_schema, rows=20_000)
    procs = {name: worker_processes(name) for name in ("w1", "w2")}
    actor = make_user("admin")
    # 100 batches with a pause after each: the writes below land during the copy.
    options = {
        "column": "created_at",
        "granularity": "month",
        "batch_rows": 200,
        "throttle_ms": 100,
    }
    migration = services.plan_migration(actor, "main", pg_schema, "payments", options)
    services.start_migration(actor, migration, confirm="payments", reason="test")
    run = Migration.objects.get(pk=migration.pk).run

    def at(prefix: str):
        def check():
            run.refresh_from_db()
            return run.status == "running" and run.progress_message.startswith(prefix)

        return check

    wait_until(at("copy: copied batch"), 120, lambda: f"copying ({run.progress_message})")
    with connect(warehouse_db) as conn:  # 40,000 captured writes to catch up on
        t = sql.Identifier(pg_schema, "payments")
        conn.execute(sql.SQL("UPDATE {} SET amount_cents = amount_cents + 1").format(t))
        conn.execute(sql.SQL("UPDATE {} SET status = 'TWICE'").format(t))
    expected = checksum(warehouse_db, pg_schema, "payments")

    def catching_up() -> str | None:
        """The step catching up on more than 5,000 writes (its checkpoint is committed
        after every replay round), if any."""
        for step in migration.steps.filter(name__in=("verify", "swap"), status="running"):
            if step.checkpoint.get("catch_up", {}).get("backlog", 0) > 5000:
                return step.name
        return None

    step = wait_until(catching_up, 180, lambda: f"catching up ({run.progress_message})")
    run.refresh_from_db()
    holder = run.worker.split("@")[0]
    kill_worker(procs[holder])  # the whole worker, mid-round

    run = wait_for(run, timeout=300)
    assert run.status == "succeeded", run.error
    assert run.attempts[0]["outcome"] == "lost"
    migration.refresh_from_db()
    detail = migration.steps.get(name=step).detail  # the next attempt finished the catch-up
    assert (detail.get("catch_up") or detail.get("caught_up"))["replayed"] > 0
    assert migration.state == MigrationState.SUCCEEDED
    assert checksum(warehouse_db, pg_schema, "payments") == expected
    assert checksum(warehouse_db, pg_schema, migration.plan["names"]["old"]) == expected


def test_a_catch_up_that_writes_outrun_fails_clearly_and_rolls_back(
    warehouse_db, payments, make_user, settings
):
    settings.PARTITIONS_CATCH_UP_STALL_S = 1.0
    settings.PARTITIONS_REPLAY_BATCH = 10
    settings.PARTITIONS_LOCK_BACKLOG = 0
    migration = plan_and_start(make_user("admin"), payments)
    before = checksum(warehouse_db, payments, "payments")
    rows = itertools.count()

    def write(count: int):
        def update():  # `count` captured writes, more than a replay round applies
            ids = [next(rows) % 500 + 1 for _ in range(count)]
            with connect(warehouse_db) as conn:
                t = sql.Identifier(payments, "payments")
                conn.execute(
                    sql.SQL(
                        "UPDATE {} SET amount_cents = amount_cents + 1 WHERE id = ANY(%s)"
                    ).format(t),
                    [ids],
                )
                conn.execute(
                    sql.SQL(
                        "UPDATE {} SET amount_cents = amount_cents - 1 WHERE id = ANY(%s)"
                    ).format(t),
                    [ids],
                )

        return update

    faults.arm("copy", 1, action=write(100))
    for n in range(2000):
        faults.arm("catch_up", n, action=write(15))

    with pytest.raises(Exception, match="the catch-up makes no headway"):
        run_inline(migration)

    migration.refresh_from_db()
    assert migration.state == MigrationState.FAILED
    assert "run the migration at a quieter time" in migration.error
    assert relkind(warehouse_db, payments, "payments") == "r"
    assert checksum(warehouse_db, payments, "payments") == before
