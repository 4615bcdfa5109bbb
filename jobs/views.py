from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django_celery_beat.models import PeriodicTask

from opsconsole import audit, charts
from opsconsole.models import AuditEvent
from opsconsole.roles import role_required
from opsconsole.shared import SharedAnswers

from . import overview as overview_service
from . import registry, runner, schedules
from . import stats as stats_service
from .forms import CrontabForm, HistoryFilterForm, LaunchForm
from .history import filtered_runs
from .models import Run

PAGE_SIZE = 50


@role_required("viewer")
def history(request):
    form = HistoryFilterForm(request.GET)
    data = form.cleaned_data if form.is_valid() else {}
    page = list(filtered_runs(data).order_by("-id")[: PAGE_SIZE + 1])
    has_more = len(page) > PAGE_SIZE
    page = page[:PAGE_SIZE]
    query = request.GET.copy()
    query.pop("before", None)
    context = {
        "form": form,
        "runs": page,
        "any_active": any(r.is_active for r in page),
        "next_before": page[-1].id if has_more else None,
        "query": query.urlencode(),
        "jobs": sorted(registry.JOBS),
        "launchable": registry.launchable(),
    }
    template = "jobs/partials/_history_rows.html" if request.htmx else "jobs/history.html"
    return render(request, template, context)


@role_required("viewer")
def run_detail(request, run_id: int):
    run = get_object_or_404(Run, pk=run_id)
    if request.htmx:
        return render(request, "jobs/partials/_run_progress.html", {"run": run})
    events = AuditEvent.objects.filter(run=run).order_by("id")
    return render(request, "jobs/run_detail.html", {"run": run, "events": events})


@role_required("operator")
def launch(request, name: str):
    spec = registry.JOBS.get(name)
    if spec is None or not spec.launchable:
        raise Http404(f"No job named {name!r} can be launched from here.")
    params_form = spec.form(request.POST or None) if spec.form else None
    launch_form = LaunchForm(request.POST or None)
    params_ok = params_form is None or params_form.is_valid()
    if request.method == "POST" and launch_form.is_valid() and params_ok:
        params = params_form.data.dict() if params_form else {}
        params.pop("csrfmiddlewaretoken", None)
        params.pop("request_key", None)
        try:
            run = runner.start(
                name,
                params,
                request.user,
                request_key=launch_form.cleaned_data["request_key"],
                ip_address=audit.client_ip(request),
            )
        except runner.LaunchRefused as exc:
            messages.error(request, str(exc))
            if exc.run:
                return redirect("jobs:run_detail", exc.run.pk)
        else:
            return redirect("jobs:run_detail", run.pk)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "jobs/launch.html",
        {"spec": spec, "params_form": params_form, "launch_form": launch_form},
        status=status,
    )


@role_required("operator")
@require_POST
def cancel(request, run_id: int):
    run = get_object_or_404(Run, pk=run_id)
    try:
        runner.cancel(run, request.user, ip_address=audit.client_ip(request))
        messages.success(request, f"Cancellation of run #{run.pk} requested.")
    except runner.LaunchRefused as exc:
        messages.error(request, str(exc))
    return redirect("jobs:run_detail", run.pk)


@role_required("operator")
@require_POST
def retry(request, run_id: int):
    run = get_object_or_404(Run, pk=run_id)
    try:
        new_run = runner.retry(run, request.user, ip_address=audit.client_ip(request))
    except runner.LaunchRefused as exc:
        messages.error(request, str(exc))
        return redirect("jobs:run_detail", run.pk)
    messages.success(request, f"Run #{run.pk} retried as run #{new_run.pk}.")
    return redirect("jobs:run_detail", new_run.pk)


@role_required("viewer")
def job_stats(request, name: str):
    if name not in registry.JOBS and not Run.objects.filter(name=name).exists():
        raise Http404(f"No job named {name!r}.")
    return render(request, "jobs/stats.html", _stats_page.get(name))


def _stats_context(name: str) -> dict:
    """A job's figures and their chart: the same for every operator, so computed once
    per SHARED_READ_S by a web process (a count per status, the last 1,000 durations,
    two index probes and an SVG)."""
    stats = stats_service.job_stats(name)
    points = [
        charts.Point(
            i,
            (r["duration_ms"] or 0) / 1000,
            {"succeeded": "good", "failed": "bad", "timed_out": "bad", "lost": "bad"}.get(
                r["status"], "warn"
            ),
            f"#{r['id']} {r['status']} {r['created_at']:%Y-%m-%d %H:%M}",
        )
        for i, r in enumerate(stats.recent)
    ]
    chart = charts.scatter(points, unit="s", x_label=("oldest run", "newest run"))
    return {"stats": stats, "chart": chart}


# Keyed by job name: only names that exist (registered, or with runs) get here.
_stats_page = SharedAnswers(_stats_context)


@role_required("viewer")
def overview(request):
    """Schedules, workers online, queue depth and stuck runs on one page."""
    return render(request, "jobs/overview.html", overview_service.facts())


@role_required("operator")
@require_POST
def schedule_toggle(request, task_id: int):
    task = get_object_or_404(PeriodicTask, pk=task_id)
    enable = request.POST.get("enabled") == "1"
    schedules.set_enabled(task, enable, request.user, ip_address=audit.client_ip(request))
    overview_service.forget()
    messages.success(request, f"{'Enabled' if enable else 'Disabled'} {task.name}.")
    return redirect("jobs:overview")


@role_required("operator")
def schedule_edit(request, task_id: int):
    task = get_object_or_404(PeriodicTask.objects.select_related("crontab"), pk=task_id)
    current = task.crontab
    initial = (
        {f: getattr(current, f) for f in CrontabForm.base_fields} if current else {"minute": "*"}
    )
    form = CrontabForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        schedules.set_crontab(
            task, form.cleaned_data, request.user, ip_address=audit.client_ip(request)
        )
        overview_service.forget()
        messages.success(request, f"{task.name} now runs at {schedules.describe(task)}.")
        return redirect("jobs:overview")
    status = 400 if request.method == "POST" else 200
    return render(request, "jobs/schedule_edit.html", {"task": task, "form": form}, status=status)
