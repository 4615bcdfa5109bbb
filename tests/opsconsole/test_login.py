import pytest
from django.test import Client

from opsconsole.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_it_logs_in_and_audits(client, make_user):
    user = make_user("viewer", username="ana")
    response = client.post("/login/", {"username": "ana", "password": "pw-for-tests-1"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    assert AuditEvent.objects.filter(action="auth.login", actor=user, outcome="ok").count() == 1


@pytest.mark.parametrize("username", ["ana", "nobody"])
def test_it_rejects_a_wrong_password_or_unknown_user(client, make_user, username):
    make_user("viewer", username="ana")
    response = client.post("/login/", {"username": username, "password": "wrong"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    event = AuditEvent.objects.get(action="auth.login")
    assert event.outcome == "failed" and event.target == username


def test_it_locks_out_after_repeated_failures(client, make_user):
    make_user("viewer", username="ana")
    for _ in range(5):
        client.post("/login/", {"username": "ana", "password": "wrong"})
    response = client.post("/login/", {"username": "ana", "password": "pw-for-tests-1"})
    assert response.status_code == 429
    assert b"Too many failed log-ins" in response.content


def test_it_rejects_a_post_without_csrf_token(make_user):
    user = make_user("admin")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post("/users/new/", {"username": "x"})
    assert response.status_code == 403


def test_an_expired_session_goes_back_to_login(client, make_user):
    client.force_login(make_user("viewer"))
    client.cookies["sessionid"] = "expired-or-unknown"
    response = client.get("/audit/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_logout_ends_the_session(client, make_user):
    client.force_login(make_user("viewer"))
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302
