"""The pages: inventory, plan, confirm, watch, roll back — through the real runner."""

import time

import pytest

from jobs.models import Run
from opsconsole.models import AuditEvent
from partitions import services
from partitions.models import Migration, MigrationState

from .conftest import ACCEPT_NULL_KEYS, checksum, relkind


def wait_for(run_id: int, timeout: float = 60) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(pk=run_id)
        if not run.is_active:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} still {run.status}")


def table_url(schema: str, table: str = "payments") -> str:
    return f"/partitions/main/table/?schema={schema}&table={table}"


@pytest.mark.django_db
def test_it_lists_tables_with_their_partitioning_for_a_viewer(client_as, payments):
    response = client_as("viewer").get("/partitions/?warehouse=main")
    assert response.status_code == 200
    assert f"{payments}.payments" in response.text


@pytest.mark.django_db
def test_it_shows_a_table_with_its_dependents_and_the_plan_form(client_as, payments):
    response = client_as("viewer").get(table_url(payments))
    assert response.status_code == 200
    assert "payments_by_status" in response.text
    assert '<option value="id">id (bigint)</option>' in response.text


@pytest.mark.django_db
def test_it_answers_a_refused_column_with_a_form_error(client_as, payments):
    response = client_as("operator").post(
        "/partitions/main/plan/",
        {
            "schema": payments,
            "table": "payments",
            "column": "no_such_column",
            "granularity": "month",
            "batch_rows": 1000,
            "throttle_ms": 0,
        },
    )
    assert response.status_code == 400
    assert "Select a valid choice" in response.text
    assert not Migration.objects.exists()


@pytest.mark.django_db
def test_it_answers_an_unknown_table_with_404(client_as, payments):
    assert client_as("viewer").get(table_url(payments, "nope")).status_code == 404


def plan_monthly(client, schema: str) -> Migration:
    """Plan monthly partitions of `schema`.payments through the page; the stored plan."""
    client.post(
        "/partitions/main/plan/",
        {
            "schema": schema,
            "table": "payments",
            "column": "created_at",
            "granularity": "month",
            "batch_rows": 1000,
            "throttle_ms": 0,
            **ACCEPT_NULL_KEYS,
        },
    )
    return Migration.objects.get()


@pytest.mark.django_db
@pytest.mark.parametrize("spelling", ["{schema}.payments", "main:{schema}.payments"])
def test_it_accepts_the_table_as_the_page_names_it(client_as, payments, spelling):
    client = client_as("operator")
    migration = plan_monthly(client, payments)
    page = client.get(f"/partitions/migrations/{migration.pk}/").text
    assert f"Type payments (or {payments}.payments) to confirm" in page
    assert services.check_start(
        client.user, migration, spelling.format(schema=payments), reason="monthly"
    )
    with pytest.raises(services.MigrationRefused, match="type the table name"):
        services.check_start(client.user, migration, f"other.{payments}.payments", "monthly")


@pytest.mark.django_db
def test_it_refuses_a_wrong_confirmation_with_a_form_error(client_as, payments):
    client = client_as("operator")
    migration = plan_monthly(client, payments)
    response = client.post(
        f"/partitions/migrations/{migration.pk}/start/", {"confirm": "payment", "reason": "x"}
    )
    assert response.status_code == 400
    assert "Type exactly: payments" in response.text
    migration.refresh_from_db()
    assert migration.state == MigrationState.PLANNED


def test_it_plans_confirms_runs_and_rolls_back_through_the_pages(
    client_as, payments, warehouse_db, celery_worker
):
    client = client_as("admin")
    before = checksum(warehouse_db, payments, "payments")
    response = client.post(
        "/partitions/main/plan/",
        {
            "schema": payments,
            "table": "payments",
            "column": "created_at",
            "granularity": "month",
            "batch_rows": 1000,
            "throttle_ms": 0,
            "retention_days": 3650,
            **ACCEPT_NULL_KEYS,
        },
    )
    migration = Migration.objects.get()
    assert response.status_code == 302
    page = client.get(f"/partitions/migrations/{migration.pk}/")
    assert "CREATE TABLE" in page.text and "Rollback:" in page.text

    response = client.post(
        f"/partitions/migrations/{migration.pk}/start/",
        {"confirm": "payments", "reason": "monthly partitions for retention"},
    )
    assert response.status_code == 302
    migration.refresh_from_db()
    run = wait_for(migration.run_id)
    assert run.status == "succeeded", run.error
    migration.refresh_from_db()
    assert migration.state == MigrationState.SUCCEEDED
    assert relkind(warehouse_db, payments, "payments") == "p"
    assert checksum(warehouse_db, payments, "payments") == before
    partial = client.get(f"/partitions/migrations/{migration.pk}/", HTTP_HX_REQUEST="true")
    assert "post_check" in partial.text and "hx-trigger" not in partial.text
    hold = migration.lock_holds_ms["swap"]
    assert f"Exclusive lock held</dt><dd>swap {hold} ms" in partial.text

    response = client.post(
        f"/partitions/migrations/{migration.pk}/rollback/", {"reason": "dashboards slower"}
    )
    assert response.status_code == 302
    migration.refresh_from_db()
    assert wait_for(migration.rollback_run_id).status == "succeeded"
    migration.refresh_from_db()
    assert migration.state == MigrationState.ROLLED_BACK
    assert relkind(warehouse_db, payments, "payments") == "r"
    assert checksum(warehouse_db, payments, "payments") == before
    page = client.get(f"/partitions/migrations/{migration.pk}/")
    assert f"rollback {migration.lock_holds_ms['rollback']} ms" in page.text
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"partitions.plan", "partitions.migrate", "partitions.rollback"} <= actions
    assert AuditEvent.objects.get(action="partitions.migrate").run_id == migration.run_id


@pytest.mark.django_db
def test_a_viewer_sees_the_plan_form_disabled_and_why(client_as, payments):
    page = client_as("viewer").get(table_url(payments, "payments")).content.decode()
    assert '<fieldset class="plain" disabled>' in page
    assert "Needs the operator role (you are a viewer)." in page


@pytest.mark.django_db
def test_an_operator_sees_the_plan_form_enabled(client_as, payments):
    page = client_as("operator").get(table_url(payments, "payments")).content.decode()
    assert "Show the plan" in page
    assert "disabled>" not in page and "Needs the operator role" not in page
