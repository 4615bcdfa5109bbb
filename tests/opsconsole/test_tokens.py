"""API tokens: shown once, stored hashed, scoped under the owner's role, revocable."""

import hashlib
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from opsconsole.models import AuditEvent
from opsconsole.roles import role_of, set_role
from opsconsole.tokens import services
from opsconsole.tokens.models import ApiToken

pytestmark = pytest.mark.django_db


def test_it_shows_the_token_once_and_stores_only_its_hash(client_as):
    client = client_as("operator")
    response = client.post("/tokens/new/", {"name": "deploy", "scope": "operator", "days": 30})
    assert response.status_code == 200
    token = ApiToken.objects.get(owner=client.user, name="deploy")
    text = response.context["issued"].secret
    assert text.startswith(f"oct_{token.key_id}_") and text in response.content.decode()
    assert token.secret_hash == hashlib.sha256(text.encode()).hexdigest()
    assert text not in json.dumps(list(ApiToken.objects.values()), default=str)
    assert text not in client.get("/tokens/").content.decode()
    event = AuditEvent.objects.get(action="token.create")
    assert event.outcome == "ok" and event.target == f"{client.user.username}/deploy"
    assert text not in json.dumps(event.params)


def test_it_refuses_a_scope_wider_than_the_owners_role(client_as):
    client = client_as("viewer")
    response = client.post("/tokens/new/", {"name": "x", "scope": "admin", "days": 30})
    assert response.status_code == 400
    assert "wider than" in response.content.decode()
    assert not ApiToken.objects.exists()
    assert AuditEvent.objects.get(action="token.create").outcome == "failed"


def test_a_token_acts_with_its_scope_capped_by_the_owners_role(make_user):
    owner = make_user("admin")
    issued = services.create_token(owner, owner, "ci", "operator", 7)
    assert role_of(services.authenticate(issued.secret).owner) == "operator"
    set_role(owner, "viewer")
    assert role_of(services.authenticate(issued.secret).owner) == "viewer"


def test_a_superusers_viewer_token_stays_a_viewer(django_user_model):
    root = django_user_model.objects.create_superuser("root", "r@x", "pw-for-tests-1")
    issued = services.create_token(root, root, "read", "viewer", 7)
    assert role_of(services.authenticate(issued.secret).owner) == "viewer"


def test_it_records_the_last_use(make_user):
    owner = make_user("viewer")
    issued = services.create_token(owner, owner, "t", "viewer", 7)
    services.authenticate(issued.secret)
    issued.token.refresh_from_db()
    assert timezone.now() - issued.token.last_used_at < timedelta(seconds=5)


@pytest.mark.parametrize("why", ["revoked", "expired", "unknown token"])
def test_it_refuses_and_audits_a_dead_token(make_user, why):
    owner = make_user("operator")
    issued = services.create_token(owner, owner, "t", "viewer", 7)
    text = issued.secret
    if why == "revoked":
        services.revoke_token(owner, issued.token)
    elif why == "expired":
        ApiToken.objects.filter(pk=issued.token.pk).update(expires_at=timezone.now())
    else:
        text = text[:-4] + "AAAA"
    with pytest.raises(services.TokenRefused, match=why):
        services.authenticate(text, ip_address="10.0.0.9")
    denied = AuditEvent.objects.get(action="api.token")
    assert denied.outcome == "denied" and denied.params["why"] == why
    assert denied.target == f"{owner.username}/t" or why == "unknown token"
    assert issued.token.secret_hash[:10] not in denied.target


def test_it_revokes_from_the_page(client_as):
    client = client_as("viewer")
    issued = services.create_token(client.user, client.user, "t", "viewer", 7)
    response = client.post(f"/tokens/{issued.token.pk}/revoke/")
    assert response.status_code == 302
    issued.token.refresh_from_db()
    assert issued.token.state == "revoked"
    assert AuditEvent.objects.get(action="token.revoke").outcome == "ok"


def test_it_does_not_let_a_user_revoke_anothers_token(client_as, make_user):
    other = make_user("viewer")
    issued = services.create_token(other, other, "t", "viewer", 7)
    response = client_as("operator").post(f"/tokens/{issued.token.pk}/revoke/")
    assert response.status_code == 404
    issued.token.refresh_from_db()
    assert issued.token.revoked_at is None


def test_an_admin_issues_a_token_to_a_service_account(client_as):
    client = client_as("admin")
    form = {"name": "nightly", "scope": "operator", "days": 30, "service_account": "svc-ci"}
    assert client.post("/tokens/new/", form).status_code == 200
    token = ApiToken.objects.get(name="nightly")
    assert token.owner.username == "svc-ci" and not token.owner.has_usable_password()
    assert token.owner.account_origin.origin == "service"
    assert role_of(token.owner) == "operator"
    assert "service" in client.get("/users/").content.decode()


def test_an_operator_cannot_make_service_accounts(client_as):
    client = client_as("operator")
    form = {"name": "n", "scope": "viewer", "days": 30, "service_account": "svc-x"}
    assert client.post("/tokens/new/", form).status_code == 400
    assert not ApiToken.objects.exists()


def test_the_command_creates_lists_and_revokes(make_user, capsys):
    owner = make_user("operator", username="ops")
    call_command("tokens", "create", "--user", "ops", "--name", "cli", "--json")
    created = json.loads(capsys.readouterr().out)
    assert created["token"].startswith("oct_") and created["scope"] == "viewer"
    assert services.authenticate(created["token"]).owner == owner
    call_command("tokens", "list", "--json")
    listed = json.loads(capsys.readouterr().out)
    assert [t["name"] for t in listed] == ["cli"] and "token" not in listed[0]
    call_command("tokens", "revoke", str(created["id"]), "--json")
    assert json.loads(capsys.readouterr().out)["state"] == "revoked"
    assert AuditEvent.objects.filter(action="token.revoke", actor_name__startswith="cli:").exists()


def test_the_command_refuses_a_wide_scope_with_exit_2(make_user):
    make_user("viewer", username="v")
    with pytest.raises(CommandError, match="wider than") as exc:
        call_command("tokens", "create", "--user", "v", "--name", "n", "--scope", "admin")
    assert exc.value.returncode == 2
