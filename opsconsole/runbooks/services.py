"""Launching, approving, retrying, undoing and abandoning runbooks (all audited)."""

from django import forms
from django.db import transaction
from django.utils import timezone

from jobs import runner
from jobs.models import Run
from opsconsole import audit
from opsconsole.actions import audited_action
from opsconsole.confirmation import require_typed
from opsconsole.models import RunbookRequest
from opsconsole.roles import has_role

from .book import Runbook, confirm_message
from .registry import get


class RunbookRefused(Exception):
    pass


@audited_action("job.start", long=True)
def launch(
    book: Runbook,
    params: dict,
    actor,
    reason: str = "",
    request_key=None,
    ip_address=None,
    *,
    confirm: str = "",
    assume_yes: bool = False,
    dry_run: bool = False,
) -> Run | RunbookRequest | list[dict]:
    """Start the runbook, or file it for approval when it needs four eyes, once its
    name is typed (`confirm`; `assume_yes` is the command line's --yes).

    With dry_run: the same checks, then only the preview of each step (reads, so
    nothing is audited). Undo: cancel the run, or undo its steps once it has ended.
    """
    if not has_role(actor, book.role):
        raise RunbookRefused(f"{book.title} needs the {book.role} role.")
    try:
        cleaned = book.clean(params)
    except forms.ValidationError as exc:
        raise RunbookRefused("Invalid parameters: " + "; ".join(exc.messages)) from None
    if dry_run:
        return book.preview(cleaned)
    require_typed(
        book.name, confirm, confirm_message(book), assume_yes=assume_yes, error=RunbookRefused
    )
    if book.needs_approval:
        with audit.record(
            actor,
            "runbook.request",
            book.name,
            ip_address=ip_address,
            params=cleaned,
            reason=reason,
        ) as event:
            request = RunbookRequest.objects.create(
                runbook=book.name, params=cleaned, reason=reason[:300], requested_by=actor
            )
            event.params["request_id"] = request.pk
        return request
    return _start(book, cleaned, actor, request_key=request_key, ip_address=ip_address)


def _start(book: Runbook, params: dict, actor, **kwargs) -> Run:
    try:
        return runner.start(book.job_name, {"params": params, "mode": "run"}, actor, **kwargs)
    except runner.LaunchRefused as exc:
        raise RunbookRefused(str(exc)) from None


@audited_action("runbook.approve")
def decide(request: RunbookRequest, approver, approve: bool, ip_address=None) -> RunbookRequest:
    """Approve (and launch) or reject a pending request. The requester cannot decide.
    Undo: cancel the launched run. A refusal is audited after its transaction has
    rolled back, so the failed event stays."""
    action = "runbook.approve" if approve else "runbook.reject"
    with (
        audit.record(
            approver, action, request.runbook, ip_address=ip_address, request_id=request.pk
        ) as event,
        transaction.atomic(),
    ):
        request = RunbookRequest.objects.select_for_update().get(pk=request.pk)
        _may_decide(request, approver)
        request.status = (
            RunbookRequest.Status.APPROVED if approve else RunbookRequest.Status.REJECTED
        )
        request.decided_by, request.decided_at = approver, timezone.now()
        if approve:
            book = get(request.runbook)
            request.run = _start(book, request.params, request.requested_by, accepted_event=None)
            event.run = request.run
        request.save()
    return request


def _may_decide(request: RunbookRequest, approver) -> None:
    if request.status != RunbookRequest.Status.PENDING:
        raise RunbookRefused(f"This request was already {request.status}.")
    if request.requested_by_id == approver.pk:
        raise RunbookRefused("You cannot approve or reject your own request.")
    if not has_role(approver, "operator"):
        raise RunbookRefused("Approving needs the operator role.")


@audited_action("runbook.retry_step", long=True)
def retry_failed_step(run: Run, actor, ip_address=None) -> Run:
    """A new run that keeps the steps that succeeded and starts at the failed one.
    The event is linked to the new run; `of_run` names the failed one."""
    book = _book_of(run)
    _must_have_failed(run)
    with audit.record(
        actor, "runbook.retry_step", book.name, ip_address=ip_address, of_run=run.pk
    ) as event:
        event.run = runner.start(
            book.job_name,
            {"params": run.params.get("params", {}), "mode": "run", "resume_from": run.pk},
            actor,
            retry_of=run,
            accepted_event=None,
        )
    return event.run


@audited_action("runbook.undo", long=True)
def undo(run: Run, actor, ip_address=None) -> Run:
    """A new run that undoes, newest first, every step that succeeded in `run`.
    The event is linked to the new run; `of_run` names the undone one."""
    book = _book_of(run)
    if run.is_active:
        raise RunbookRefused("Cancel the run before undoing it.")
    with audit.record(
        actor, "runbook.undo", book.name, ip_address=ip_address, of_run=run.pk
    ) as event:
        event.run = runner.start(
            book.job_name,
            {"params": run.params.get("params", {}), "mode": "undo", "resume_from": run.pk},
            actor,
            accepted_event=None,
        )
    return event.run


@audited_action("runbook.abandon")
def abandon(run: Run, actor, ip_address=None) -> None:
    """Leave a failed runbook as it is (recorded, so nobody wonders later)."""
    book = _book_of(run)
    _must_have_failed(run)
    with audit.record(actor, "runbook.abandon", book.name, ip_address=ip_address, run=run):
        Run.objects.filter(pk=run.pk).update(result={**run.result, "abandoned": True})


def _book_of(run: Run) -> Runbook:
    book = get(run.name.removeprefix("runbook.")) if run.kind == "runbook" else None
    if book is None:
        raise RunbookRefused(f"Run #{run.pk} is not a runbook run.")
    return book


def _must_have_failed(run: Run) -> None:
    if run.is_active or run.status == "succeeded":
        raise RunbookRefused(f"Run #{run.pk} is {run.status}; only a failed runbook can do that.")
    if run.result.get("abandoned"):
        raise RunbookRefused(f"Run #{run.pk} was abandoned.")
