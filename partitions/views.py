"""Pages for partition migrations: thin, one per action; services do the work."""

from functools import wraps

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_POST

from jobs import runner
from opsconsole import audit
from opsconsole.models import AuditEvent
from opsconsole.roles import has_role, role_required
from opsconsole.shared import SharedAnswers

from . import services, warehouses
from .backends.base import PlanRefused
from .forms import ConfirmForm, DropOriginalForm, PartitionColumnForm, PlanForm, ReasonForm
from .models import Migration
from .retention import apply_retention, start_retention
from .warehouses import WarehouseUnreachable


def _warehouse(name: str) -> str:
    if name not in warehouses.names():
        raise Http404(f"No warehouse named {name!r}.")
    return name


@role_required("viewer")
def inventory(request):
    chosen = request.GET.get("warehouse") or (warehouses.names() or [""])[0]
    if chosen in warehouses.names():
        shared_html = _inventory_html.get(chosen)
    else:  # an unknown name: its error, rendered for this request alone
        shared_html = _render_inventory(chosen)
    context = {"warehouses": warehouses.names(), "warehouse": chosen, "shared_html": shared_html}
    return render(request, "partitions/inventory.html", context)


def _render_inventory(warehouse: str) -> str:
    """A warehouse's tables and the recent migrations as HTML: the same for every
    operator, so rendered once per SHARED_READ_S by a web process (the table holds a
    row and a link per table; rendering it for each request cost more than reading it)."""
    tables, error = [], ""
    try:
        tables = services.read_inventory(_warehouse(warehouse)) if warehouse else []
    except (WarehouseUnreachable, OSError, Exception) as exc:  # shown, never a 500
        error = f"{type(exc).__name__}: {exc}"
    context = {
        "warehouse": warehouse,
        "tables": tables,
        "error": error,
        "migrations": Migration.objects.all()[:20],
    }
    return render_to_string("partitions/partials/_inventory.html", context)


_inventory_html = SharedAnswers(_render_inventory)


def _table(request, warehouse: str):
    schema = request.GET.get("schema") or request.POST.get("schema") or ""
    table = request.GET.get("table") or request.POST.get("table") or ""
    if not schema or not table:
        raise Http404("Pick a table from the inventory.")
    try:
        return services.table_detail(warehouse, schema, table)
    except PlanRefused as exc:
        raise Http404(str(exc)) from None


def answers_503_when_unreachable(view):
    """An unreachable warehouse is a service problem (503 with its message), not a
    missing page."""

    @wraps(view)
    def wrapped(request, warehouse: str, *args, **kwargs):
        try:
            return view(request, warehouse, *args, **kwargs)
        except WarehouseUnreachable as exc:
            message = f"Warehouse {warehouse} is unreachable: {exc}"
            return render(request, "partitions/unreachable.html", {"message": message}, status=503)

    return wrapped


@role_required("viewer")
@answers_503_when_unreachable
def table_detail(request, warehouse: str):
    warehouse = _warehouse(warehouse)
    info, parts = _table(request, warehouse)
    kind = warehouses.kind_of(warehouses.url_of(warehouse))
    chosen = PartitionColumnForm(request.GET or None, table=info, backend_kind=kind).chosen()
    form = PlanForm(table=info, backend_kind=kind, column=chosen)
    return render(request, "partitions/table.html", _table_context(warehouse, info, parts, form))


def _table_context(warehouse, info, parts, form) -> dict:
    chosen = {"column": form.key.name} if form.key else {}
    column_form = PartitionColumnForm(initial=chosen, table=info, backend_kind=form.backend_kind)
    return {
        "warehouse": warehouse,
        "info": info,
        "partitions": parts,
        "form": form,
        "column_form": column_form,
        "migrations": Migration.objects.filter(
            warehouse=warehouse, schema=info.schema, table=info.name
        ),
    }


@role_required("operator")
@require_POST
@answers_503_when_unreachable
def plan(request, warehouse: str):
    warehouse = _warehouse(warehouse)
    info, parts = _table(request, warehouse)
    kind = warehouses.kind_of(warehouses.url_of(warehouse))
    form = PlanForm(request.POST, table=info, backend_kind=kind, column=None)
    if form.is_valid():
        try:
            migration = services.plan_migration(
                request.user,
                warehouse,
                info.schema,
                info.name,
                form.options(),
                ip_address=audit.client_ip(request),
            )
        except (services.MigrationRefused, PlanRefused) as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("partitions:migration", migration.pk)
    context = _table_context(warehouse, info, parts, form)
    return render(request, "partitions/table.html", context, status=400)


def _migration_context(request, migration: Migration, **forms) -> dict:
    events = AuditEvent.objects.filter(params__migration_id=migration.pk).order_by("id")
    return {
        "migration": migration,
        "plan": migration.plan,
        "steps": migration.steps.all(),
        "run": migration.rollback_run or migration.run,
        "events": events,
        "can_operate": has_role(request.user, "operator"),
        "can_admin": has_role(request.user, "admin"),
        "confirm_form": forms.get("confirm_form") or ConfirmForm(migration=migration),
        "reason_form": forms.get("reason_form") or ReasonForm(),
        "drop_form": forms.get("drop_form") or DropOriginalForm(migration=migration),
    }


@role_required("viewer")
def migration_detail(request, migration_id: int):
    migration = get_object_or_404(Migration, pk=migration_id)
    context = _migration_context(request, migration)
    if request.htmx:
        return render(request, "partitions/partials/_migration_status.html", context)
    return render(request, "partitions/migration.html", context)


@role_required("operator")
@require_POST
def start(request, migration_id: int):
    migration = get_object_or_404(Migration, pk=migration_id)
    form = ConfirmForm(request.POST, migration=migration)
    if form.is_valid():
        try:
            services.start_migration(
                request.user,
                migration,
                confirm=form.cleaned_data["confirm"],
                reason=form.cleaned_data["reason"],
                ip_address=audit.client_ip(request),
            )
        except (services.MigrationRefused, runner.LaunchRefused) as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Migration #{migration.pk} started.")
            return redirect("partitions:migration", migration.pk)
    context = _migration_context(request, migration, confirm_form=form)
    return render(request, "partitions/migration.html", context, status=400)


@role_required("operator")
@require_POST
def rollback(request, migration_id: int):
    migration = get_object_or_404(Migration, pk=migration_id)
    form = ReasonForm(request.POST)
    if form.is_valid():
        try:
            services.rollback_migration(
                request.user,
                migration,
                reason=form.cleaned_data["reason"],
                ip_address=audit.client_ip(request),
            )
        except (services.MigrationRefused, runner.LaunchRefused) as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Rollback of migration #{migration.pk} started.")
            return redirect("partitions:migration", migration.pk)
    context = _migration_context(request, migration, reason_form=form)
    return render(request, "partitions/migration.html", context, status=400)


@role_required("admin")
@require_POST
def drop_original(request, migration_id: int):
    migration = get_object_or_404(Migration, pk=migration_id)
    form = DropOriginalForm(request.POST, migration=migration)
    if form.is_valid():
        try:
            services.drop_original(
                request.user,
                migration,
                confirm=form.cleaned_data["confirm"],
                ip_address=audit.client_ip(request),
            )
        except services.MigrationRefused as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "The original table was dropped.")
            return redirect("partitions:migration", migration.pk)
    context = _migration_context(request, migration, drop_form=form)
    return render(request, "partitions/migration.html", context, status=400)


@role_required("operator")
def retention(request):
    if request.method == "POST":
        try:
            run = start_retention(request.user, ip_address=audit.client_ip(request))
        except runner.LaunchRefused as exc:
            messages.error(request, str(exc))
            return redirect("partitions:retention")
        return redirect("jobs:run_detail", run.pk)
    try:
        preview = apply_retention(request.user, dry_run=True)
        error = ""
    except Exception as exc:  # a warehouse down: say so on the page
        preview, error = {"tables": []}, f"{type(exc).__name__}: {exc}"
    return render(request, "partitions/retention.html", {"preview": preview, "error": error})
