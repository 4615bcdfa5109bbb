"""Managing the console's users: create, change role or access, reset the demo admin."""

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser

from . import audit
from .actions import audited_action
from .forms import NewUserForm
from .roles import role_of, set_role


class UserRefused(Exception):
    """A change to a user that must not happen; the message says why."""


@audited_action("user.create")
def create_user(actor: audit.Actor, form: NewUserForm, *, ip_address: str | None = None):
    """Create the user of a validated NewUserForm with its role. Undo: deactivate it."""
    role, username = form.cleaned_data["role"], form.cleaned_data["username"]
    with audit.record(actor, "user.create", username, ip_address=ip_address, role=role):
        user = form.save()
        set_role(user, role)
    return user


@audited_action("user.update")
def update_user(
    actor: audit.Actor,
    user: AbstractBaseUser,
    *,
    role: str,
    is_active: bool,
    ip_address: str | None = None,
) -> AbstractBaseUser:
    """Set `user`'s role and whether it may log in. Undo: update it back (the event
    keeps the previous role and access). Nobody demotes or deactivates themselves."""
    with audit.record(
        actor,
        "user.update",
        user.get_username(),
        ip_address=ip_address,
        role=role,
        is_active=is_active,
        previous_role=role_of(user),
        previous_active=user.is_active,
    ):
        if user == actor and (not is_active or role != "admin"):
            raise UserRefused("You cannot demote or deactivate yourself.")
        user.is_active = is_active
        user.save(update_fields=["is_active"])
        if not user.is_superuser:
            set_role(user, role)
    return user


@audited_action("user.reset_demo_admin")
def reset_demo_admin(actor: audit.Actor, username: str, password: str | None) -> dict:
    """Create the demo admin, or set its password when `password` is given; an existing
    admin without a new password is left alone (nothing written). Undo: reset it again."""
    users = get_user_model()
    user = users.objects.filter(username=username).first()
    if user and not password:
        return {"username": username, "password": None}
    password = password or secrets.token_urlsafe(12)
    created = user is None
    with audit.record(actor, "user.reset_demo_admin", username, created=created):
        if created:
            user = users.objects.create_superuser(username, f"{username}@localhost", password)
        else:
            user.set_password(password)
            user.save()
        set_role(user, "admin")
    return {"username": username, "password": password}
