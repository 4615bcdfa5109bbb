import csv
from datetime import datetime, time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from . import audit, health
from . import dashboard as dashboard_service
from . import metrics as metrics_service
from . import users as users_service
from .forms import AuditFilterForm, NewUserForm, UserRoleForm
from .models import AuditEvent
from .roles import forbidden, role_of, role_required
from .shared import SharedHTML

AUDIT_PAGE_SIZE = 50
USER_ROWS = ("groups", "account_origin")  # what the users page shows of each account


@login_not_required
@require_GET
@never_cache
def healthz(request):
    return JsonResponse({"status": "ok"})


@login_not_required
@require_GET
@never_cache
def readyz(request):
    """Status for anyone (load balancers); the checks' details (worker names,
    hosts and ports, errors) only for a logged-in user."""
    checks = health.current_readiness()
    ok = all(check.ok for check in checks)
    body = {"status": "ok" if ok else "failing"}
    if request.user.is_authenticated:
        body["checks"] = [c.as_dict() for c in checks]
    return JsonResponse(body, status=200 if ok else 503)


PROXY_HEADERS = ("X-Forwarded-For", "X-Forwarded-Host", "X-Real-IP", "Forwarded", "Via")


def metrics_allowed(request) -> bool:
    """The token when one is set; else a peer in METRICS_ALLOWED_IPS with no proxy
    in front (a proxy on the same host makes every client look local)."""
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return constant_time_compare(given, token)
    proxied = any(header in request.headers for header in PROXY_HEADERS)
    return not proxied and request.META.get("REMOTE_ADDR") in settings.METRICS_ALLOWED_IPS


@login_not_required
@require_GET
@never_cache
def metrics(request):
    """Prometheus scrape target: a bearer token (METRICS_TOKEN) or an allowed address."""
    if not metrics_allowed(request):
        return HttpResponse(
            "metrics: not allowed from here (send the bearer token)\n",
            status=403,
            content_type="text/plain",
        )
    return HttpResponse(metrics_service.render(), content_type=metrics_service.CONTENT_TYPE)


# The tiles and the readiness tile show the same shared answers to every operator: their
# HTML is rendered once per answer (SHARED_READ_S), not once per request.
_tiles_html = SharedHTML("opsconsole/partials/_tiles.html")
_readiness_html = SharedHTML("opsconsole/partials/_readiness.html")


@role_required("viewer")
def dashboard(request):
    tiles = dashboard_service.context()
    tiles_html = _tiles_html.render(tiles, tiles)
    if request.htmx:
        return HttpResponse(tiles_html)
    return render(request, "opsconsole/dashboard.html", {"tiles_html": tiles_html})


@role_required("viewer")
def readiness_tile(request):
    checks = health.current_readiness()
    return HttpResponse(_readiness_html.render(checks, {"checks": checks}))


def filtered_events(form: AuditFilterForm):
    events = AuditEvent.objects.all()
    if not form.is_valid():
        return events.none()
    data = form.cleaned_data
    if data["actor"]:
        events = events.filter(actor_name=data["actor"])
    if data["action"]:
        events = events.filter(action__startswith=data["action"])
    if data["target"]:
        events = events.filter(target__icontains=data["target"])
    tz = timezone.get_current_timezone()
    if data["since"]:
        events = events.filter(created_at__gte=datetime.combine(data["since"], time.min, tz))
    if data["until"]:
        events = events.filter(created_at__lte=datetime.combine(data["until"], time.max, tz))
    return events


@role_required("viewer")
def audit_log(request):
    form = AuditFilterForm(request.GET or None)
    if not form.is_bound:
        form = AuditFilterForm({})
    events = filtered_events(form)
    before = form.cleaned_data.get("before") if form.is_valid() else None
    if before:
        events = events.filter(id__lt=before)
    page = list(events.order_by("-id")[: AUDIT_PAGE_SIZE + 1])
    has_more = len(page) > AUDIT_PAGE_SIZE
    page = page[:AUDIT_PAGE_SIZE]
    query = request.GET.copy()
    query.pop("before", None)
    return render(
        request,
        "opsconsole/audit.html",
        {
            "form": form,
            "events": page,
            "next_before": page[-1].id if has_more else None,
            "query": query.urlencode(),
        },
    )


class _Echo:
    def write(self, value):
        return value


@role_required("viewer")
def audit_csv(request):
    form = AuditFilterForm(request.GET or {})
    events = filtered_events(form).order_by("id")
    columns = ["id", "created_at", "actor_name", "action", "target", "outcome", "error"]
    columns += ["ip_address", "run_id", "params", "hash"]
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(columns)
        for e in events.iterator(chunk_size=2000):
            yield writer.writerow([getattr(e, c) for c in columns])

    response = StreamingHttpResponse(rows(), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="opsconsole-audit.csv"'
    return response


@role_required("admin")
def users(request):
    people = get_user_model().objects.order_by("username").prefetch_related(*USER_ROWS)
    rows = [(user, role_of(user)) for user in people]
    return render(request, "opsconsole/users.html", {"rows": rows, "form": NewUserForm()})


@role_required("admin")
@require_POST
def user_create(request):
    form = NewUserForm(request.POST)
    if not form.is_valid():
        people = get_user_model().objects.order_by("username").prefetch_related(*USER_ROWS)
        rows = [(user, role_of(user)) for user in people]
        return render(request, "opsconsole/users.html", {"rows": rows, "form": form}, status=400)
    user = users_service.create_user(request.user, form, ip_address=audit.client_ip(request))
    role = form.cleaned_data["role"]
    messages.success(request, f"Created {user.get_username()} as {role}.")
    return redirect("users")


@role_required("admin")
@require_POST
def user_update(request, user_id: int):
    user = get_object_or_404(get_user_model(), pk=user_id)
    form = UserRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a role.")
        return redirect("users")
    try:
        users_service.update_user(
            request.user,
            user,
            role=form.cleaned_data["role"],
            is_active=form.cleaned_data["is_active"],
            ip_address=audit.client_ip(request),
        )
    except users_service.UserRefused as exc:
        messages.error(request, str(exc))
        return redirect("users")
    messages.success(request, f"Updated {user.get_username()}.")
    return redirect("users")


def permission_denied(request, exception=None):
    message = str(exception) if exception else "You do not have access to this page."
    return forbidden(request, message)
