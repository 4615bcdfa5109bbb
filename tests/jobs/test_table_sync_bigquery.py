"""table_sync into BigQuery: a real PostgreSQL source, the BigQuery emulator, a real worker."""

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import psycopg
import pytest
from psycopg import sql

from jobs import runner
from jobs.sync import SyncError
from jobs.sync_bigquery import sync_to_bigquery

from .conftest import wait_for


@pytest.fixture
def bq(source, bq_dataset, settings, warehouse_db):
    """Warehouses "main" (the PostgreSQL source) and "bq" (a fresh emulator dataset)."""
    settings.WAREHOUSES = {
        "main": warehouse_db,
        "bq": f"bigquery://{bq_dataset.project}/{bq_dataset.dataset}"
        f"?endpoint={bq_dataset.warehouse.endpoint}",
    }
    return bq_dataset


def sync(schema, table="payments", target="payments_copy", batch_size=64, **extra):
    params = {
        "source": "main",
        "source_table": f"{schema}.{table}",
        "target": "bq",
        "target_table": target,
        "batch_size": batch_size,
        **extra,
    }
    return wait_for(runner.start("table_sync", params, "cli:test"), timeout=120)


COLUMNS = ["id", "customer_id", "amount_cents", "status", "note", "updated_at"]


def source_rows(url, schema, table="payments"):
    with psycopg.connect(url) as conn:
        return conn.execute(
            sql.SQL("SELECT {} FROM {} ORDER BY id").format(
                sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), sql.Identifier(schema, table)
            )
        ).fetchall()


def target_rows(backend, table="payments_copy"):
    return backend.query(
        f"SELECT {', '.join(COLUMNS)} FROM {backend.name(table)} ORDER BY id"  # noqa: S608 - test-owned names
    )


def totals(rows):
    """Count, and sums that do not depend on row order."""
    return len(rows), sum(r[0] for r in rows), sum(r[2] for r in rows)


def test_it_copies_exactly_the_source_rows(celery_worker, bq, source, warehouse_db):
    run = sync(source)
    assert run.status == "succeeded", run.error
    assert run.result["rows_read"] == 1000 and run.result["rows_written"] == 1000
    assert run.result["batches"] == 16
    assert run.result["target"] == f"{bq.dataset}.payments_copy"
    copied, expected = target_rows(bq), source_rows(warehouse_db, source)
    assert totals(copied) == totals(expected) == (1000, 500500, 3503500)
    assert sorted(copied) == sorted(expected)
    table = bq.table("payments_copy")
    assert [(f.name, f.field_type) for f in table.schema] == [
        ("id", "INTEGER"),
        ("customer_id", "INTEGER"),
        ("amount_cents", "INTEGER"),
        ("status", "STRING"),
        ("note", "STRING"),
        ("updated_at", "TIMESTAMP"),
    ]
    assert run.progress_done == 1000


def test_the_next_run_copies_only_new_and_changed_rows(celery_worker, bq, source, warehouse_db):
    assert sync(source).status == "succeeded"
    with psycopg.connect(warehouse_db, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "UPDATE {} SET status = 'COMPLETED', amount_cents = amount_cents + 1,"
                " updated_at = timestamptz '2026-06-01' WHERE id <= 30"
            ).format(sql.Identifier(source, "payments"))
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (customer_id, amount_cents, status, updated_at) "
                "SELECT 1, g, 'NEW', timestamptz '2026-07-01' FROM generate_series(1, 25) g"
            ).format(sql.Identifier(source, "payments"))
        )
    run = sync(source)
    assert run.status == "succeeded", run.error
    assert run.result["rows_read"] == 55
    assert run.result["watermark"] == "2026-07-01 00:00:00+00:00"
    copied, expected = target_rows(bq), source_rows(warehouse_db, source)
    assert len(copied) == 1025
    assert sorted(copied) == sorted(expected)
    assert [r[3] for r in copied[:30]] == ["COMPLETED"] * 30


def test_repeating_a_sync_changes_nothing(celery_worker, bq, source, warehouse_db):
    assert sync(source, batch_size=500).status == "succeeded"
    before = target_rows(bq)
    run = sync(source, batch_size=500)
    assert run.status == "succeeded", run.error
    assert run.result["rows_read"] == 0 and run.result["batches"] == 0
    assert target_rows(bq) == before
    assert len(before) == 1000


def test_it_resumes_from_the_newest_row_in_the_target(celery_worker, bq, source, warehouse_db):
    """The target is the checkpoint: new rows tied on its newest watermark are read too."""
    assert sync(source, batch_size=300).status == "succeeded"
    with psycopg.connect(warehouse_db, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "INSERT INTO {t} (customer_id, amount_cents, status, updated_at)"
                " SELECT 2, g, 'TIED', (SELECT max(updated_at) FROM {t})"
                " FROM generate_series(1, 40) g"
            ).format(t=sql.Identifier(source, "payments"))
        )
    run = sync(source, batch_size=7)
    assert run.status == "succeeded", run.error
    assert run.result["rows_read"] == 40 and run.result["batches"] == 6
    copied = target_rows(bq)
    assert len(copied) == 1040
    assert sorted(copied) == sorted(source_rows(warehouse_db, source))


def test_an_unsupported_column_type_fails_clearly(celery_worker, bq, source, warehouse_db):
    with psycopg.connect(warehouse_db, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN client_ip inet").format(
                sql.Identifier(source, "payments")
            )
        )
    run = sync(source)
    assert run.status == "failed"
    assert run.attempt == 1  # not retried: retrying cannot change the column's type
    assert "Column 'client_ip' has type inet, which table_sync cannot map to BigQuery" in (
        run.error
    )
    assert bq.table("payments_copy") is None


def test_a_target_with_other_columns_is_refused(celery_worker, bq, source):
    bq.query(f"CREATE TABLE {bq.name('other')} (id INT64, status STRING)")
    run = sync(source, target="other")
    assert run.status == "failed" and run.attempt == 1
    assert f"Target {bq.dataset}.other exists with columns" in run.error
    assert bq.query(f"SELECT COUNT(*) FROM {bq.name('other')}")[0][0] == 0  # noqa: S608 - test-owned names


def test_an_invalid_bigquery_table_name_is_refused_at_launch(celery_worker, bq, source):
    with pytest.raises(runner.LaunchRefused, match="A BigQuery target is a table name"):
        runner.start(
            "table_sync",
            {"source": "main", "source_table": f"{source}.payments", "target": "bq",
             "target_table": "x`; DROP TABLE y; --"},
            "cli:test",
        )  # fmt: skip


def test_the_target_choices_include_bigquery_warehouses(bq):
    from jobs.jobdefs import RefreshMatviewsForm, TableSyncForm

    assert dict(TableSyncForm().fields["target"].choices) == {"main": "main", "bq": "bq"}
    assert dict(TableSyncForm().fields["source"].choices) == {"main": "main"}
    assert dict(RefreshMatviewsForm().fields["warehouse"].choices) == {"main": "main"}


def test_the_types_it_maps_read_back_equal(bq, pg_schema, warehouse_db, settings):
    """Every mapped type, with NULLs, and a composite primary key (written directly)."""
    t = sql.Identifier(pg_schema, "lines")
    with psycopg.connect(warehouse_db, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (order_id bigint, line integer, qty smallint,"
                " price numeric(12, 2), ratio double precision, code char(3), label varchar(20),"
                " body text, ref uuid, at timestamp, updated_at timestamptz, day date,"
                " paid boolean, extra jsonb, raw json, PRIMARY KEY (order_id, line))"
            ).format(t)
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {} SELECT g / 3, g % 3, g, g * 1.25, g / 8.0, 'EUR', 'l' || g,"
                " CASE WHEN g % 4 = 0 THEN NULL ELSE 'body ' || g END,"
                " md5(g::text)::uuid, timestamp '2026-01-01 10:00' + make_interval(hours => g),"
                " timestamptz '2026-01-01' + make_interval(mins => g / 4),"
                " date '2026-01-01' + g, g % 2 = 0,"
                " jsonb_build_object('g', g, 'tags', '[1,2]'::jsonb),"
                " CASE WHEN g % 5 = 0 THEN NULL ELSE json_build_array(g, 'x') END"
                " FROM generate_series(1, 50) g"
            ).format(t)
        )
    url = settings.WAREHOUSES["bq"]
    seen = []
    result = sync_to_bigquery(
        warehouse_db, f"{pg_schema}.lines", url, "lines", batch_size=9,
        report=lambda read, written, message, total=None: seen.append((read, written)),
    )  # fmt: skip
    assert result["rows_written"] == 50 and result["batches"] == 6
    assert seen[-1] == (50, 50) and len(seen) == 6
    schema = [(f.name, f.field_type) for f in bq.table("lines").schema]
    assert schema == [
        ("order_id", "INTEGER"), ("line", "INTEGER"), ("qty", "INTEGER"), ("price", "NUMERIC"),
        ("ratio", "FLOAT"), ("code", "STRING"), ("label", "STRING"), ("body", "STRING"),
        ("ref", "STRING"), ("at", "TIMESTAMP"), ("updated_at", "TIMESTAMP"), ("day", "DATE"),
        ("paid", "BOOLEAN"), ("extra", "STRING"), ("raw", "STRING"),
    ]  # fmt: skip
    copied = bq.query(f"SELECT * FROM {bq.name('lines')} ORDER BY order_id, line")  # noqa: S608 - test-owned names
    with psycopg.connect(warehouse_db) as conn:
        expected = conn.execute(sql.SQL("SELECT * FROM {} ORDER BY order_id, line").format(t))
        expected = expected.fetchall()
    assert len(copied) == len(expected) == 50
    for got, want in zip(copied, expected, strict=True):
        want = list(want)
        want[8] = str(want[8])  # uuid as text
        want[9] = want[9].replace(tzinfo=UTC)  # timestamp without time zone, read as UTC
        assert list(got[:13]) == want[:13]
        assert json.loads(got[13]) == want[13]
        assert (json.loads(got[14]) if got[14] is not None else None) == want[14]
    assert copied[0][3] == Decimal("1.25") and copied[0][11] == date(2026, 1, 2)
    assert isinstance(copied[0][10], datetime)

    # Repeating reads from the checkpoint (newest updated_at, then the composite key) on.
    again = sync_to_bigquery(warehouse_db, f"{pg_schema}.lines", url, "lines", batch_size=9)
    assert again["rows_read"] == 0
    with psycopg.connect(warehouse_db, autocommit=True) as conn:
        conn.execute(sql.SQL("UPDATE {} SET qty = -1, updated_at = now() WHERE line = 1").format(t))
    changed = sync_to_bigquery(warehouse_db, f"{pg_schema}.lines", url, "lines", batch_size=9)
    assert changed["rows_read"] == 17
    rows = bq.query(f"SELECT order_id, line, qty FROM {bq.name('lines')}")  # noqa: S608 - test-owned names
    assert len(rows) == 50
    assert sorted(r[2] for r in rows if r[1] == 1) == [-1] * 17


def test_numeric_beyond_bigquery_numeric_is_refused(bq, pg_schema, warehouse_db, settings):
    with psycopg.connect(warehouse_db, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id bigint PRIMARY KEY, rate numeric(20, 12),"
                " updated_at timestamptz)"
            ).format(sql.Identifier(pg_schema, "rates"))
        )
    with pytest.raises(SyncError, match=r"Column 'rate' is numeric\(20,12\)"):
        sync_to_bigquery(warehouse_db, f"{pg_schema}.rates", settings.WAREHOUSES["bq"], "rates")
    assert bq.table("rates") is None
