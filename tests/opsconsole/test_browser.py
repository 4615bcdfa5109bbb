import pytest

from tests.browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_logs_in_sees_the_dashboard_opens_audit_and_logs_out(page, make_user):
    user = make_user("viewer", username="browser-viewer")
    log_in(page, user.username, "pw-for-tests-1")
    page.wait_for_selector("h1:has-text('Dashboard')")
    # The readiness tile is loaded by htmx after the page.
    page.wait_for_selector("text=database")

    page.click("nav >> text=Audit")
    page.wait_for_selector("h1:has-text('Audit log')")
    assert page.locator("td", has_text="auth.login").count() >= 1

    page.click("text=Log out")
    page.wait_for_selector("input[name=username]")
    assert page.url.endswith("/login/")
