"""Apply a suggestion as a job (CREATE INDEX CONCURRENTLY) and roll it back."""

import time

import psycopg
from psycopg import sql

from jobs import runner
from jobs.models import Run
from opsconsole.models import AuditEvent


def wait(run: Run, seconds: float = 30) -> Run:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if not run.is_active:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run #{run.pk} still {run.status}")


def apply_form(schema, table="orders", columns="customer_id", name="orders_customer_id_idx"):
    return {
        "warehouse": "main",
        "schema": schema,
        "table": table,
        "columns": columns,
        "name": name,
        "confirm": name,
    }


def index(wh, schema, name):
    """(is_valid,) of the named index, None when there is none."""
    return wh.execute(
        "SELECT i.indisvalid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_index i ON i.indexrelid = c.oid WHERE n.nspname = %s AND c.relname = %s",
        [schema, name],
    ).fetchone()


def test_it_applies_a_valid_index_and_rolls_it_back(celery_worker, client_as, shop, wh):
    operator = client_as("operator")
    response = operator.post("/queries/indexes/apply/", apply_form(shop))
    run = Run.objects.get(name="queries.apply_index")
    assert response.status_code == 302 and response["Location"] == f"/jobs/runs/{run.pk}/"
    run = wait(run)
    assert run.status == "succeeded", run.error
    assert index(wh, shop, "orders_customer_id_idx") == (True,)
    assert run.result["definition"].startswith("CREATE INDEX orders_customer_id_idx")
    created = AuditEvent.objects.get(action="queries.index.create")
    assert created.outcome == "ok" and created.run_id == run.pk

    admin = client_as("admin")
    response = admin.post(f"/queries/indexes/applied/{run.pk}/rollback/", {"confirm": "wrong"})
    assert response.status_code == 400
    assert not Run.objects.filter(name="queries.rollback_index").exists()
    admin.post(
        f"/queries/indexes/applied/{run.pk}/rollback/", {"confirm": "orders_customer_id_idx"}
    )
    rollback = wait(Run.objects.get(name="queries.rollback_index"))
    assert rollback.status == "succeeded", rollback.error
    assert index(wh, shop, "orders_customer_id_idx") is None
    dropped = AuditEvent.objects.get(action="queries.index.drop")
    assert dropped.outcome == "ok" and dropped.params["apply_run"] == run.pk


def test_it_drops_the_invalid_index_a_failed_build_leaves(celery_worker, client_as, shop, wh):
    s = sql.Identifier(shop)
    # A value too big for a b-tree entry: the build fails after the index exists.
    wh.execute(
        sql.SQL(
            "UPDATE {}.orders SET note = (SELECT string_agg(md5(g::text), '') "
            "FROM generate_series(1, 400) g) WHERE id = 30000"
        ).format(s)
    )
    client_as("operator").post(
        "/queries/indexes/apply/", apply_form(shop, columns="note", name="orders_note_idx")
    )
    run = wait(Run.objects.get(name="queries.apply_index"))
    assert run.status == "failed"
    assert "index row" in run.error and "size" in run.error
    assert index(wh, shop, "orders_note_idx") is None
    assert "dropped the invalid index" in run.log_tail
    event = AuditEvent.objects.get(action="queries.index.create")
    assert event.outcome == "failed"


def test_it_refuses_an_apply_without_the_typed_index_name(celery_worker, client_as, shop):
    form = {**apply_form(shop), "confirm": "orders"}
    response = client_as("operator").post("/queries/indexes/apply/", form)
    assert response.status_code == 400
    assert "Type the index name" in response.content.decode()
    assert not Run.objects.filter(name="queries.apply_index").exists()


def test_it_refuses_a_rollback_to_an_operator(celery_worker, client_as, shop):
    client_as("operator").post("/queries/indexes/apply/", apply_form(shop))
    run = wait(Run.objects.get(name="queries.apply_index"))
    response = client_as("operator").post(
        f"/queries/indexes/applied/{run.pk}/rollback/", {"confirm": "orders_customer_id_idx"}
    )
    assert response.status_code == 403
    assert not Run.objects.filter(name="queries.rollback_index").exists()


def test_it_reports_the_build_phase_while_it_waits_for_a_writer(
    celery_worker, client_as, shop, warehouse_db
):
    with psycopg.connect(warehouse_db) as writer:  # an open transaction that wrote a row
        writer.execute(
            sql.SQL("UPDATE {}.orders SET total = total WHERE id = 1").format(sql.Identifier(shop))
        )
        client_as("operator").post("/queries/indexes/apply/", apply_form(shop))
        run = Run.objects.get(name="queries.apply_index")
        deadline = time.monotonic() + 20
        while "waiting for writers" not in run.progress_message and time.monotonic() < deadline:
            time.sleep(0.2)
            run.refresh_from_db()
        assert run.status == "running"
        assert run.progress_message.startswith("waiting for writers")
        writer.commit()
    run = wait(run)
    assert run.status == "succeeded", run.error
    assert "phase: waiting for writers before build" in run.log_tail


def test_it_drops_the_invalid_index_when_the_build_is_cancelled(
    celery_worker, client_as, shop, warehouse_db, wh
):
    with psycopg.connect(warehouse_db) as writer:  # holds the build in its first wait
        writer.execute(
            sql.SQL("UPDATE {}.orders SET total = total WHERE id = 1").format(sql.Identifier(shop))
        )
        operator = client_as("operator")
        operator.post("/queries/indexes/apply/", apply_form(shop))
        run = Run.objects.get(name="queries.apply_index")
        deadline = time.monotonic() + 20
        while "waiting for writers" not in run.progress_message and time.monotonic() < deadline:
            time.sleep(0.2)
            run.refresh_from_db()
        assert index(wh, shop, "orders_customer_id_idx") == (False,)  # exists, not valid yet
        runner.cancel(run, operator.user)
        # The build is stopped; the clean-up drop then waits for the same writer.
        dropping = None
        while dropping is None and time.monotonic() < deadline + 20:
            time.sleep(0.2)
            dropping = wh.execute(
                "SELECT pid FROM pg_stat_activity WHERE query LIKE 'DROP INDEX CONCURRENTLY%%' "
                "AND strpos(query, %s) > 0",
                [shop],
            ).fetchone()
        assert dropping is not None
        writer.commit()
    run = wait(run)
    assert run.status == "cancelled"
    assert index(wh, shop, "orders_customer_id_idx") is None


def test_it_applies_an_expression_and_a_pattern_operator_class(celery_worker, client_as, shop, wh):
    name = "orders_lower_note_idx"
    form = apply_form(shop, columns="lower(note), status text_pattern_ops", name=name)
    client_as("operator").post("/queries/indexes/apply/", form)
    run = wait(Run.objects.get(name="queries.apply_index"))
    assert run.status == "succeeded", run.error
    assert index(wh, shop, name) == (True,)
    assert run.result["definition"].endswith("USING btree (lower(note), status text_pattern_ops)")


def test_it_refuses_a_user_function_in_an_index_expression(celery_worker, client_as, shop):
    form = apply_form(shop, columns="public.evil(note)", name="orders_evil_idx")
    response = client_as("operator").post("/queries/indexes/apply/", form)
    assert response.status_code == 400
    assert not Run.objects.filter(name="queries.apply_index").exists()
