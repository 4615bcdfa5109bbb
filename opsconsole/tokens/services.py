"""Creating, revoking and checking API tokens (audited like every other change).

A token acts as its owner, never wider than its scope: the role it acts with is the
lower of the two at each use, so demoting the owner narrows every token at once.
Every request made with a token carries the token's name into the audit events the
services write (`actor.audit_name`), and refusals (unknown, expired, revoked token)
are written as `denied` events with the token's name.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from opsconsole import audit
from opsconsole.accounts.models import AccountOrigin, Origin
from opsconsole.actions import audited_action
from opsconsole.roles import RANK, ROLES, has_role, role_of, set_role

from .models import ApiToken

PREFIX = "oct"
MAX_DAYS = 366
# last_used_at is written at most this often per token: a busy script would
# otherwise write the row on every request.
LAST_USED_RESOLUTION = timedelta(seconds=60)


class TokenRefused(Exception):
    """A token change or use that must not happen; the message says why."""


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # the only time the full token text exists outside the caller's hands


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _check_scope(owner: AbstractBaseUser, scope: str) -> None:
    if scope not in RANK:
        raise TokenRefused(f"Unknown scope {scope!r}: choose one of {', '.join(ROLES)}.")
    owner_role = role_of(owner)
    if owner_role is None or RANK[scope] > RANK[owner_role]:
        raise TokenRefused(
            f"The scope {scope} is wider than {owner.get_username()}'s role "
            f"({owner_role or 'none'})."
        )


def _check_issuer(actor: AbstractBaseUser | str, owner: AbstractBaseUser) -> None:
    """Users make their own tokens; only an admin (or the CLI) makes one for another account."""
    if isinstance(actor, str) or actor == owner or has_role(actor, "admin"):
        return
    raise TokenRefused("Only an admin can create a token for another account.")


@audited_action("token.create")
def create_token(
    actor: AbstractBaseUser | str,
    owner: AbstractBaseUser,
    name: str,
    scope: str,
    days: int,
    *,
    ip_address: str | None = None,
) -> IssuedToken:
    """Issue a token for `owner`; the returned secret is not stored. Undo: revoke it."""
    with audit.record(
        actor,
        "token.create",
        f"{owner.get_username()}/{name}",
        ip_address=ip_address,
        scope=scope,
        days=days,
    ) as event:
        _check_issuer(actor, owner)
        _check_scope(owner, scope)
        if not 1 <= days <= MAX_DAYS:
            raise TokenRefused(f"The expiry must be between 1 and {MAX_DAYS} days.")
        if ApiToken.objects.filter(owner=owner, name=name).exists():
            raise TokenRefused(f"{owner.get_username()} already has a token named {name!r}.")
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        text = f"{PREFIX}_{key_id}_{secret}"
        token = ApiToken.objects.create(
            owner=owner,
            name=name,
            key_id=key_id,
            secret_hash=_digest(text),
            scope=scope,
            created_by=actor if isinstance(actor, AbstractBaseUser) else None,
            expires_at=timezone.now() + timedelta(days=days),
        )
        event.params["token_id"] = token.pk
        event.params["expires_at"] = token.expires_at.isoformat()
    return IssuedToken(token, text)


@audited_action("token.revoke")
def revoke_token(
    actor: AbstractBaseUser | str, token: ApiToken, *, ip_address: str | None = None
) -> ApiToken:
    """Stop `token` from working, at once. Not undoable: issue a new one."""
    with audit.record(actor, "token.revoke", token.label, ip_address=ip_address, token_id=token.pk):
        if not isinstance(actor, str) and actor != token.owner and not has_role(actor, "admin"):
            raise TokenRefused("Only the owner or an admin can revoke this token.")
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
    return token


@audited_action("user.create_service_account")
def create_service_account(
    actor: AbstractBaseUser | str, username: str, role: str, *, ip_address: str | None = None
) -> AbstractBaseUser:
    """An account for scripts: no password (it cannot log in), only tokens.
    Undo: deactivate it on the users page."""
    with audit.record(
        actor, "user.create_service_account", username, ip_address=ip_address, role=role
    ):
        if not isinstance(actor, str) and not has_role(actor, "admin"):
            raise TokenRefused("Only an admin can create a service account.")
        if role not in RANK:
            raise TokenRefused(f"Unknown role {role!r}: choose one of {', '.join(ROLES)}.")
        users = get_user_model()
        if users.objects.filter(username=username).exists():
            raise TokenRefused(f"The username {username!r} is taken.")
        with transaction.atomic():
            account = users.objects.create_user(username=username)  # unusable password
            AccountOrigin.objects.create(user=account, origin=Origin.SERVICE)
            set_role(account, role)
    return account


def tokens_of(user: AbstractBaseUser):
    """The tokens `user` may see: their own, or every token for an admin."""
    tokens = ApiToken.objects.select_related("owner").order_by("owner__username", "name")
    return tokens if has_role(user, "admin") else tokens.filter(owner=user)


def effective_role(token: ApiToken) -> str | None:
    """The role a request with `token` acts with: its scope, capped by the owner's role."""
    owner_role = role_of(token.owner)
    if owner_role is None:
        return None
    return token.scope if RANK[token.scope] <= RANK[owner_role] else owner_role


def authenticate(text: str, *, ip_address: str | None = None) -> ApiToken:
    """The active token whose text is `text`; its owner comes back with `audit_name`
    set, so that what the request changes is audited with the token's name. Refusals
    are audited as denied and raised as TokenRefused."""
    token = _find(text)
    problem = _why_refused(token) if token else "unknown token"
    if problem:
        label = token.label if token else _shown(text)
        audit.denied(f"token:{label}", "api.token", label, ip_address=ip_address, why=problem)
        raise TokenRefused(f"Token refused: {problem}.")
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    owner = token.owner
    owner.audit_name = f"{owner.get_username()} (token {token.name})"
    owner._opsconsole_role = effective_role(token)  # role_of() answers with the capped role
    return token


def _find(text: str) -> ApiToken | None:
    prefix, _, rest = text.partition("_")
    key_id, _, _secret = rest.partition("_")
    if prefix != PREFIX or not key_id:
        return None
    token = ApiToken.objects.select_related("owner").filter(key_id=key_id[:16]).first()
    if token is None or not constant_time_compare(token.secret_hash, _digest(text)):
        return None
    return token


def _why_refused(token: ApiToken) -> str:
    if token.revoked_at:
        return "revoked"
    if token.expires_at <= timezone.now():
        return "expired"
    if not token.owner.is_active:
        return "its account is deactivated"
    if effective_role(token) is None:
        return "its account has no role"
    return ""


def _shown(text: str) -> str:
    """What an unknown token is called in the log: its key id, never the secret."""
    parts = text.split("_")
    return f"{parts[0][:8]}_{parts[1][:16]}" if len(parts) >= 2 else "malformed"
