"""What a migration carries over besides rows: identity columns with their position,
user triggers (firing once per write, never for replayed ones), and what it refuses."""

import pytest
from psycopg import sql

from partitions import faults
from partitions.models import Migration, MigrationState

from .conftest import checksum, connect, relkind, run_inline
from .test_postgres_migration import plan_and_start

pytestmark = pytest.mark.django_db


def create_orders(url: str, schema: str, rows: int = 500) -> None:
    with connect(url) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
                " created_at timestamptz NOT NULL, note text)"
            ).format(sql.Identifier(schema, "orders"))
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (created_at, note) SELECT timestamptz '2024-01-01'"
                " + g * interval '13 hours', 'o' || g FROM generate_series(1, %s) g"
            ).format(sql.Identifier(schema, "orders")),
            [rows],
        )


def insert_order(url: str, schema: str, note: str) -> int:
    with connect(url) as conn:
        return conn.execute(
            sql.SQL(
                "INSERT INTO {} (created_at, note) VALUES ('2024-03-03', %s) RETURNING id"
            ).format(sql.Identifier(schema, "orders")),
            [note],
        ).fetchone()[0]


def test_an_identity_column_goes_on_from_its_position_after_the_swap_and_the_rollback(
    warehouse_db, pg_schema, make_user
):
    create_orders(warehouse_db, pg_schema)
    migration = plan_and_start(make_user("admin"), pg_schema, table="orders")
    assert any(d["kind"] == "identity column" for d in migration.plan["dependents"])

    run_inline(migration)

    assert relkind(warehouse_db, pg_schema, "orders") == "p"
    assert insert_order(warehouse_db, pg_schema, "after the swap") == 501
    with connect(warehouse_db) as conn:  # still GENERATED ALWAYS on the new table
        identity = conn.execute(
            "SELECT attidentity FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'id'",
            [sql.Identifier(pg_schema, "orders").as_string(conn)],
        ).fetchone()[0]
    assert identity == "a"
    Migration.objects.filter(pk=migration.pk).update(state=MigrationState.ROLLING_BACK)

    _run, result = run_inline(migration, name="partition_rollback")

    assert result["replayed_since_swap"] == 1
    assert relkind(warehouse_db, pg_schema, "orders") == "r"
    assert insert_order(warehouse_db, pg_schema, "after the rollback") == 502
    assert checksum(warehouse_db, pg_schema, "orders")[0] == 502


def test_user_triggers_fire_once_per_write_before_during_and_after_the_swap(
    warehouse_db, pg_schema, make_user
):
    create_orders(warehouse_db, pg_schema)
    side = sql.Identifier(pg_schema, "order_events")
    with connect(warehouse_db) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (op text, order_id bigint)").format(side))
        conn.execute(
            sql.SQL(
                "CREATE FUNCTION {f}() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN INSERT INTO {side} VALUES (TG_OP, NEW.id); RETURN NEW; END $$"
            ).format(f=sql.Identifier(pg_schema, "log_order"), side=side)
        )
        conn.execute(
            sql.SQL(
                "CREATE TRIGGER log_order AFTER INSERT OR UPDATE ON {t}"
                " FOR EACH ROW EXECUTE FUNCTION {f}()"
            ).format(
                t=sql.Identifier(pg_schema, "orders"), f=sql.Identifier(pg_schema, "log_order")
            )
        )
    migration = plan_and_start(make_user("admin"), pg_schema, table="orders", batch_rows=100)
    trigger = next(d for d in migration.plan["dependents"] if d["kind"] == "trigger")
    assert not trigger["blocking"] and "re-created" in trigger["carried_over"]
    faults.arm("copy", 2, action=lambda: insert_order(warehouse_db, pg_schema, "during the copy"))

    run_inline(migration)

    insert_order(warehouse_db, pg_schema, "after the swap")
    with connect(warehouse_db) as conn:
        conn.execute(
            sql.SQL("UPDATE {} SET note = 'touched' WHERE id = 7").format(
                sql.Identifier(pg_schema, "orders")
            )
        )
    Migration.objects.filter(pk=migration.pk).update(state=MigrationState.ROLLING_BACK)
    run_inline(migration, name="partition_rollback")  # replays 2 writes: no trigger fires
    insert_order(warehouse_db, pg_schema, "after the rollback")

    with connect(warehouse_db) as conn:
        events = conn.execute(sql.SQL("SELECT op, order_id FROM {} ORDER BY 2").format(side))
        events = events.fetchall()
    assert events == [("UPDATE", 7), ("INSERT", 501), ("INSERT", 502), ("INSERT", 503)]
    assert relkind(warehouse_db, pg_schema, "orders") == "r"


def test_a_disabled_trigger_is_refused_with_the_reason(warehouse_db, pg_schema, make_user):
    create_orders(warehouse_db, pg_schema)
    with connect(warehouse_db) as conn:
        conn.execute(
            sql.SQL(
                "CREATE FUNCTION {f}() RETURNS trigger LANGUAGE plpgsql"
                " AS $$ BEGIN RETURN NEW; END $$"
            ).format(f=sql.Identifier(pg_schema, "noop"))
        )
        t = sql.Identifier(pg_schema, "orders")
        conn.execute(
            sql.SQL(
                "CREATE TRIGGER noop BEFORE INSERT ON {} FOR EACH ROW EXECUTE FUNCTION {}()"
            ).format(t, sql.Identifier(pg_schema, "noop"))
        )
        conn.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER noop").format(t))
    with pytest.raises(Exception, match="trigger noop.*disabled"):
        plan_and_start(make_user("admin"), pg_schema, table="orders")


def test_an_inbound_foreign_key_is_refused_with_the_choices(warehouse_db, payments, make_user):
    with connect(warehouse_db) as conn:
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN joined timestamptz DEFAULT now()").format(
                sql.Identifier(payments, "customers")
            )
        )
    with pytest.raises(Exception, match="inbound foreign key") as refused:
        plan_and_start(make_user("admin"), payments, table="customers", column="joined")
    message = str(refused.value)
    assert "must include the partition column" in message
    assert "Choices: drop payments_customer_id_fkey" in message
    assert "keep" in message and "unpartitioned" in message
