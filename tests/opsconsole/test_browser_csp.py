"""In a real browser under the CSP: no violation, and the select filters that used an
inline onchange handler still reload the page (through htmx)."""

import pytest

from tests.browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_target_select_reloads_the_page_without_csp_violations(page, make_user, settings):
    settings.CACHE_TARGETS = {
        "main": settings.CACHE_TARGETS["main"],
        "spare": "redis://127.0.0.1:6379/13",
    }
    violations = []
    page.on("console", lambda m: "Content Security Policy" in m.text and violations.append(m.text))
    user = make_user("viewer")
    log_in(page, user.username, "pw-for-tests-1")
    page.wait_for_selector("h1:has-text('Dashboard')")
    page.goto("/cache/keys/?target=main")
    page.select_option("select[name=target]", "spare")
    page.wait_for_url("**/cache/keys/?target=spare")
    page.wait_for_selector("select[name=target] option[value=spare][selected]", state="attached")
    assert violations == []
