import uuid

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from jobs.models import Run
from opsconsole import audit
from opsconsole.models import AuditEvent, RunbookRequest
from opsconsole.roles import role_required

from . import RUNBOOKS, get, services
from .forms import ConfirmForm


def _book_or_404(name: str):
    book = get(name)
    if book is None:
        raise Http404(f"No runbook named {name!r}.")
    return book


@role_required("viewer")
def runbook_list(request):
    runs = Run.objects.filter(kind="runbook").order_by("-id")[:20]
    pending = RunbookRequest.objects.filter(status="pending").select_related("requested_by")
    return render(
        request,
        "runbooks/list.html",
        {
            "books": sorted(RUNBOOKS.values(), key=lambda b: b.title),
            "runs": runs,
            "pending": pending,
        },
    )


@role_required("operator")
def runbook_detail(request, name: str):
    """GET: the form. POST: the preview (same code path as the run), then the launch."""
    book = _book_or_404(name)
    params_form = book.form(request.POST or None) if book.form else None
    confirm_form = None
    preview = None
    if request.method == "POST" and (params_form is None or params_form.is_valid()):
        params = params_form.cleaned_data if params_form else {}
        try:
            preview = services.launch(book, params, request.user, dry_run=True)
        except services.RunbookRefused as exc:
            messages.error(request, str(exc))
            return redirect("runbooks:detail", book.name)
        if request.POST.get("action") == "launch":
            confirm_form = ConfirmForm(request.POST, book=book)
            if confirm_form.is_valid():
                return _launch(request, book, params, confirm_form)
        else:
            confirm_form = ConfirmForm(book=book, initial={"request_key": uuid.uuid4().hex})
    status = 400 if request.method == "POST" and preview is None else 200
    if confirm_form is not None and confirm_form.is_bound and not confirm_form.is_valid():
        status = 400
    return render(
        request,
        "runbooks/detail.html",
        {
            "book": book,
            "params_form": params_form,
            "preview": preview,
            "confirm_form": confirm_form,
        },
        status=status,
    )


def _launch(request, book, params: dict, confirm_form):
    try:
        outcome = services.launch(
            book,
            params,
            request.user,
            reason=confirm_form.cleaned_data["reason"],
            request_key=confirm_form.cleaned_data["request_key"],
            confirm=confirm_form.cleaned_data["confirm"],
            ip_address=audit.client_ip(request),
        )
    except services.RunbookRefused as exc:
        messages.error(request, str(exc))
        return redirect("runbooks:detail", book.name)
    if isinstance(outcome, RunbookRequest):
        messages.success(request, "Requested: a second operator must approve it before it runs.")
        return redirect("runbooks:list")
    return redirect("runbooks:run", outcome.pk)


@role_required("viewer")
def runbook_run(request, run_id: int):
    run = get_object_or_404(Run, pk=run_id, kind="runbook")
    book = get(run.name.removeprefix("runbook."))
    context = {"run": run, "book": book, "steps": run.result.get("steps", [])}
    if request.htmx:
        return render(request, "runbooks/partials/_steps.html", context)
    context["events"] = AuditEvent.objects.filter(run=run).order_by("id")
    return render(request, "runbooks/run.html", context)


def _run_action(request, run_id: int, service, done: str):
    run = get_object_or_404(Run, pk=run_id, kind="runbook")
    try:
        outcome = service(run, request.user, ip_address=audit.client_ip(request))
    except services.RunbookRefused as exc:
        messages.error(request, str(exc))
        return redirect("runbooks:run", run.pk)
    messages.success(request, done)
    return redirect("runbooks:run", outcome.pk if isinstance(outcome, Run) else run.pk)


@role_required("operator")
@require_POST
def retry_step(request, run_id: int):
    return _run_action(
        request, run_id, services.retry_failed_step, "Retrying from the failed step."
    )


@role_required("operator")
@require_POST
def undo(request, run_id: int):
    return _run_action(request, run_id, services.undo, "Undoing the steps that ran.")


@role_required("operator")
@require_POST
def abandon(request, run_id: int):
    return _run_action(request, run_id, services.abandon, "Abandoned; it stays as it is.")


@role_required("operator")
@require_POST
def decide(request, request_id: int):
    pending = get_object_or_404(RunbookRequest, pk=request_id)
    approve = request.POST.get("decision") == "approve"
    try:
        pending = services.decide(
            pending, request.user, approve, ip_address=audit.client_ip(request)
        )
    except services.RunbookRefused as exc:
        messages.error(request, str(exc))
        return redirect("runbooks:list")
    if approve:
        messages.success(request, f"Approved: run #{pending.run_id} started.")
        return redirect("runbooks:run", pending.run_id)
    messages.success(request, "Rejected.")
    return redirect("runbooks:list")
