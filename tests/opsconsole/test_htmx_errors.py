"""An htmx request that the server refuses shows its message; it never silently does nothing."""

import pytest

from tests.browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_shows_the_error_partial_of_a_refused_explain(page, make_user):
    viewer = make_user("viewer", username="htmx-errors")
    log_in(page, viewer.username, "pw-for-tests-1")
    page.wait_for_selector("h1")
    page.goto("/queries/explain/?warehouse=main")
    page.fill("textarea[name=statement]", "SELECT * FROM no_such_table_anywhere")

    with page.expect_response(lambda r: r.url.endswith("/queries/explain/")) as answer:
        page.click("button:has-text('Explain')")
    assert answer.value.status == 400
    error = page.locator("#plan .error")
    error.wait_for()
    assert "no_such_table_anywhere" in error.inner_text()
    # The page was updated in place by htmx, not reloaded.
    assert page.url.endswith("/queries/explain/?warehouse=main")
