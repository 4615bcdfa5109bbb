"""The main flows in Chromium, on a laptop and on a phone, as the role that may act and
as a viewer: cache invalidate, warm, sync, migration plan → confirm → swap → rollback,
index apply → rollback, runbook with approval, user create.

Every page a flow passes through is checked the same way (`looks_right`): nothing wider
than the screen, no Python repr or traceback in the visible text, and every typed
confirmation's label names the exact text its field accepts. One browser serves the
module; each user gets a browser context logged in by cookie, not through the form.
"""

import json
import os
import re

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import sync_playwright

from cachemgr.targets import connect
from jobs.models import Run
from partitions.models import Migration, MigrationState
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.opsconsole.test_layout import OVERFLOWING
from tests.partitions.conftest import checksum, create_payments, relkind
from tests.partitions.conftest import connect as connect_warehouse

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS = {"laptop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}
PASSWORD = "pw-for-tests-1"

# What must never reach an operator's screen: Python's own spelling of values.
INTERNALS = [
    re.compile(r"Traceback \(most recent call last\)"),
    re.compile(r"\{[#%]|[#%]\}"),  # template syntax shown as text (a multi-line {# #})
    re.compile(r"\{'[^']*': "),  # a dict
    re.compile(r"\[\{'"),  # a list of dicts
    re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>"),
    re.compile(r"\b(datetime\.)?datetime\(\d"),
    re.compile(r"\bDecimal\('"),
    re.compile(r"\bUUID\('"),
]

# Records the progress line each time the page (or an htmx swap) shows one while its
# run is active, so a test can tell that progress was visible *during* the run.
WATCH_PROGRESS = """
window.__progressSeen = [];
function __look() {
  document.querySelectorAll('.progress-line').forEach(function (line) {
    var box = line.closest('[hx-trigger]');
    var text = line.innerText.replace(/\\s+/g, ' ').trim();
    var running = box && line.querySelector('progress') && /\\d+%/.test(text);
    if (running) window.__progressSeen.push(text);
  });
}
document.addEventListener('DOMContentLoaded', __look);
document.addEventListener('htmx:afterSettle', __look);
"""


@pytest.fixture(scope="module")
def browser():
    # Playwright's sync API runs an event loop in this thread; the ORM calls around it
    # stay synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture(params=list(VIEWPORTS), ids=list(VIEWPORTS))
def viewport(request):
    return VIEWPORTS[request.param]


@pytest.fixture
def open_as(browser, live_server, viewport, make_user):
    """open_as("operator") -> a page of a fresh user with that role, logged in."""
    contexts = []

    def open_page(role: str, username: str | None = None):
        user = make_user(role, username=username)
        client = Client()
        client.force_login(user)
        context = browser.new_context(base_url=live_server.url, viewport=viewport)
        context.set_default_timeout(20_000)
        context.add_init_script(WATCH_PROGRESS)
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
        context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}]
        )
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def payments(warehouse_db, pg_schema):
    create_payments(warehouse_db, pg_schema)
    return pg_schema


def looks_right(page) -> None:
    """The page fits the screen, shows no internals, and its typed confirmations name
    what they accept."""
    page.wait_for_load_state("networkidle")
    layout = page.evaluate(OVERFLOWING)
    assert layout["page"] <= layout["viewport"] and not layout["wide"], (page.url, layout)
    text = page.inner_text("body")
    for pattern in INTERNALS:
        assert not pattern.search(text), (page.url, pattern.pattern, text[:2000])
    for field in page.locator("input[data-confirm-words]").all():
        words = json.loads(field.get_attribute("data-confirm-words"))
        label = field.evaluate("f => (f.closest('label') || f.labels[0] || f).innerText")
        assert any(word in label for word in words), (page.url, label, words)


def refused(page, path: str, role: str) -> None:
    """A page the user's role may not open answers with a readable reason."""
    response = page.goto(path)
    assert response.status == 403
    assert f"This needs the {role} role." in page.inner_text("main")
    looks_right(page)


def confirm_label(page, field: str = "input[name=confirm]") -> str:
    return page.locator(field).evaluate("f => (f.closest('label') || f.labels[0]).innerText")


def wait_until_run_ends(page) -> None:
    page.wait_for_function(
        "() => { const box = document.querySelector('#run-progress');"
        " return box !== null && !box.hasAttribute('hx-trigger'); }",
        timeout=60_000,
    )


def progress_seen_while_running(page) -> list[str]:
    return page.evaluate("window.__progressSeen")


# --- cache ---------------------------------------------------------------------------


def test_cache_invalidate(open_as, celery_worker, viewport):
    redis = connect("main")
    prefix = f"flow{viewport['width']}:"
    pipe = redis.pipeline(transaction=False)
    for i in range(1500):
        pipe.set(f"{prefix}web:{i}", b"x")
    pipe.set(f"{prefix}keep", b"x")
    pipe.execute()
    try:
        page = open_as("operator")
        page.goto("/cache/invalidate/?target=main")
        looks_right(page)
        page.fill("input[name=pattern]", f"{prefix}web:*")
        page.click("button:has-text('Preview')")
        page.wait_for_selector("text=First matches")
        looks_right(page)
        assert f"type the pattern ({prefix}web:*) to confirm" in confirm_label(page)
        page.fill("input[name=confirm]", f"{prefix}web:*")
        page.click("button:has-text('Delete matching keys')")
        page.wait_for_selector("h1:has-text('cache.invalidate_pattern')")
        wait_until_run_ends(page)
        assert "succeeded" in page.inner_text("#run-progress")
        assert "100%" in page.inner_text("#run-progress .progress-line")
        looks_right(page)
        assert sum(1 for _ in redis.scan_iter(match=f"{prefix}web:*", count=1000)) == 0
        assert redis.exists(f"{prefix}keep") == 1

        refused(open_as("viewer"), "/cache/invalidate/?target=main", "operator")
    finally:
        for key in redis.scan_iter(match=f"{prefix}*", count=1000):
            redis.unlink(key)


def test_cache_warm(open_as, celery_worker, test_warmer):
    page = open_as("operator")
    page.goto("/cache/warm/?target=main")
    looks_right(page)
    page.select_option("select[name=warmer]", test_warmer)
    page.click("button:has-text('Warm now')")
    page.wait_for_selector("#run-progress")
    wait_until_run_ends(page)
    assert "succeeded" in page.inner_text("#run-progress")
    assert "100%" in page.inner_text("#run-progress .progress-line")
    looks_right(page)
    run = Run.objects.get(name="cache.warm")
    assert run.status == "succeeded" and run.progress_done == 50

    viewer = open_as("viewer")
    viewer.goto("/cache/warm/?target=main")
    warm_form = viewer.locator("form", has=viewer.locator("button:has-text('Warm now')"))
    assert viewer.locator("button:has-text('Warm now')").is_disabled()
    assert "Needs the operator role" in warm_form.inner_text()
    looks_right(viewer)


# --- jobs ----------------------------------------------------------------------------


def test_table_sync(open_as, celery_worker, payments, warehouse_db):
    schema = payments
    page = open_as("operator")
    page.goto("/jobs/run/table_sync/")
    looks_right(page)
    page.fill("input[name=source_table]", f"{schema}.payments")
    page.fill("input[name=target_table]", f"{schema}.payments_copy")
    page.fill("input[name=batch_size]", "1")  # 3,000 batches: seconds even on a quiet machine
    page.click("button:has-text('Run now')")
    page.wait_for_selector("#run-progress")
    wait_until_run_ends(page)
    run = Run.objects.get(name="table_sync")
    assert run.status == "succeeded", run.error
    assert progress_seen_while_running(page), "no percent shown while the sync ran"
    assert "100%" in page.inner_text("#run-progress .progress-line")
    looks_right(page)
    assert checksum(warehouse_db, schema, "payments_copy")[0] == 3000

    page.goto("/jobs/?job=table_sync")
    assert "100%" in page.inner_text("main")  # the history shows the same component
    looks_right(page)

    refused(open_as("viewer"), "/jobs/run/table_sync/", "operator")


# --- partitions ------------------------------------------------------------------------


def test_migration_plan_confirm_swap_rollback(open_as, celery_worker, payments, warehouse_db):
    schema = payments
    before = checksum(warehouse_db, schema, "payments")
    viewer = open_as("viewer")
    viewer.goto(f"/partitions/main/table/?schema={schema}&table=payments")
    assert viewer.locator("button:has-text('Show the plan')").is_disabled()
    assert "Needs the operator role" in viewer.inner_text("main")
    looks_right(viewer)

    page = open_as("operator")
    page.goto(f"/partitions/main/table/?schema={schema}&table=payments")
    looks_right(page)
    page.select_option("select[name=column]", "created_at")
    page.select_option("select[name=granularity]", "month")
    page.fill("input[name=batch_rows]", "500")
    page.fill("input[name=throttle_ms]", "300")  # a copy of a few seconds, to watch
    page.click("button:has-text('Show the plan')")
    page.wait_for_selector("h2:has-text('Steps, their SQL and their rollback')")
    looks_right(page)
    migration = Migration.objects.get(schema=schema, table="payments")

    # The SQL blocks are collapsed, with "Show all" and "Copy".
    first_sql = page.locator("details[open] [data-sql-block]").first
    collapsed = first_sql.locator("pre").evaluate("pre => pre.clientHeight")
    first_sql.locator("[data-sql-toggle]").click()
    assert first_sql.locator("[data-sql-toggle]").get_attribute("aria-expanded") == "true"
    assert first_sql.locator("pre").evaluate("pre => pre.clientHeight") > collapsed
    first_sql.locator("[data-sql-copy]").click()
    first_sql.locator("[data-sql-copy]:text-is('Copied')").wait_for()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("CREATE TABLE") and copied == first_sql.locator("pre").inner_text()
    start = page.locator("form", has=page.get_by_role("button", name="Run this plan"))
    assert f"Type payments (or {schema}.payments)" in start.inner_text()
    button = start.get_by_role("button", name="Run this plan")
    assert button.is_disabled()
    start.locator("input[name=confirm]").fill(f"{schema}.payments")
    assert button.is_enabled()
    start.locator("textarea[name=reason]").fill("monthly partitions for retention")
    button.click()
    page.wait_for_selector(f"text=Migration #{migration.pk} started.")
    page.wait_for_function(
        "() => { const s = document.querySelector('#migration-status');"
        " return s !== null && !s.hasAttribute('hx-trigger'); }",
        timeout=60_000,
    )
    migration.refresh_from_db()
    assert migration.state == MigrationState.SUCCEEDED, migration.error
    assert progress_seen_while_running(page), "no percent shown while the migration ran"
    looks_right(page)
    assert relkind(warehouse_db, schema, "payments") == "p"
    assert checksum(warehouse_db, schema, "payments") == before

    viewer.goto(f"/partitions/migrations/{migration.pk}/")
    assert viewer.get_by_role("button", name="Roll back").count() == 0
    looks_right(viewer)

    rollback = page.locator("form", has=page.get_by_role("button", name="Roll back"))
    rollback.locator("textarea[name=reason]").fill("dashboards slower")
    rollback.get_by_role("button", name="Roll back").click()
    page.wait_for_selector(f"text=Rollback of migration #{migration.pk} started.")
    page.wait_for_function(
        "() => { const s = document.querySelector('#migration-status');"
        " return s !== null && !s.hasAttribute('hx-trigger'); }",
        timeout=60_000,
    )
    migration.refresh_from_db()
    assert migration.state == MigrationState.ROLLED_BACK, migration.error
    looks_right(page)
    assert relkind(warehouse_db, schema, "payments") == "r"
    assert checksum(warehouse_db, schema, "payments") == before


# --- queries -------------------------------------------------------------------------


def index_exists(url: str, schema: str, name: str) -> bool:
    with connect_warehouse(url) as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_indexes WHERE schemaname = %s AND indexname = %s", [schema, name]
        )
        return found.fetchone() is not None


def test_index_apply_and_rollback(open_as, celery_worker, payments, warehouse_db):
    schema, name = payments, "payments_status_flow_idx"
    apply_url = (
        f"/queries/indexes/apply/?warehouse=main&schema={schema}&table=payments"
        f"&columns=status&name={name}"
    )
    admin = open_as("admin")
    admin.goto(apply_url)
    looks_right(admin)
    assert f"Type {name} to confirm" in confirm_label(admin)
    build = admin.get_by_role("button", name="Build the index")
    assert build.is_disabled()
    admin.fill("input[name=confirm]", name)
    build.click()
    admin.wait_for_selector("#run-progress")
    wait_until_run_ends(admin)
    assert "succeeded" in admin.inner_text("#run-progress")
    assert "100%" in admin.inner_text("#run-progress .progress-line")
    looks_right(admin)
    assert index_exists(warehouse_db, schema, name)

    admin.click("text=Roll back this index…")
    admin.wait_for_selector("h1:has-text('Roll back index')")
    looks_right(admin)
    assert f"Type {name} to confirm" in confirm_label(admin)
    admin.fill("input[name=confirm]", name)
    admin.get_by_role("button", name="Drop the index").click()
    admin.wait_for_selector("#run-progress")
    wait_until_run_ends(admin)
    assert "succeeded" in admin.inner_text("#run-progress")
    looks_right(admin)
    assert not index_exists(warehouse_db, schema, name)

    refused(open_as("viewer"), apply_url, "operator")


# --- runbooks and users --------------------------------------------------------------------


def test_runbook_with_approval(open_as, celery_worker):
    requester = open_as("operator")
    requester.goto("/runbooks/enforce_retention/")
    requester.click("button[value=preview]")
    requester.wait_for_selector("text=What will happen")
    looks_right(requester)
    assert "Type enforce_retention to confirm" in confirm_label(requester)
    assert "Reason (required)" in requester.inner_text("form.card")
    request_button = requester.locator("button[value=launch]")
    assert request_button.is_disabled()
    requester.fill("input[name=confirm]", "enforce_retention")
    request_button.click()  # no reason: the server says so next to the field
    requester.wait_for_selector("text=This field is required.")
    looks_right(requester)
    requester.fill("input[name=confirm]", "enforce_retention")
    requester.fill("input[name=reason]", "month end")
    requester.locator("button[value=launch]").click()
    requester.wait_for_selector("text=a second operator must approve it")
    looks_right(requester)
    assert requester.get_by_role("button", name="Approve and run").count() == 0

    viewer = open_as("viewer")
    viewer.goto("/runbooks/")
    assert "month end" in viewer.inner_text("main")
    assert viewer.get_by_role("button", name="Approve and run").count() == 0
    looks_right(viewer)

    approver = open_as("operator")
    approver.goto("/runbooks/")
    approver.get_by_role("button", name="Approve and run").click()
    approver.wait_for_selector("#runbook-steps")
    approver.wait_for_function(
        "() => !document.querySelector('#runbook-steps').hasAttribute('hx-trigger')",
        timeout=60_000,
    )
    looks_right(approver)
    run = Run.objects.get(kind="runbook")
    assert run.status == "succeeded", run.error


def test_user_create(open_as, django_user_model):
    admin = open_as("admin")
    admin.goto("/users/")
    looks_right(admin)
    new = admin.locator("form", has=admin.get_by_role("button", name="Create"))
    new.locator("input[name=username]").fill("oncall-flow")
    new.locator("input[name=password1]").fill("a-long-passphrase-42")
    new.locator("input[name=password2]").fill("a-long-passphrase-42")
    new.locator("select[name=role]").select_option("operator")
    new.get_by_role("button", name="Create").click()
    admin.wait_for_selector("td:has-text('oncall-flow')")
    looks_right(admin)
    created = django_user_model.objects.get(username="oncall-flow")
    assert created.groups.filter(name="operator").exists()

    refused(open_as("viewer"), "/users/", "admin")
