"""In a real browser: find the suggestion, apply it, watch the run finish, see the index."""

import pytest

from tests.browser import log_in

pytestmark = [pytest.mark.browser]


def test_it_applies_a_suggestion_from_the_browser(
    page, celery_worker, make_user, shop, run_statement, wh
):
    run_statement("SELECT * FROM {s}.orders WHERE customer_id = %s", shop, [5])
    user = make_user("operator", username="browser-operator")
    log_in(page, user.username, "pw-for-tests-1")
    page.click("nav >> text=Queries")
    page.wait_for_selector("h1:has-text('Slow queries')")

    page.goto(f"/queries/indexes/?warehouse=main&min_ms=0&schema={shop}")
    page.wait_for_selector("text=CREATE INDEX CONCURRENTLY")  # loaded by htmx
    page.click("text=Apply…")
    page.fill("input[name=confirm]", "orders_customer_id_idx")
    page.click("text=Build the index")
    page.wait_for_selector("text=index is valid")  # the run page polls until it ends
    valid = wh.execute(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
        [shop, "orders_customer_id_idx"],
    ).fetchone()
    assert valid == (True,)
