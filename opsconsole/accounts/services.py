"""Accounts from the company's OpenID Connect provider: created on first sign-in, their
role taken from the provider's groups at every sign-in and session refresh (audited).
"""

import re
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from opsconsole import audit
from opsconsole.actions import audited_action
from opsconsole.roles import RANK, role_of, set_role

from .models import AccountOrigin, Origin


def groups_of(claims: dict[str, Any]) -> list[str]:
    groups = claims.get(settings.OIDC_GROUPS_CLAIM) or []
    return [str(g) for g in (groups if isinstance(groups, list) else [groups])]


def role_for(claims: dict[str, Any]) -> str | None:
    """The highest role OIDC_GROUP_ROLES gives any of the user's groups (None: no role)."""
    roles = [
        settings.OIDC_GROUP_ROLES[g] for g in groups_of(claims) if g in settings.OIDC_GROUP_ROLES
    ]
    return max(roles, key=RANK.__getitem__, default=None)


def user_for(issuer: str, claims: dict[str, Any]) -> AbstractBaseUser | None:
    """The account this provider's subject signed in as before (matched on the stable
    `sub`, never on an e-mail address someone could be given later)."""
    origin = (
        AccountOrigin.objects.select_related("user")
        .filter(origin=Origin.OIDC, issuer=issuer, subject=str(claims.get("sub", "")))
        .first()
    )
    return origin.user if origin else None


def _free_username(claims: dict[str, Any]) -> str:
    wanted = claims.get("preferred_username") or (claims.get("email") or "").split("@")[0]
    base = re.sub(r"[^\w.@+-]", "", str(wanted))[:140] or f"sso-{str(claims['sub'])[:20]}"
    users, name, n = get_user_model().objects, base, 1
    while users.filter(username=name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


@audited_action("user.create_from_sso")
def create_sso_user(issuer: str, claims: dict[str, Any]) -> AbstractBaseUser:
    """The account of a first sign-in: no password, origin oidc, the role of its groups.
    Undo: deactivate it on the users page (it cannot sign in again)."""
    role = role_for(claims)
    with audit.record(
        f"sso:{issuer}",
        "user.create_from_sso",
        str(claims.get("sub", "")),
        role=role,
        groups=groups_of(claims),
    ) as event:
        with transaction.atomic():
            user = get_user_model().objects.create_user(
                _free_username(claims), email=claims.get("email") or ""
            )
            AccountOrigin.objects.create(
                user=user, origin=Origin.OIDC, issuer=issuer, subject=str(claims["sub"])
            )
            set_role(user, role)
        event.target = user.get_username()
    return user


@audited_action("user.sso_role")
def sync_sso_user(user: AbstractBaseUser, claims: dict[str, Any]) -> AbstractBaseUser:
    """Give `user` the role its groups map to now (and the provider's e-mail). Writes an
    event only when the role changes. Undo: the provider's groups decide; change them."""
    role, previous = role_for(claims), role_of(user)
    email = claims.get("email") or user.email
    if email != user.email:
        user.email = email
        user.save(update_fields=["email"])
    if role == previous or user.is_superuser:
        return user
    with audit.record(
        f"sso:{settings.OIDC_ISSUER}",
        "user.sso_role",
        user.get_username(),
        role=role,
        previous_role=previous,
        groups=groups_of(claims),
    ):
        set_role(user, role)
    return user
