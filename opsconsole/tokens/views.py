from django.contrib import messages
from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from opsconsole import audit
from opsconsole.roles import has_role, role_required

from . import services
from .forms import NewTokenForm


def _page(request, form, issued=None, status=200):
    context = {"tokens": services.tokens_of(request.user), "form": form, "issued": issued}
    return render(request, "opsconsole/tokens.html", context, status=status)


@role_required("viewer")
def tokens(request):
    return _page(request, NewTokenForm())


@role_required("viewer")
@require_POST
def token_create(request):
    """Create a token and show its text once, on this response only (never stored)."""
    form = NewTokenForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    data, ip = form.cleaned_data, audit.client_ip(request)
    try:
        owner = _owner(request, data["service_account"], data["scope"], ip)
        issued = services.create_token(
            request.user, owner, data["name"], data["scope"], data["days"], ip_address=ip
        )
    except services.TokenRefused as exc:
        form.add_error(None, str(exc))
        return _page(request, form, status=400)
    return _page(request, NewTokenForm(), issued=issued)


def _owner(request, service_account: str, scope: str, ip: str | None):
    if not service_account:
        return request.user
    if not has_role(request.user, "admin"):
        raise services.TokenRefused("Only an admin can issue tokens to a service account.")
    existing = get_user_model().objects.filter(username=service_account).first()
    if existing is not None:
        if not hasattr(existing, "account_origin") or existing.account_origin.origin != "service":
            raise services.TokenRefused(f"{service_account} is not a service account.")
        return existing
    return services.create_service_account(request.user, service_account, scope, ip_address=ip)


@role_required("viewer")
@require_POST
def token_revoke(request, token_id: int):
    token = get_object_or_404(services.tokens_of(request.user), pk=token_id)
    try:
        services.revoke_token(request.user, token, ip_address=audit.client_ip(request))
    except services.TokenRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Revoked {token.label}.")
    return redirect("tokens")
