import psycopg
from psycopg import sql

from jobs import runner

from .conftest import fingerprint, wait_for


def sync(schema, batch_size=64):
    params = {
        "source": "main",
        "source_table": f"{schema}.payments",
        "target": "main",
        "target_table": f"{schema}.payments_copy",
        "batch_size": batch_size,
    }
    return wait_for(runner.start("table_sync", params, "cli:test"))


def test_it_copies_exactly_the_source_rows(celery_worker, source, warehouse_db):
    run = sync(source)
    assert run.status == "succeeded", run.error
    assert run.result["rows_read"] == 1000 and run.result["rows_written"] == 1000
    assert run.result["batches"] == 16
    assert fingerprint(warehouse_db, source, "payments_copy") == fingerprint(
        warehouse_db, source, "payments"
    )


def test_the_next_run_copies_only_new_and_changed_rows(celery_worker, source, warehouse_db):
    assert sync(source).status == "succeeded"
    with psycopg.connect(warehouse_db, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "UPDATE {} SET status = 'COMPLETED', updated_at = timestamptz '2026-06-01' "
                "WHERE id <= 30"
            ).format(sql.Identifier(source, "payments"))
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (customer_id, amount_cents, status, updated_at) "
                "SELECT 1, g, 'NEW', timestamptz '2026-07-01' FROM generate_series(1, 25) g"
            ).format(sql.Identifier(source, "payments"))
        )
    run = sync(source)
    assert run.result["rows_read"] == 55
    assert fingerprint(warehouse_db, source, "payments_copy") == fingerprint(
        warehouse_db, source, "payments"
    )


def test_repeating_a_sync_changes_nothing(celery_worker, source, warehouse_db):
    sync(source)
    before = fingerprint(warehouse_db, source, "payments_copy")
    run = sync(source)
    assert run.status == "succeeded"
    assert run.result["rows_read"] == 0
    assert fingerprint(warehouse_db, source, "payments_copy") == before


def test_a_missing_source_table_fails_the_run_clearly(celery_worker, source):
    params = {
        "source": "main",
        "source_table": f"{source}.nope",
        "target": "main",
        "target_table": f"{source}.copy",
    }
    run = wait_for(runner.start("table_sync", params, "cli:test"))
    assert run.status == "failed"
    assert run.attempt == 1  # not retried: retrying cannot create the table
    assert f"Source table '{source}.nope' does not exist." in run.error


def test_a_missing_watermark_column_fails_the_run_clearly(celery_worker, source):
    params = {
        "source": "main",
        "source_table": f"{source}.payments",
        "target": "main",
        "target_table": f"{source}.copy",
        "watermark": "changed_at",
    }
    run = wait_for(runner.start("table_sync", params, "cli:test"))
    assert run.status == "failed"
    assert "has no column 'changed_at' to use as watermark" in run.error


def test_it_refreshes_a_materialized_view(celery_worker, source, warehouse_db):
    view = sql.Identifier(source, "by_status")
    with psycopg.connect(warehouse_db, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE MATERIALIZED VIEW {} AS SELECT status, count(*) AS n FROM {} GROUP BY 1"
            ).format(view, sql.Identifier(source, "payments"))
        )
        conn.execute(sql.SQL("CREATE UNIQUE INDEX ON {} (status)").format(view))
        conn.execute(
            sql.SQL("UPDATE {} SET status = 'DONE' WHERE id <= 10").format(
                sql.Identifier(source, "payments")
            )
        )
    params = {"warehouse": "main", "views": f"{source}.by_status"}
    run = wait_for(runner.start("refresh_matviews", params, "cli:test"))
    assert run.status == "succeeded", run.error
    with psycopg.connect(warehouse_db) as conn:
        rows = dict(conn.execute(sql.SQL("SELECT status, n FROM {}").format(view)).fetchall())
    assert rows == {"DONE": 10, "PENDING": 990}
