"""The API's docs page in a real browser: Swagger UI from the console's own static files
(no CDN, the page works offline), under the console's CSP."""

import pytest

from tests.browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_api_docs_render_offline_under_the_csp(page, make_user, live_server):
    violations, outside = [], []
    page.on("console", lambda m: "Content Security Policy" in m.text and violations.append(m.text))
    page.on(
        "request",
        lambda r: not r.url.startswith(live_server.url) and outside.append(r.url),
    )
    user = make_user("viewer")
    log_in(page, user.username, "pw-for-tests-1")
    page.goto("/api/docs")
    page.wait_for_selector(".opblock-summary-path:has-text('/api/migrations/{migration_id}/start')")
    assert violations == [] and outside == []
