from django.contrib.auth import get_user_model

from opsconsole.models import AuditEvent
from opsconsole.roles import role_of

User = get_user_model()


def test_it_creates_a_user_with_a_role(client_as):
    client = client_as("admin")
    response = client.post(
        "/users/new/",
        {
            "username": "carla",
            "email": "carla@example.com",
            "role": "operator",
            "password1": "a-long-enough-Passw0rd",
            "password2": "a-long-enough-Passw0rd",
        },
    )
    assert response.status_code == 302
    carla = User.objects.get(username="carla")
    assert role_of(carla) == "operator" and carla.check_password("a-long-enough-Passw0rd")
    event = AuditEvent.objects.get(action="user.create")
    assert event.target == "carla" and event.params == {"role": "operator"}


def test_it_shows_form_errors_for_a_weak_password(client_as):
    response = client_as("admin").post(
        "/users/new/", {"username": "dan", "role": "viewer", "password1": "123", "password2": "123"}
    )
    assert response.status_code == 400
    assert b"This password is too short" in response.content
    assert not User.objects.filter(username="dan").exists()


def test_it_changes_the_role_and_deactivates(client_as, make_user):
    client = client_as("admin")
    erin = make_user("viewer", username="erin")
    client.post(f"/users/{erin.pk}/", {"role": "admin"})  # no is_active: deactivate
    erin.refresh_from_db()
    assert erin.is_active is False
    assert role_of(User.objects.get(pk=erin.pk)) is None  # inactive users have no role
    erin.is_active = True
    erin.save()
    assert role_of(User.objects.get(pk=erin.pk)) == "admin"
    assert AuditEvent.objects.get(action="user.update").params["previous_role"] == "viewer"


def test_an_admin_cannot_lock_themselves_out(client_as):
    client = client_as("admin")
    client.post(f"/users/{client.user.pk}/", {"role": "viewer", "is_active": "on"})
    assert role_of(User.objects.get(pk=client.user.pk)) == "admin"


def test_the_users_page_lists_last_login(client_as, make_user):
    make_user("viewer", username="fay")
    page = client_as("admin").get("/users/").content.decode()
    assert "fay" in page and "never" in page
