"""Every API operation is guarded by a token, and every mutation by the pages' role."""

import re

import pytest
from django.urls import get_resolver

from opsconsole.models import AuditEvent
from tests.opsconsole.test_access import ROUTES, sample_path

pytestmark = pytest.mark.django_db

# api-root only anchors the schema's server path: it answers 404 to everyone.
OPERATIONS = [
    (n, r) for n, r, cb in ROUTES if getattr(cb, "token_guarded", False) and n != "api:api-root"
]
MUTATING = {
    "api:launch_job",
    "api:cancel_run",
    "api:retry_run",
    "api:invalidate",
    "api:warm",
    "api:plan_migration",
    "api:start_migration",
    "api:rollback_migration",
    "api:apply_index",
    "api:rollback_index",
    "api:launch_runbook",
}


def test_the_api_has_every_operation_the_issue_asks_for():
    names = {n for n, _ in OPERATIONS}
    reads = {"api:runs", "api:run", "api:stats", "api:cache", "api:migrations", "api:migration"}
    reads |= {"api:slow_queries", "api:suggestions", "api:audit_events"}
    assert reads | MUTATING <= names
    assert get_resolver().resolve("/api/openapi.json").func.required_role == "viewer"


@pytest.mark.parametrize(("name", "route"), OPERATIONS)
def test_it_answers_401_without_a_token(client, name, route):
    for method in (client.get, client.post):
        response = method(sample_path(route))
        assert response.status_code in (401, 405), name
        if response.status_code == 401:
            assert response.json() == {"detail": "Unauthorized"}


# One body valid for every action (each takes the fields it knows), so that the role
# guard, not the input check, is what answers.
VALID_BODY = {
    "confirm": "x",
    "reason": "x",
    "pattern": "x",
    "warmer": "x",
    "warehouse": "main",
    "schema": "s",
    "table": "t",
    "column": "c",
    "granularity": "month",
    "columns": ["a"],
    "name": "i",
}


@pytest.mark.parametrize(("name", "route"), [(n, r) for n, r in OPERATIONS if n in MUTATING])
def test_a_viewer_token_cannot_act_and_it_is_audited(api_as, name, route):
    api = api_as("operator", scope="viewer")
    path = sample_path(re.sub(r"<\w+_id>", "1", route)).replace("/api", "", 1)
    response = api.post(path, VALID_BODY)
    assert response.status_code == 403, name
    denied = AuditEvent.objects.get(action="access.denied")
    assert denied.actor_name == f"{api.user.username} (token tests)"
    assert denied.params["needs"] in ("operator", "admin")


def test_a_garbage_token_is_a_401_and_audited(client):
    response = client.get("/api/runs", HTTP_AUTHORIZATION="Bearer oct_abc_def")
    assert response.status_code == 401
    assert "unknown token" in response.json()["detail"]
    assert AuditEvent.objects.get(action="api.token").outcome == "denied"


def test_the_schema_and_docs_are_for_logged_in_viewers_and_load_nothing_from_outside(
    client, client_as
):
    assert client.get("/api/openapi.json").status_code == 302
    viewer = client_as("viewer")
    schema = viewer.get("/api/openapi.json").json()
    assert "/api/migrations/{migration_id}/start" in schema["paths"]
    assert schema["components"]["securitySchemes"]["TokenAuth"]["scheme"] == "bearer"
    docs = viewer.get("/api/docs").content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in docs
    assert "http://" not in docs and "https://" not in docs
