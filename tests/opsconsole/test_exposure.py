"""What the console shows, and to whom: /metrics behind a proxy, /readyz details,
security headers, tracebacks, and how a refusal is logged."""

import logging
from html.parser import HTMLParser
from pathlib import Path

import pytest

from jobs.models import Run

pytestmark = pytest.mark.django_db
TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
CLOSED_PORT = "redis://127.0.0.1:1/0"


# --- /metrics -------------------------------------------------------------------


def test_metrics_needs_the_token_behind_a_proxy_on_the_same_host(client, settings):
    settings.READYZ_REQUIRE_WORKER = False
    direct = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert direct.status_code == 200
    proxied = client.get(
        "/metrics", REMOTE_ADDR="127.0.0.1", headers={"X-Forwarded-For": "203.0.113.9"}
    )
    assert proxied.status_code == 403
    forwarded = client.get("/metrics", REMOTE_ADDR="127.0.0.1", headers={"Forwarded": "for=x"})
    assert forwarded.status_code == 403


def test_metrics_with_the_token_passes_the_proxy(client, settings):
    settings.READYZ_REQUIRE_WORKER = False
    settings.METRICS_TOKEN = "s3cret-token"
    response = client.get(
        "/metrics",
        headers={"Authorization": "Bearer s3cret-token", "X-Forwarded-For": "203.0.113.9"},
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE opsconsole_runs gauge" in response.content.decode()


def test_metrics_allows_no_address_unless_listed(client, settings):
    settings.METRICS_ALLOWED_IPS = []  # the production default
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


# --- /readyz --------------------------------------------------------------------


def test_readyz_tells_a_stranger_the_status_only(client, settings):
    settings.CELERY_BROKER_URL = CLOSED_PORT
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "failing"}
    assert b"127.0.0.1" not in response.content


def test_readyz_gives_details_after_login(client_as, settings):
    settings.CELERY_BROKER_URL = CLOSED_PORT
    response = client_as("viewer").get("/readyz")
    checks = {c["name"]: c for c in response.json()["checks"]}
    assert checks["broker"]["ok"] is False and "Connection" in checks["broker"]["detail"]


def test_readiness_warns_when_the_warehouse_login_is_a_superuser(client_as, settings):
    settings.READYZ_REQUIRE_WORKER = False
    response = client_as("viewer").get("/readyz")
    warehouse = {c["name"]: c for c in response.json()["checks"]}["warehouse:main"]
    assert warehouse["ok"] is True
    assert "superuser" in warehouse["warning"] and "least-privilege" in warehouse["warning"]


# --- headers --------------------------------------------------------------------


def test_pages_carry_csp_referrer_and_permissions_policies(client_as):
    response = client_as("viewer").get("/audit/")
    csp = response["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if d.strip())
    assert directives["script-src"] == "'self'"
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert response["Referrer-Policy"] == "same-origin"
    assert "camera=()" in response["Permissions-Policy"]
    assert "no-store" in response["Cache-Control"]


def test_the_login_page_has_the_policies_too(client):
    response = client.get("/login/")
    assert "Content-Security-Policy" in response
    assert "Permissions-Policy" in response


class _InlineFinder(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, _ in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=…>")

    def handle_data(self, data):
        if self.lasttag == "script" and data.strip():
            self.found.append("inline <script>")


def test_no_template_has_an_inline_handler_or_script():
    found = {}
    for path in TEMPLATES.rglob("*.html"):
        finder = _InlineFinder()
        finder.feed(path.read_text())
        if finder.found:
            found[str(path.relative_to(TEMPLATES))] = finder.found
    assert found == {}


# --- tracebacks and refusals ----------------------------------------------------


@pytest.fixture
def failed_run():
    return Run.objects.create(
        name="table_sync",
        actor_name="x",
        status="failed",
        error="ValueError: the source table is gone",
        traceback='Traceback (most recent call last):\n  File "/srv/jobs/sync.py", line 9',
    )


def test_a_viewer_sees_the_reason_but_not_the_traceback(client_as, failed_run):
    body = client_as("viewer").get(f"/jobs/runs/{failed_run.pk}/").content.decode()
    assert "the source table is gone" in body
    assert "Traceback" not in body and "/srv/jobs/sync.py" not in body


def test_an_admin_sees_the_traceback(client_as, failed_run):
    body = client_as("admin").get(f"/jobs/runs/{failed_run.pk}/").content.decode()
    assert "/srv/jobs/sync.py" in body


def test_a_refusal_is_one_log_line_without_a_traceback(client_as, caplog):
    client = client_as("viewer")
    with caplog.at_level(logging.INFO):
        response = client.get("/users/")
    assert response.status_code == 403
    refusals = [r for r in caplog.records if r.name == "opsconsole.access"]
    assert len(refusals) == 1
    line = refusals[0].getMessage()
    assert client.user.username in line and "/users/" in line and "admin role" in line
    assert not [r for r in caplog.records if r.exc_info]
    assert not [r for r in caplog.records if r.name == "django.request"]
