"""Roles are Django groups: viewer < operator < admin. A superuser is an admin."""

from functools import wraps

from django.core.exceptions import PermissionDenied

from . import audit

ROLES = ("viewer", "operator", "admin")
RANK = {role: rank for rank, role in enumerate(ROLES, start=1)}


def role_of(user) -> str | None:
    if not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return "admin"
    if not hasattr(user, "_opsconsole_role"):
        names = set(user.groups.values_list("name", flat=True))
        user._opsconsole_role = next((r for r in reversed(ROLES) if r in names), None)
    return user._opsconsole_role


def has_role(user, role: str) -> bool:
    current = role_of(user)
    return current is not None and RANK[current] >= RANK[role]


def set_role(user, role: str | None) -> None:
    from django.contrib.auth.models import Group

    user.groups.remove(*Group.objects.filter(name__in=ROLES))
    if role:
        user.groups.add(Group.objects.get(name=role))
    user.__dict__.pop("_opsconsole_role", None)


def role_required(role: str):
    """The one guard on every console view: the caller needs `role` or higher.

    A refusal is audited and answered with the 403 page.
    """
    if role not in RANK:
        raise ValueError(f"unknown role {role!r}")

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not has_role(request.user, role):
                audit.denied(
                    request.user,
                    "access.denied",
                    request.path,
                    ip_address=audit.client_ip(request),
                    method=request.method,
                    needs=role,
                )
                raise PermissionDenied(f"This needs the {role} role.")
            return view(request, *args, **kwargs)

        wrapped.required_role = role
        return wrapped

    return decorator
