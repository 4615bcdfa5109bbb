"""Plan → confirm → watch → verify → swap → roll back, in headless Chromium, as an
operator would, through the real Celery worker; then the warehouse and the console's
database are read back."""

import pytest

from jobs.models import Run
from opsconsole.models import AuditEvent
from partitions.models import Migration, MigrationState
from tests.browser import log_in

from .conftest import checksum, relkind, tables_in

pytestmark = [pytest.mark.browser]

POLL_ENDED = (
    "() => { const s = document.querySelector('#migration-status');"
    " return s !== null && !s.hasAttribute('hx-trigger'); }"
)


def shown_state(page) -> str:
    return page.locator("#migration-status dt:text-is('State') + dd").inner_text().strip()


def step_status(page, step: str) -> str:
    row = page.locator("#migration-status tr", has=page.locator(f"td:text-is('{step}')"))
    return row.locator("td").nth(1).inner_text().strip()


def test_an_operator_plans_runs_watches_and_rolls_back_a_migration_in_the_browser(
    page, celery_worker, make_user, payments, warehouse_db
):
    schema = payments
    before = checksum(warehouse_db, schema, "payments")
    assert before[0] == 3000
    user = make_user("operator", username="browser-partitions")
    polls = []
    page.on(
        "request",
        lambda r: polls.append(r.url) if r.headers.get("hx-request") == "true" else None,
    )

    log_in(page, user.username, "pw-for-tests-1")
    page.click("nav >> text=Partitions")
    page.get_by_role("link", name=f"{schema}.payments", exact=True).click()
    page.wait_for_selector(f"h1:has-text('{schema}.payments')")
    page.select_option("select[name=column]", "created_at")
    page.select_option("select[name=granularity]", "month")
    page.select_option("select[name=null_keys]", "lose_uniqueness")  # the fixture has NULL keys
    page.fill("input[name=consent]", "lose uniqueness")
    # Small batches with a pause between them: the copy lasts a few seconds, long
    # enough for the operator to watch it.
    page.fill("input[name=batch_rows]", "500")
    page.fill("input[name=throttle_ms]", "300")
    page.click("button:has-text('Show the plan')")

    # The plan page: every step with its SQL, nothing run yet.
    page.wait_for_selector("h2:has-text('Steps, their SQL and their rollback')")
    migration = Migration.objects.get(schema=schema, table="payments")
    assert page.url.endswith(f"/partitions/migrations/{migration.pk}/")
    assert migration.state == MigrationState.PLANNED
    steps = [s["name"] for s in migration.plan["steps"]]
    assert {"create", "copy", "verify", "swap"} <= set(steps)
    summaries = page.locator("details summary")
    assert summaries.count() == len(steps)
    for i, name in enumerate(steps):
        assert f"{i + 1}. {name}" in summaries.nth(i).inner_text()
        sql_text = page.locator("details").nth(i).locator("pre").first.text_content()
        assert sql_text.strip(), f"step {name} shows no SQL"
    assert "CREATE TABLE" in page.locator("details").first.text_content()
    assert relkind(warehouse_db, schema, "payments") == "r"

    # Confirm: the label says what to type; the button waits for it; the name as the
    # page shows it (schema-qualified) is accepted.
    start = page.locator("form", has=page.get_by_role("button", name="Run this plan"))
    assert f"Type payments (or {schema}.payments)" in start.inner_text()
    button = start.get_by_role("button", name="Run this plan")
    start.locator("input[name=confirm]").fill("payment")
    assert button.is_disabled()
    start.locator("input[name=confirm]").fill(f"{schema}.payments")
    assert button.is_enabled()
    start.locator("textarea[name=reason]").fill("monthly partitions for retention")
    start.get_by_role("button", name="Run this plan").click()
    page.wait_for_selector(f"text=Migration #{migration.pk} started.")

    # Watch: the status polls itself (no reload) until the run has ended.
    page.wait_for_function(POLL_ENDED, timeout=60_000)
    migration.refresh_from_db()
    run = Run.objects.get(pk=migration.run_id)
    assert run.status == "succeeded", run.error
    assert migration.state == MigrationState.SUCCEEDED
    assert dict(migration.steps.values_list("name", "status")) == dict.fromkeys(steps, "done")
    assert shown_state(page) == "succeeded"
    assert [step_status(page, name) for name in steps] == ["done"] * len(steps)
    watched = [u for u in polls if u.endswith(f"/partitions/migrations/{migration.pk}/")]
    assert watched, "the migration page never polled its status"
    # Swapped: the name now serves the partitioned table, with the same rows.
    assert relkind(warehouse_db, schema, "payments") == "p"
    assert checksum(warehouse_db, schema, "payments") == before

    # Roll back: the form appeared with the last poll, without a reload.
    rollback = page.locator("form", has=page.get_by_role("button", name="Roll back"))
    rollback.locator("textarea[name=reason]").fill("dashboards slower")
    polls.clear()
    rollback.get_by_role("button", name="Roll back").click()
    page.wait_for_selector(f"text=Rollback of migration #{migration.pk} started.")
    page.wait_for_function(POLL_ENDED, timeout=60_000)
    assert shown_state(page) == "rolled_back"
    assert page.get_by_role("button", name="Roll back").count() == 0

    # The original serves again, with the same rows; the partitioned copy is gone.
    migration.refresh_from_db()
    assert migration.state == MigrationState.ROLLED_BACK
    rollback_run = Run.objects.get(pk=migration.rollback_run_id)
    assert rollback_run.status == "succeeded", rollback_run.error
    assert rollback_run.pk != run.pk
    assert relkind(warehouse_db, schema, "payments") == "r"
    assert checksum(warehouse_db, schema, "payments") == before
    assert tables_in(warehouse_db, schema) == {"payments", "customers"}

    # The audit log: the plan, the start linked to the migration run, the rollback
    # linked to the rollback run, each by this operator and succeeded.
    planned = AuditEvent.objects.get(
        action="partitions.plan", target=f"main:{schema}.payments", actor=user
    )
    assert planned.outcome == "ok"
    started = AuditEvent.objects.get(
        action="partitions.migrate", params__migration_id=migration.pk, actor=user
    )
    assert started.run_id == run.pk
    assert started.params["reason"] == "monthly partitions for retention"
    assert started.outcome == "ok"
    rolled = AuditEvent.objects.get(
        action="partitions.rollback", params__migration_id=migration.pk, actor=user
    )
    assert rolled.run_id == rollback_run.pk
    assert rolled.params["reason"] == "dashboards slower"
    assert rolled.outcome == "ok"
    assert not AuditEvent.objects.filter(action="partitions.auto_rollback").exists()
