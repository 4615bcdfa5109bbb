"""Queries pages: thin views over the slow, activity, explain, advisor and apply services."""

import uuid

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from jobs import runner
from jobs.models import Run
from opsconsole import audit
from opsconsole.roles import has_role, role_required
from partitions import warehouses
from partitions.warehouses import WarehouseError

from . import activity, advisor, analyses, apply, bigquery, drops, health, index_elements, slow
from .explain import explain_statement
from .forms import ConfirmForm, ExplainForm, IndexAdvisorForm, SlowFilterForm


def _warehouse(request) -> str | None:
    name = request.GET.get("warehouse") or request.POST.get("warehouse")
    return name if name in warehouses.of_kind("postgres") else warehouses.default_postgres()


def _bigquery_jobs_sql() -> list[dict]:
    listed = []
    for name in warehouses.of_kind("bigquery"):
        try:
            text, params = bigquery.slow_jobs_sql(warehouses.get(name))
            listed.append({"name": name, "sql": text, "params": params})
        except warehouses.InvalidWarehouseURL as exc:
            listed.append({"name": name, "error": str(exc)})
    return listed


@role_required("viewer")
def slow_queries(request):
    form = SlowFilterForm(request.GET or None)
    filters = form.filters()
    rows, error = [], ""
    if filters["warehouse"]:
        try:
            rows = slow.slow_statements(
                filters["warehouse"],
                order=filters["order"],
                min_mean_ms=filters["min_ms"],
                containing=filters["schema"] or None,
                housekeeping=filters["housekeeping"],
            )
        except WarehouseError as exc:
            error = str(exc)
    context = {
        "form": form,
        "filters": filters,
        "rows": rows,
        "error": error,
        "warehouses": list(warehouses.of_kind("postgres")),
        "bigquery": _bigquery_jobs_sql(),
    }
    template = "queries/partials/_slow_rows.html" if request.htmx else "queries/slow.html"
    return render(request, template, context)


@role_required("admin")
@require_POST
def reset_stats(request):
    warehouse = _warehouse(request)
    try:
        slow.reset_stats(
            request.user,
            warehouse or "",
            request.POST.get("confirm", ""),
            ip_address=audit.client_ip(request),
        )
        messages.success(request, f"pg_stat_statements of {warehouse} reset.")
    except WarehouseError as exc:
        messages.error(request, str(exc))
    return redirect(reverse("queries:slow") + f"?warehouse={warehouse or ''}")


@role_required("viewer")
def live_activity(request):
    warehouse = _warehouse(request)
    rows, error = [], ""
    if warehouse:
        try:
            rows = activity.live_statements(warehouse)
        except WarehouseError as exc:
            error = str(exc)
    context = {"warehouse": warehouse, "rows": rows, "error": error}
    context["warehouses"] = list(warehouses.of_kind("postgres"))
    template = "queries/partials/_activity_rows.html" if request.htmx else "queries/activity.html"
    return render(request, template, context)


def _stop_backend(request, pid: int, terminate: bool):
    warehouse = _warehouse(request) or ""
    stop = activity.terminate_backend if terminate else activity.cancel_backend
    try:
        stop(
            request.user,
            warehouse,
            pid,
            request.POST.get("confirm", ""),
            ip_address=audit.client_ip(request),
        )
        verb = "terminated" if terminate else "cancelled"
        messages.success(request, f"Backend {pid} {verb}.")
    except WarehouseError as exc:
        messages.error(request, str(exc))
    return redirect(reverse("queries:activity") + f"?warehouse={warehouse}")


@role_required("admin")
@require_POST
def cancel_backend(request, pid: int):
    return _stop_backend(request, pid, terminate=False)


@role_required("admin")
@require_POST
def terminate_backend(request, pid: int):
    return _stop_backend(request, pid, terminate=True)


@role_required("viewer")
def explain(request):
    """GET: the form (prefilled from ?queryid=); POST: the plan. ANALYZE needs operator."""
    warehouse = _warehouse(request)
    result, error = None, ""
    if request.method == "POST":
        form = ExplainForm(request.POST)
        if form.is_valid():
            analyze = form.cleaned_data["analyze"]
            if analyze and not has_role(request.user, "operator"):
                error = "EXPLAIN ANALYZE runs the statement: it needs the operator role."
            else:
                try:
                    result = explain_statement(
                        form.cleaned_data["warehouse"],
                        form.cleaned_data["statement"],
                        analyze=analyze,
                        values=form.sample_values(),
                        actor=request.user,
                        ip_address=audit.client_ip(request),
                    )
                except WarehouseError as exc:
                    error = str(exc)
    else:
        form = ExplainForm(initial={"warehouse": warehouse, "statement": _statement_text(request)})
    context = {"form": form, "result": result, "error": error}
    status = 400 if error else 200
    template = "queries/partials/_plan.html" if request.htmx else "queries/explain.html"
    return render(request, template, context, status=status)


def _request_key(request) -> str | None:
    """The form's one-time key (a uuid hex); anything else is dropped, not stored:
    PostgreSQL refuses NUL characters in text."""
    key = (request.POST.get("request_key") or "")[:64]
    return key if key.isalnum() and key.isascii() else None


def _statement_text(request) -> str:
    queryid = request.GET.get("queryid", "")
    warehouse = _warehouse(request)
    if not queryid.lstrip("-").isdigit() or not warehouse:
        return request.GET.get("statement", "")
    try:
        return slow.statement_text(warehouse, int(queryid)) or ""
    except WarehouseError:
        return ""


@role_required("viewer")
def indexes(request):
    context = {
        "warehouse": _warehouse(request),
        "warehouses": list(warehouses.of_kind("postgres")),
        "form": IndexAdvisorForm(request.GET or None),
        "query": request.GET.urlencode(),
    }
    return render(request, "queries/indexes.html", context)


@role_required("viewer")
@require_http_methods(["GET", "POST"])
def index_report(request):
    """The suggestions and index-health partial (loaded by htmx). Suggestions come from
    the last analysis of these options; a stale or missing one, or a POST (re-analyse),
    starts one in a worker and the partial polls until it is there."""
    warehouse = _warehouse(request)
    context = {"warehouse": warehouse, "error": "", "query": request.GET.urlencode()}
    options = IndexAdvisorForm(request.GET).options()
    analysis = analyses.current(warehouse or "", options)
    if request.method == "POST" or not analyses.is_fresh(analysis):
        analyses.request_refresh(analysis)
    context["analysis"], context["advice"] = analysis, analysis.advice
    try:
        context["health"] = health.index_health(warehouse or "", schema=options["containing"])
        context["drops"] = drops.drop_suggestions(
            warehouse or "", schema=options["containing"], report=context["health"]
        )
    except WarehouseError as exc:
        context["error"] = str(exc)
    return render(request, "queries/partials/_index_report.html", context)


APPLY_FIELDS = ("warehouse", "schema", "table", "columns", "name")


@role_required("operator")
def apply_index(request):
    """GET: the preview with the CREATE INDEX statement; POST: start the job."""
    source = request.POST if request.method == "POST" else request.GET
    params = {key: source.get(key, "") for key in APPLY_FIELDS}
    try:  # "lower(email), seen": expressions hold commas, pglast reads the list
        columns = index_elements.split(params["columns"])
    except index_elements.InvalidIndexElement:
        columns = []  # the form says why when it is posted
    preview = advisor.Suggestion(
        schema=params["schema"],
        table=params["table"],
        columns=columns,
        name=params["name"],
        relkind="p" if source.get("partitioned") else "r",  # shows the ON ONLY plan
    )
    if request.method == "POST":
        try:
            run = apply.start_apply(
                request.user,
                {**params, "confirm": request.POST.get("confirm", "")},
                request_key=_request_key(request),
                ip_address=audit.client_ip(request),
            )
            return redirect("jobs:run_detail", run.pk)
        except runner.LaunchRefused as exc:
            messages.error(request, str(exc))
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "queries/apply.html",
        {
            "params": params,
            "preview": preview,
            "request_key": uuid.uuid4().hex,
        },
        status=status,
    )


@role_required("viewer")
def applied(request):
    return render(request, "queries/applied.html", {"runs": apply.applied_runs()})


@role_required("admin")
def rollback(request, run_id: int):
    """GET: what will be dropped; POST (typed index name): start the rollback job."""
    run = get_object_or_404(Run, pk=run_id, name=apply.APPLY_JOB)
    form = ConfirmForm(request.POST or None)
    if request.method == "POST":
        try:
            rb = apply.start_rollback(
                request.user,
                run,
                request.POST.get("confirm", ""),
                ip_address=audit.client_ip(request),
            )
            return redirect("jobs:run_detail", rb.pk)
        except (WarehouseError, runner.LaunchRefused) as exc:
            messages.error(request, str(exc))
    status = 400 if request.method == "POST" else 200
    return render(request, "queries/rollback.html", {"run": run, "form": form}, status=status)
