"""Integer and UUIDv7 ranges, hash and list partitioning, end to end on PostgreSQL:
plan, copy with writes captured meanwhile, verify, swap, rollback, retention."""

from datetime import UTC, date, datetime

import pytest
from psycopg import sql

from partitions import faults, services
from partitions.backends import uuid7
from partitions.backends.base import PlanRefused
from partitions.backends.postgres.retention import maintain
from partitions.models import Migration, MigrationState

from .conftest import (
    Writer,
    checksum,
    connect,
    create_payments,
    relkind,
    run_inline,
    tables_in,
)

pytestmark = pytest.mark.django_db

# A UUIDv7 made in SQL: the millisecond timestamp of `at`, version 7, variant 10, and
# bits of md5(seed) for the rest (PostgreSQL 15 has no uuidv7()).
UUID7_SQL = (
    "CAST(lpad(to_hex((extract(epoch FROM {at}) * 1000)::bigint), 12, '0') || '7'"
    " || substr(md5({seed}), 1, 3) || '8' || substr(md5({seed}), 4, 15) AS uuid)"
)


def execute(url: str, statement: sql.Composable) -> None:
    with connect(url) as conn:
        conn.execute(statement)


def plan(actor, schema: str, table: str, **options):
    return services.plan_migration(actor, "main", schema, table, {"batch_rows": 500, **options})


def migrate_with_writes(url, migration, writes: list[sql.Composable]):
    """Confirm and run the migration; `writes` hit the original after the copy, before
    the verification (captured, so only the replay can bring them). Returns the result."""
    with pytest.raises(services.MigrationRefused, match="type the table name"):
        services.check_start("test", migration, "not the table", "why")
    services.check_start("test", migration, migration.table, "why")
    Migration.objects.filter(pk=migration.pk).update(state=MigrationState.RUNNING)
    migration.refresh_from_db()

    def write() -> None:
        with connect(url) as conn:
            for statement in writes:
                conn.execute(statement)

    faults.arm("verify", 0, action=write)
    _run, result = run_inline(migration)
    return result


def assert_swapped_equal(url, schema, table, migration, writes: int, result: dict) -> None:
    assert relkind(url, schema, table) == "p"
    assert checksum(url, schema, table) == checksum(url, schema, migration.plan["names"]["old"])
    swap = result["swap"]  # replayed by verify, before the swap's lock (when retried) or under it
    replayed = swap["caught_up"]["replayed"] + swap["replayed_under_lock"]
    assert result["verify"]["replayed"] + replayed >= writes


def rolled_back_after(url, schema, table, migration, writes: list[sql.Composable]) -> None:
    """Writes made after the swap, then the rollback: the original serves them all."""
    with connect(url) as conn:
        for statement in writes:
            conn.execute(statement)
    expected = checksum(url, schema, table)
    Migration.objects.filter(pk=migration.pk).update(state=MigrationState.ROLLING_BACK)
    _run, result = run_inline(migration, name="partition_rollback")
    assert relkind(url, schema, table) == "r"
    assert checksum(url, schema, table) == expected
    assert result["replayed_since_swap"] >= len(writes)
    assert table in tables_in(url, schema)


def partition_bounds(url, schema, table) -> dict[str, str]:
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
            [sql.Identifier(schema, table).as_string(conn)],
        )
        return dict(rows.fetchall())


# --- range on an integer key ---------------------------------------------------------


def test_integer_ranges_migrate_with_writes_and_roll_back(warehouse_db, payments, make_user):
    t = sql.Identifier(payments, "payments")
    migration = plan(make_user("admin"), payments, "payments", column="id", width=1000)
    assert migration.plan["estimates"]["scheme"] == "ranges of 1,000 id values"
    assert "ids carry no age" in migration.plan["estimates"]["retention"]
    assert [p["from"] for p in migration.plan["partitions"]] == [
        0,
        1000,
        2000,
        3000,
        4000,
        5000,
        6000,
    ]
    writes = [
        sql.SQL(
            "INSERT INTO {} (id, customer_id, amount_cents, currency, status, created_at,"
            " updated_at) VALUES (5500, 1, 1, 'EUR', 'NEW', now(), now())"
        ).format(t),
        sql.SQL("UPDATE {} SET id = 4100 WHERE id = 10").format(t),  # moves to another range
        sql.SQL("DELETE FROM {} WHERE id = 2500").format(t),
    ]

    result = migrate_with_writes(warehouse_db, migration, writes)

    assert_swapped_equal(warehouse_db, payments, "payments", migration, 3, result)
    bounds = partition_bounds(warehouse_db, payments, "payments")
    assert bounds[migration.plan["names"]["partition_prefix"] + "4000"] == (
        "FOR VALUES FROM ('4000') TO ('5000')"
    )
    rolled_back_after(
        warehouse_db,
        payments,
        "payments",
        migration,
        [
            sql.SQL("UPDATE {} SET id = 10 WHERE id = 4100").format(t),
            sql.SQL("DELETE FROM {} WHERE id = 20").format(t),
        ],
    )


def test_integer_ranges_pick_a_round_width_and_premake_past_the_highest_id(
    warehouse_db, payments, make_user
):
    migration = plan(make_user("admin"), payments, "payments", column="id", premake=2)
    assert migration.plan["options"]["width"] == 1000  # 3,000 ids: about 16 ranges of a power of 10
    Migration.objects.filter(pk=migration.pk).update(state=MigrationState.RUNNING)
    run_inline(migration)
    execute(
        warehouse_db,
        sql.SQL(
            "INSERT INTO {} (id, customer_id, amount_cents, currency, status, updated_at)"
            " VALUES (5200, 1, 1, 'EUR', 'NEW', now())"
        ).format(sql.Identifier(payments, "payments")),
    )
    with connect(warehouse_db) as conn:
        preview = maintain(conn, migration.plan, dry_run=True)
    prefix = migration.plan["names"]["partition_prefix"]
    # 5,200 lies in the range from 5,000: two more ranges above it
    assert [s.split('"')[3] for s in preview["statements"]] == [f"{prefix}6000", f"{prefix}7000"]
    assert preview["expired"] == []


def test_integer_ranges_are_dropped_only_when_the_operator_asks(warehouse_db, payments, make_user):
    migration = plan(
        make_user("admin"), payments, "payments", column="id", width=1000, keep_ranges=2
    )
    assert migration.plan["estimates"]["retention"].startswith(
        "as you asked: ranges below the newest 2 that hold ids are dropped"
    )
    Migration.objects.filter(pk=migration.pk).update(state=MigrationState.RUNNING)
    run_inline(migration)
    prefix = migration.plan["names"]["partition_prefix"]
    with connect(warehouse_db) as conn:
        preview = maintain(conn, migration.plan, dry_run=True)
        # ids 1..3,000 fill the ranges from 0, 1,000, 2,000 and 3,000: the newest two stay
        assert preview["expired"] == [f"{prefix}0", f"{prefix}1000"]
        assert checksum(warehouse_db, payments, "payments")[0] == 3000
        maintain(conn, migration.plan, dry_run=False)
        lowest = conn.execute(
            sql.SQL("SELECT min(id) FROM {}").format(sql.Identifier(payments, "payments"))
        ).fetchone()[0]
    assert lowest == 2000


def test_retention_is_refused_where_it_does_not_apply(payments, make_user):
    for options in (
        {"column": "id"},
        {"column": "customer_id", "scheme": "hash"},
        {"column": "status", "scheme": "list"},
    ):
        with pytest.raises(PlanRefused, match="retention by age applies to ranges of a time"):
            plan(make_user("admin"), payments, "payments", retention_days=30, **options)
    with pytest.raises(PlanRefused, match="keep ranges applies to ranges of an integer key"):
        plan(
            make_user("admin"),
            payments,
            "payments",
            column="customer_id",
            scheme="hash",
            keep_ranges=2,
        )


# --- range on a UUIDv7 key -----------------------------------------------------------


@pytest.fixture
def events(warehouse_db, pg_schema):
    """2,000 events with UUIDv7 keys made over Jan-Apr 2024 (some on month bounds)."""
    t = sql.Identifier(pg_schema, "events")
    key = sql.SQL(UUID7_SQL).format(at=sql.SQL("at"), seed=sql.SQL("g::text"))
    with connect(warehouse_db) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {} (id uuid PRIMARY KEY, at timestamptz, note text)").format(t)
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {t} SELECT {key}, at, 'n' || g FROM (SELECT g, CASE WHEN g % 400 = 0"
                " THEN date_trunc('month', timestamptz '2024-01-01' + g * interval '1 hour')"
                " ELSE timestamptz '2024-01-01' + g * interval '1 hour' END AS at"
                " FROM generate_series(1, 2000) g) s"
            ).format(t=t, key=key)
        )
    return pg_schema


def uuid_at(moment: datetime, seed: str) -> sql.Composable:
    return sql.SQL(UUID7_SQL).format(at=sql.Literal(moment), seed=sql.Literal(seed))


def test_uuid7_ranges_migrate_with_writes_and_roll_back(warehouse_db, events, make_user):
    t = sql.Identifier(events, "events")
    migration = plan(make_user("admin"), events, "events", column="id", granularity="month")
    first = migration.plan["partitions"][0]
    assert first["days"] == "2024-01-01"
    assert (
        first["from"] == uuid7.floor_of(date(2024, 1, 1)) == "018cc251-f400-7000-8000-000000000000"
    )
    writes = [
        sql.SQL("INSERT INTO {} VALUES ({}, now(), 'new')").format(
            t, uuid_at(datetime(2024, 3, 31, 23, 59, 59, 999000, tzinfo=UTC), "a")
        ),
        sql.SQL("UPDATE {} SET id = {} WHERE note = 'n5'").format(  # January to April
            t, uuid_at(datetime(2024, 4, 1, tzinfo=UTC), "b")
        ),
        sql.SQL("UPDATE {} SET note = 'changed' WHERE note = 'n900'").format(t),
        sql.SQL("DELETE FROM {} WHERE note = 'n7'").format(t),
    ]

    result = migrate_with_writes(warehouse_db, migration, writes)

    assert_swapped_equal(warehouse_db, events, "events", migration, 4, result)
    with connect(warehouse_db) as conn:
        moved = conn.execute(
            sql.SQL("SELECT tableoid::regclass::text FROM {} WHERE note = 'n5'").format(t)
        ).fetchone()[0]
    assert moved.endswith(f"{migration.plan['names']['partition_prefix']}20240401")
    rolled_back_after(
        warehouse_db,
        events,
        "events",
        migration,
        [
            sql.SQL("INSERT INTO {} VALUES ({}, now(), 'after')").format(
                t, uuid_at(datetime(2024, 2, 1, tzinfo=UTC), "c")
            ),
            sql.SQL("DELETE FROM {} WHERE note = 'n8'").format(t),
        ],
    )


def test_uuid7_rows_land_in_the_range_of_their_timestamp(warehouse_db, events, make_user):
    migration = plan(make_user("admin"), events, "events", column="id", granularity="month")
    Migration.objects.filter(pk=migration.pk).update(state=MigrationState.RUNNING)
    run_inline(migration)
    with connect(warehouse_db) as conn:
        misplaced = conn.execute(
            sql.SQL(
                "SELECT count(*) FROM {} WHERE tableoid::regclass::text NOT LIKE"
                " '%%' || to_char(date_trunc('month', at), 'YYYYMMDD')"
            ).format(sql.Identifier(events, "events"))
        ).fetchone()[0]
    assert misplaced == 0


def test_uuid7_retention_drops_the_ranges_older_than_its_days(warehouse_db, events, make_user):
    migration = plan(
        make_user("admin"), events, "events", column="id", granularity="month", retention_days=30
    )
    Migration.objects.filter(pk=migration.pk).update(state=MigrationState.RUNNING)
    run_inline(migration)
    prefix = migration.plan["names"]["partition_prefix"]
    with connect(warehouse_db) as conn:
        done = maintain(conn, migration.plan, dry_run=False, today=date(2024, 3, 15))
    assert done["expired"] == [f"{prefix}20240101"]  # ended 2024-02-01, before 2024-02-14
    remaining = checksum(warehouse_db, events, "events")[0]
    with connect(warehouse_db) as conn:
        january = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE at < '2024-02-01'").format(
                sql.Identifier(events, migration.plan["names"]["old"])
            )
        ).fetchone()[0]
    assert remaining == 2000 - january
    assert f"{prefix}20240101" not in partition_bounds(warehouse_db, events, "events")


def test_a_uuid_column_that_is_not_v7_is_refused(warehouse_db, events, make_user):
    execute(
        warehouse_db,
        sql.SQL(
            "INSERT INTO {} VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', now(), 'v4')"
        ).format(sql.Identifier(events, "events")),
    )
    with pytest.raises(PlanRefused, match=r"1 of 2001 values of id are not UUIDv7 \(e.g. a0eebc99"):
        plan(make_user("admin"), events, "events", column="id", granularity="month")


# --- hash ----------------------------------------------------------------------------


def test_hash_partitions_migrate_with_writes_and_roll_back(warehouse_db, payments, make_user):
    t = sql.Identifier(payments, "payments")
    migration = plan(
        make_user("admin"), payments, "payments", column="customer_id", scheme="hash", modulus=4
    )
    prefix = migration.plan["names"]["partition_prefix"]
    assert [p["name"] for p in migration.plan["partitions"]] == [f"{prefix}{n}" for n in range(4)]
    assert not any(s.endswith(" DEFAULT") for s in migration.plan["steps"][0]["sql"])
    assert "rows of every age" in migration.plan["estimates"]["retention"]
    writes = [
        sql.SQL("UPDATE {} SET customer_id = customer_id % 50 + 1 WHERE id < 40").format(t),
        sql.SQL("DELETE FROM {} WHERE id = 100").format(t),
        sql.SQL(
            "INSERT INTO {} (customer_id, amount_cents, currency, status, updated_at)"
            " VALUES (3, 3, 'EUR', 'NEW', now())"
        ).format(t),
    ]

    result = migrate_with_writes(warehouse_db, migration, writes)

    assert_swapped_equal(warehouse_db, payments, "payments", migration, 41, result)
    bounds = partition_bounds(warehouse_db, payments, "payments")
    assert bounds[f"{prefix}3"] == "FOR VALUES WITH (modulus 4, remainder 3)"
    with connect(warehouse_db) as conn:
        spread = conn.execute(
            sql.SQL("SELECT count(DISTINCT tableoid) FROM {}").format(t)
        ).fetchone()[0]
        assert maintain(conn, migration.plan, dry_run=True)["statements"] == []
    assert spread == 4
    rolled_back_after(
        warehouse_db,
        payments,
        "payments",
        migration,
        [sql.SQL("UPDATE {} SET customer_id = 50 WHERE id BETWEEN 200 AND 210").format(t)],
    )


def test_hash_partitions_take_a_concurrent_writer_without_losing_a_row(
    warehouse_db, payments, make_user
):
    migration = plan(
        make_user("admin"),
        payments,
        "payments",
        column="customer_id",
        scheme="hash",
        modulus=4,
        throttle_ms=20,
    )
    Migration.objects.filter(pk=migration.pk).update(state=MigrationState.RUNNING)
    writer = Writer(warehouse_db, payments, "payments")
    faults.arm("copy", 1, action=writer.start)
    faults.arm("before_swap", 0, action=writer.finish)

    run_inline(migration)

    assert writer.done > 5
    assert relkind(warehouse_db, payments, "payments") == "p"
    assert checksum(warehouse_db, payments, "payments") == checksum(
        warehouse_db, payments, migration.plan["names"]["old"]
    )


# --- list ----------------------------------------------------------------------------


@pytest.fixture
def orders(warehouse_db, pg_schema):
    """1,500 orders in three regions, one in ten without a region."""
    t = sql.Identifier(pg_schema, "orders")
    with connect(warehouse_db) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id bigint PRIMARY KEY, region text, amount int NOT NULL)"
            ).format(t)
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {} SELECT g, CASE WHEN g % 10 = 0 THEN NULL"
                " ELSE (ARRAY['eu', 'us', 'ap'])[1 + g % 3] END, g FROM generate_series(1, 1500) g"
            ).format(t)
        )
    return pg_schema


def test_list_partitions_migrate_with_writes_and_roll_back(warehouse_db, orders, make_user):
    t = sql.Identifier(orders, "orders")
    migration = plan(make_user("admin"), orders, "orders", column="region", scheme="list")
    names = migration.plan["names"]
    assert [p["values"] for p in migration.plan["partitions"]] == [["ap"], ["eu"], ["us"], [None]]
    assert migration.plan["estimates"]["null_keys_go_to"] == names["null"]
    assert any("UNIQUE NULLS NOT DISTINCT" in w for w in migration.plan["warnings"])
    writes = [
        sql.SQL("INSERT INTO {} VALUES (2001, 'sa', 1)").format(t),  # a new value: default
        sql.SQL("UPDATE {} SET region = NULL WHERE id = 1").format(t),
        sql.SQL("UPDATE {} SET region = 'eu' WHERE id = 10").format(t),
        sql.SQL("DELETE FROM {} WHERE id = 2").format(t),
    ]

    result = migrate_with_writes(warehouse_db, migration, writes)

    assert_swapped_equal(warehouse_db, orders, "orders", migration, 4, result)
    with connect(warehouse_db) as conn:
        where = dict(
            conn.execute(
                sql.SQL(
                    "SELECT id, tableoid::regclass::text FROM {} WHERE id IN (1, 10, 2001)"
                ).format(t)
            ).fetchall()
        )
        assert where[1].endswith(names["null"]) and where[2001].endswith(names["default"])
        with pytest.raises(Exception, match="duplicate key"):
            conn.execute(sql.SQL("INSERT INTO {} VALUES (1, NULL, 5)").format(t))
    rolled_back_after(
        warehouse_db,
        orders,
        "orders",
        migration,
        [
            sql.SQL("UPDATE {} SET region = 'us' WHERE id = 1").format(t),
            sql.SQL("INSERT INTO {} VALUES (2002, NULL, 2)").format(t),
        ],
    )


def test_list_partitions_of_a_table_without_primary_key_replay_row_by_row(
    warehouse_db, pg_schema, make_user
):
    create_payments(warehouse_db, pg_schema, pk=False)
    t = sql.Identifier(pg_schema, "payments")
    migration = plan(make_user("admin"), pg_schema, "payments", column="status", scheme="list")
    assert migration.plan["batches"] == [{"n": 0, "where": "not_null", "lo": None, "hi": None}]
    writes = [
        sql.SQL("UPDATE {} SET status = 'PENDING' WHERE id BETWEEN 1 AND 5").format(t),
        sql.SQL("UPDATE {} SET status = 'REFUNDED' WHERE id = 6").format(t),  # to the default
        sql.SQL("DELETE FROM {} WHERE id = 8").format(t),
    ]

    result = migrate_with_writes(warehouse_db, migration, writes)

    assert_swapped_equal(warehouse_db, pg_schema, "payments", migration, 5, result)
    rolled_back_after(
        warehouse_db,
        pg_schema,
        "payments",
        migration,
        [sql.SQL("UPDATE {} SET status = 'COMPLETED' WHERE id = 6").format(t)],
    )


def test_a_list_column_with_too_many_values_is_refused(payments, make_user):
    with pytest.raises(PlanRefused, match="more than 100 distinct values"):
        plan(make_user("admin"), payments, "payments", column="description", scheme="list")
    assert not Migration.objects.filter(state=MigrationState.PLANNED).exists()


def test_a_list_of_a_not_null_column_keeps_its_primary_key(payments, make_user):
    migration = plan(make_user("admin"), payments, "payments", column="status", scheme="list")
    assert [p["values"] for p in migration.plan["partitions"]] == [["COMPLETED"], ["PENDING"]]
    assert migration.plan["estimates"]["partitions_to_create"] == 3  # and the default
    index_sql = next(s for s in migration.plan["steps"] if s["name"] == "index")["sql"]
    assert any('PRIMARY KEY ("id", "status")' in statement for statement in index_sql)


# --- the plan form offers what fits the column ----------------------------------------


def page(client, schema: str, column: str) -> str:
    url = f"/partitions/main/table/?schema={schema}&table=payments&column={column}"
    response = client.get(url)
    assert response.status_code == 200
    return response.text


def test_the_form_offers_only_the_figures_that_fit_the_column(client_as, payments):
    operator = client_as("operator")
    by_time = page(operator, payments, "created_at")
    assert 'name="granularity"' in by_time and 'name="retention_days"' in by_time
    assert 'name="width"' not in by_time and 'name="modulus"' not in by_time
    assert '<input type="hidden" name="scheme" value="range"' in by_time
    by_id = page(operator, payments, "id")
    assert 'name="width"' in by_id and 'name="modulus"' in by_id and 'name="keep_ranges"' in by_id
    assert 'name="granularity"' not in by_id and 'name="retention_days"' not in by_id
    assert '<option value="list">' in by_id and '<option value="range" selected>' in by_id
    by_text = page(operator, payments, "status")
    assert '<option value="range"' not in by_text and '<option value="hash" selected>' in by_text
    assert 'name="width"' not in by_text and 'name="granularity"' not in by_text


def test_a_viewer_sees_the_choices_but_cannot_plan(client_as, payments):
    viewer_page = page(client_as("viewer"), payments, "id")
    assert 'name="width"' in viewer_page
    assert '<fieldset class="plain" disabled>' in viewer_page
    assert client_as("viewer").post("/partitions/main/plan/", {}).status_code == 403


def post_plan(client, schema: str, **fields):
    data = {"schema": schema, "table": "payments", "batch_rows": 1000, "throttle_ms": 0}
    return client.post("/partitions/main/plan/", {**data, **fields})


def test_bad_figures_are_form_errors_not_500s(client_as, payments):
    operator = client_as("operator")
    response = post_plan(operator, payments, column="customer_id", scheme="hash", modulus=99)
    assert response.status_code == 400
    assert "Ensure this value is less than or equal to 64" in response.text
    response = post_plan(operator, payments, column="description", scheme="list")
    assert response.status_code == 400
    assert "more than 100 distinct values" in response.text
    response = post_plan(operator, payments, column="created_at", scheme="hash")
    assert response.status_code == 400
    assert "Select a valid choice" in response.text
    assert not Migration.objects.exists()


def test_the_form_plans_hash_partitioning_without_the_other_figures(client_as, payments):
    response = post_plan(
        client_as("operator"), payments, column="customer_id", scheme="hash", modulus=4, width=7
    )
    assert response.status_code == 302
    migration = Migration.objects.get()
    assert migration.options["scheme"] == "hash" and migration.options["modulus"] == 4
    assert migration.options["width"] is None
    assert len(migration.plan["partitions"]) == 4
    shown = client_as("viewer").get(f"/partitions/migrations/{migration.pk}/").text
    assert "hash on customer_id into 4 partitions" in shown
    assert "FOR VALUES WITH (MODULUS 4, REMAINDER 3)" in shown
