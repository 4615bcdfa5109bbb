"""Every URL the resolver knows is guarded: new endpoints are covered automatically."""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from opsconsole.models import AuditEvent

PUBLIC = {
    "login",
    "healthz",
    "readyz",
    "metrics",
    "oidc_authentication_init",  # single sign-on: the redirect to the provider and back
    "oidc_authentication_callback",
}
SESSION_ONLY = {"logout", "oidc_logout"}  # needs a login, no role


def walk(patterns, prefix="", namespace=None):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            if str(entry.pattern).startswith("admin/"):
                continue  # Django admin: its own staff checks
            ns = entry.namespace or namespace
            yield from walk(entry.url_patterns, prefix + str(entry.pattern), ns)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace else entry.name
            yield name, prefix + str(entry.pattern), entry.callback


def sample_path(route: str) -> str:
    path = re.sub(r"<int:\w+>", "1", route)
    path = re.sub(r"<(?:str|slug|path:)?:?\w+>", "sample", path)
    return "/" + path


ROUTES = list(walk(get_resolver().url_patterns))
# The JSON API's operations answer 401/403 themselves (tests/opsconsole/test_api_access.py).
TOKEN_GUARDED = {n for n, _, cb in ROUTES if getattr(cb, "token_guarded", False)}
GUARDED = [(n, r, cb) for n, r, cb in ROUTES if n not in PUBLIC | SESSION_ONLY | TOKEN_GUARDED]
MUTATING = [(n, r, cb) for n, r, cb in GUARDED if cb.required_role in ("operator", "admin")]


def test_every_view_states_its_role():
    missing = [name for name, _, cb in GUARDED if not hasattr(cb, "required_role")]
    assert missing == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "route"), [(n, r) for n, r, _ in GUARDED + [("logout", "logout/", None)]]
)
def test_it_redirects_anonymous_to_login(client, name, route):
    response = client.get(sample_path(route))
    assert response.status_code == 302, name
    assert response["Location"].startswith("/login/")


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "route"), [(n, r) for n, r, _ in MUTATING])
def test_it_refuses_a_viewer_and_audits_it(client_as, name, route):
    client = client_as("viewer")
    response = client.post(sample_path(route), {"confirm": "anything"})
    assert response.status_code == 403, name
    denied = AuditEvent.objects.get(action="access.denied")
    assert denied.actor == client.user
    assert denied.outcome == "denied"


@pytest.mark.django_db
def test_a_user_without_a_role_sees_nothing(client_as):
    response = client_as(None).get("/")
    assert response.status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/healthz", "/login/"])
def test_public_pages_answer_anonymous(client, path):
    assert client.get(path).status_code == 200
