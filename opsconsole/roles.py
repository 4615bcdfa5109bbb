"""Roles are Django groups: viewer < operator < admin. A superuser is an admin."""

import logging
from functools import wraps

from django.http import HttpResponse
from django.shortcuts import render

from . import audit

log = logging.getLogger("opsconsole.access")

ROLES = ("viewer", "operator", "admin")
RANK = {role: rank for rank, role in enumerate(ROLES, start=1)}


def role_of(user) -> str | None:
    if not user.is_authenticated or not user.is_active:
        return None
    if hasattr(user, "_opsconsole_role"):  # cached, or capped by an API token's scope
        return user._opsconsole_role
    if user.is_superuser:
        return "admin"
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

    A refusal is audited, logged as one line (who, what, why) and answered with
    the 403 page; not raised, so Django logs no traceback for it.
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
                return refuse(request, f"This needs the {role} role.")
            return view(request, *args, **kwargs)

        wrapped.required_role = role
        return wrapped

    return decorator


def refuse(request, why: str):
    """The 403 answer to a refused request, logged once as a single line."""
    log.warning(
        "refused %s %s for %s (role %s): %s",
        request.method,
        request.path,
        audit.actor_label(request.user),
        role_of(request.user) or "none",
        why,
    )
    response = forbidden(request, why)
    response._has_been_logged = True  # django.request would log it again
    return response


def forbidden(request, message: str) -> HttpResponse:
    """The 403 page (a bare message for htmx requests)."""
    if getattr(request, "htmx", False):
        return HttpResponse(message, status=403)
    return render(request, "403.html", {"message": message}, status=403)
