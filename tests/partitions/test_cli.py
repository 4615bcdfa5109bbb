"""The CLI twin: list, plan, migrate, status, rollback."""

import json

import pytest
from django.core.management import CommandError, call_command
from psycopg import sql

from partitions import faults
from partitions.models import Migration, MigrationState

from .conftest import checksum, connect, relkind, run_inline
from .test_postgres_migration import plan_and_start


@pytest.fixture
def payments(payments_with_null_keys):
    """Here the payments table has NULL keys (1 row in 97)."""
    return payments_with_null_keys


def cli(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("partitions", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_it_lists_tables_as_json(payments):
    tables = json.loads(cli("list", "--warehouse", "main", "--json"))
    assert {"schema": payments, "name": "payments"}.items() <= next(
        t for t in tables if t["schema"] == payments and t["name"] == "payments"
    ).items()


@pytest.mark.django_db
def test_it_plans_and_refuses_to_run_without_yes_and_reason(payments):
    planned = json.loads(
        cli(
            "plan",
            payments,
            "payments",
            "--column",
            "created_at",
            "--granularity",
            "week",
            "--null-keys",
            "lose_uniqueness",
            "--consent",
            "lose uniqueness",
            "--json",
        )
    )
    migration = Migration.objects.get(pk=planned["migration_id"])
    assert planned["plan"]["options"]["granularity"] == "week"

    preview = json.loads(cli("migrate", str(migration.pk), "--reason", "r", "--json"))
    assert preview["dry_run"] is True
    with pytest.raises(CommandError, match="give a reason"):
        cli("migrate", str(migration.pk), "--yes")
    migration.refresh_from_db()
    assert migration.state == MigrationState.PLANNED


@pytest.mark.django_db
def test_it_refuses_a_bad_column_with_a_clear_error(payments):
    with pytest.raises(CommandError, match="needs a timestamp, date, integer or UUIDv7 column"):
        cli("plan", payments, "payments", "--column", "status")


@pytest.mark.django_db
def test_it_plans_hash_and_list_partitioning_and_refuses_bad_figures(payments):
    planned = json.loads(
        cli(
            "plan",
            payments,
            "payments",
            "--column",
            "customer_id",
            "--scheme",
            "hash",
            "--modulus",
            "16",
            "--json",
        )
    )
    assert len(planned["plan"]["partitions"]) == 16
    assert planned["plan"]["estimates"]["scheme"] == "hash on customer_id into 16 partitions"
    text = cli("plan", payments, "payments", "--column", "id", "--width", "500")
    assert "'scheme': 'ranges of 500 id values'" in text
    with pytest.raises(CommandError, match="modulus must be between 2 and 64"):
        cli("plan", payments, "payments", "--column", "id", "--scheme", "hash", "--modulus", "99")
    with pytest.raises(CommandError, match="more than 100 distinct values"):
        cli("plan", payments, "payments", "--column", "description", "--scheme", "list")
    with pytest.raises(CommandError, match="width of an integer range must be at least 1"):
        cli("plan", payments, "payments", "--column", "id", "--width", "0")


def test_it_migrates_watches_and_rolls_back_from_the_command_line(
    payments, warehouse_db, celery_worker
):
    before = checksum(warehouse_db, payments, "payments")
    with pytest.raises(CommandError, match="rows have no created_at.*lose uniqueness"):
        cli("plan", payments, "payments", "--column", "created_at")  # refused by default
    accept = ["--null-keys", "lose_uniqueness", "--consent", "lose uniqueness"]
    planned = json.loads(
        cli("plan", payments, "payments", "--column", "created_at", *accept, "--json")
    )
    migration_id = str(planned["migration_id"])

    ran = json.loads(
        cli("migrate", migration_id, "--yes", "--reason", "cli test", "--wait", "--json")
    )
    assert ran["status"] == "succeeded", ran["error"]
    assert relkind(warehouse_db, payments, "payments") == "p"
    status = json.loads(cli("status", migration_id, "--json"))
    assert status[0]["state"] == "succeeded"
    assert {s["status"] for s in status[0]["steps"]} == {"done"}
    assert status[0]["lock_holds_ms"]["swap"] > 0

    back = json.loads(
        cli("rollback", migration_id, "--yes", "--reason", "undo", "--wait", "--json")
    )
    assert back["status"] == "succeeded", back["error"]
    assert relkind(warehouse_db, payments, "payments") == "r"
    assert checksum(warehouse_db, payments, "payments") == before
    holds = json.loads(cli("status", migration_id, "--json"))[0]["lock_holds_ms"]
    assert set(holds) == {"swap", "rollback"}


@pytest.mark.django_db
def test_status_shows_the_copy_and_catch_up_eta_while_they_run(
    payments, warehouse_db, make_user, settings
):
    settings.PARTITIONS_REPLAY_BATCH = 20  # rounds short enough to watch
    settings.PARTITIONS_LOCK_BACKLOG = 0
    migration = plan_and_start(make_user("admin"), payments)
    seen = {}

    def status(key: str):
        def read():
            seen[key] = json.loads(cli("status", str(migration.pk), "--json"))[0]["eta"]

        return read

    def write_a_backlog():
        with connect(warehouse_db) as conn:
            t = sql.Identifier(payments, "payments")
            conn.execute(sql.SQL("UPDATE {} SET status = 'LATE' WHERE id <= 200").format(t))

    faults.arm("copy", 3, action=status("copy"))
    faults.arm("copy", 4, action=write_a_backlog)
    faults.arm("catch_up", 2, action=status("catch_up"))

    run_inline(migration)

    copy = seen["copy"]["copy"]
    assert copy["batches_done"] >= 1 and copy["rows_per_s"] > 0 and copy["eta_s"] > 0
    catch_up = seen["catch_up"]["catch_up"]
    assert catch_up["replayed"] == 40 and catch_up["backlog"] == 160
    assert catch_up["replay_rate"] > 0 and catch_up["eta_s"] > 0
