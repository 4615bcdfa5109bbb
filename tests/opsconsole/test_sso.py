"""Single sign-on against a real OpenID Connect provider (django-oauth-toolkit in its own
process, tests/oidc_provider/): discovery, the code flow with PKCE, roles from groups,
re-evaluation at sign-in and at the session refresh, logout, disabled accounts."""

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth import get_user_model

from opsconsole import users
from opsconsole.accounts import oidc
from opsconsole.accounts.models import AccountOrigin
from opsconsole.models import AuditEvent
from opsconsole.roles import role_of

pytestmark = pytest.mark.django_db(transaction=True)
ROLES = {"ops-admins": "admin", "ops": "operator"}


@pytest.fixture
def sso(settings, oidc_provider, live_server):
    settings.OIDC_ISSUER = oidc_provider.issuer
    settings.OIDC_RP_CLIENT_ID = oidc_provider.client_id
    settings.OIDC_RP_CLIENT_SECRET = oidc_provider.client_secret
    settings.OIDC_GROUP_ROLES = ROLES
    oidc._discovered.clear()
    yield oidc_provider
    oidc._discovered.clear()
    if "bob" in oidc_provider.changed:
        oidc_provider.set_groups("bob", ["ops"])
    oidc_provider.changed.clear()


def start(session: requests.Session, console: str) -> requests.Response:
    """The console's redirect to the provider (step 1 of the code flow)."""
    return session.get(f"{console}/oidc/authenticate/", allow_redirects=False, timeout=10)


def sign_in(provider, console: str, username: str) -> tuple[requests.Session, requests.Response]:
    """Sign in at the provider, then through the console's code flow; the console's
    last answer (a redirect to the dashboard, or back to the login page)."""
    session = provider.session_of(username)
    to_provider = start(session, console)
    to_console = session.get(to_provider.headers["Location"], allow_redirects=False, timeout=10)
    assert to_console.headers["Location"].startswith(f"{console}/oidc/callback/?")
    done = session.get(to_console.headers["Location"], allow_redirects=False, timeout=10)
    return session, done


def test_discovery_gives_the_endpoints(sso):
    document = oidc.discovery()
    assert document["issuer"] == sso.issuer
    assert oidc.oidc_setting("OIDC_OP_TOKEN_ENDPOINT") == f"{sso.issuer}/token/"
    assert oidc.oidc_setting("OIDC_OP_JWKS_ENDPOINT") == document["jwks_uri"]


def test_the_code_flow_uses_pkce_and_a_nonce(sso, live_server):
    response = start(requests.Session(), live_server.url)
    assert response.status_code == 302
    url = urlsplit(response.headers["Location"])
    query = parse_qs(url.query)
    assert f"{url.scheme}://{url.netloc}{url.path}" == oidc.discovery()["authorization_endpoint"]
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["nonce"] and query["state"] and "groups" in query["scope"][0]
    assert query["redirect_uri"] == [f"{live_server.url}/oidc/callback/"]


def test_the_first_sign_in_creates_the_account_with_its_groups_role(sso, live_server):
    session, done = sign_in(sso, live_server.url, "alice")
    assert done.status_code == 302 and done.headers["Location"] == "/"
    alice = get_user_model().objects.get(username="alice")
    assert role_of(alice) == "admin" and not alice.has_usable_password()
    origin = AccountOrigin.objects.get(user=alice)
    assert (origin.origin, origin.issuer) == ("oidc", sso.issuer) and origin.subject
    created = AuditEvent.objects.get(action="user.create_from_sso")
    assert created.target == "alice" and created.params["role"] == "admin"
    assert AuditEvent.objects.filter(action="auth.login", actor=alice, outcome="ok").exists()
    users_page = session.get(f"{live_server.url}/users/", timeout=10)
    assert users_page.status_code == 200 and "oidc" in users_page.text


def test_a_group_change_is_applied_at_the_next_sign_in(sso, live_server):
    sign_in(sso, live_server.url, "bob")
    bob = get_user_model().objects.get(username="bob")
    assert role_of(bob) == "operator"
    sso.set_groups("bob", ["marketing"])
    session, done = sign_in(sso, live_server.url, "bob")
    assert done.headers["Location"] == "/"
    assert role_of(get_user_model().objects.get(pk=bob.pk)) is None
    change = AuditEvent.objects.get(action="user.sso_role")
    assert (change.params["previous_role"], change.params["role"]) == ("operator", None)
    assert session.get(f"{live_server.url}/", timeout=10).status_code == 403
    assert AccountOrigin.objects.filter(user__username__startswith="bob").count() == 1


def test_the_session_refresh_takes_the_role_away(sso, live_server, settings):
    settings.OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS = 0  # due at the next request
    session, _ = sign_in(sso, live_server.url, "bob")
    assert session.get(f"{live_server.url}/jobs/", timeout=10).status_code == 200
    sso.set_groups("bob", [])
    assert session.get(f"{live_server.url}/jobs/", timeout=10).status_code == 403
    assert role_of(get_user_model().objects.get(username="bob")) is None


def test_an_unmapped_group_signs_in_without_a_role(sso, live_server):
    session, done = sign_in(sso, live_server.url, "dave")
    assert done.headers["Location"] == "/"
    assert session.get(f"{live_server.url}/", timeout=10).status_code == 403


def test_logout_ends_the_console_and_the_provider_sessions(sso, live_server):
    session, _ = sign_in(sso, live_server.url, "alice")
    csrf = session.cookies.get("csrftoken", domain="localhost.local") or next(
        c.value for c in session.cookies if c.name == "csrftoken" and "localhost" in c.domain
    )
    out = session.post(
        f"{live_server.url}/oidc/logout/", headers={"X-CSRFToken": csrf}, allow_redirects=False
    )
    assert out.status_code == 302
    end = urlsplit(out.headers["Location"])
    assert f"{end.scheme}://{end.netloc}{end.path}" == oidc.discovery()["end_session_endpoint"]
    assert "id_token_hint" in parse_qs(end.query)
    back = session.get(out.headers["Location"], allow_redirects=False, timeout=10)
    assert back.status_code == 302 and back.headers["Location"].endswith("/login/")
    assert session.get(f"{live_server.url}/", allow_redirects=False).status_code == 302
    again = session.get(start(session, live_server.url).headers["Location"], allow_redirects=False)
    assert "/accounts/login/" in again.headers["Location"]  # the provider asks again
    assert AuditEvent.objects.filter(action="auth.logout", actor_name="alice").exists()


def test_a_deactivated_account_cannot_sign_in(sso, live_server, make_user):
    sign_in(sso, live_server.url, "alice")
    alice = get_user_model().objects.get(username="alice")
    users.update_user(make_user("admin"), alice, role="admin", is_active=False)
    session, done = sign_in(sso, live_server.url, "alice")
    assert done.headers["Location"] == "/login/?sso=failed"
    assert session.get(f"{live_server.url}/", allow_redirects=False).status_code == 302
    refused = AuditEvent.objects.filter(action="auth.login", outcome="failed")
    assert refused.filter(error="account deactivated in the console", target="alice").exists()


def test_a_user_disabled_at_the_provider_gets_no_code(sso):
    assert not sso.session_of("erin").signed_in


def test_local_passwords_can_be_switched_off(client, make_user, settings, sso):
    make_user("admin", username="local", password="pw-for-tests-1")
    settings.LOCAL_LOGIN_ENABLED = False
    page = client.get("/login/").content.decode()
    assert 'id="sso-login"' in page and 'name="password"' not in page
    client.post("/login/", {"username": "local", "password": "pw-for-tests-1"})
    assert client.get("/").status_code == 302  # still not signed in
    settings.LOCAL_LOGIN_ENABLED = True
    client.post("/login/", {"username": "local", "password": "pw-for-tests-1"})
    assert client.get("/").status_code == 200


def test_an_unreachable_provider_is_a_clear_503_and_passwords_still_work(
    client, make_user, settings
):
    settings.OIDC_ISSUER = "http://127.0.0.1:1/o"
    oidc._discovered.clear()
    response = client.get("/oidc/authenticate/")
    assert response.status_code == 503 and "did not answer" in response.content.decode()
    make_user("viewer", username="v", password="pw-for-tests-1")
    client.post("/login/", {"username": "v", "password": "pw-for-tests-1"})
    assert client.get("/").status_code == 200


def test_without_an_issuer_the_sso_pages_are_a_404(client, settings):
    settings.OIDC_ISSUER = ""
    assert client.get("/oidc/authenticate/").status_code == 404
    assert 'id="sso-login"' not in client.get("/login/").content.decode()
