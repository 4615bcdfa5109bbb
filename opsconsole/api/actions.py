"""Action endpoints: the pages' services, with the pages' roles and typed confirmations.

A page asks the operator to type a word (a table, a pattern, an index, a runbook);
here the caller sends it as `confirm`, checked by the same service code, and each
service writes its audit events with the token's name as the actor. Long actions
answer 202 with the run; follow it at GET /api/runs/{id}.
"""

from django.shortcuts import get_object_or_404
from ninja import Router, Status

from cachemgr.services import invalidation, warming
from jobs import registry, runner
from jobs.history import run_as_dict
from jobs.models import Run
from opsconsole import audit
from opsconsole.models import RunbookRequest
from opsconsole.roles import has_role
from opsconsole.runbooks import get as get_runbook
from opsconsole.runbooks import services as runbooks
from partitions import services as partitions
from partitions.models import Migration
from partitions.queries import apply

from .auth import require
from .reads import ERRORS, migration_as_dict
from .schemas import (
    ApplyIndexIn,
    ConfirmIn,
    Error,
    InvalidateIn,
    LaunchIn,
    MigrationOut,
    PlanIn,
    ReasonIn,
    RunbookLaunchIn,
    RunbookRequestOut,
    RunOut,
    StartIn,
    WarmIn,
)

router = Router(tags=["act"])
REFUSALS = {**ERRORS, 400: Error, 409: Error, 503: Error}
LAUNCHED = {202: RunOut, **REFUSALS}


def _ip(request) -> str | None:
    return audit.client_ip(request)


def _launched(run: Run):
    return Status(202, run_as_dict(run))


@router.post("/jobs/{name}/launch", response=LAUNCHED, summary="Launch a job")
def launch_job(request, name: str, body: LaunchIn):
    """The jobs page's launch: the job's own parameter form checks `params`."""
    require(request, "operator")
    spec = registry.get(name)
    if not spec.launchable:
        raise runner.LaunchRefused(f"{name} is a {spec.kind}: launch it with its own endpoint.")
    run = runner.start(
        name, body.params, request.user, request_key=body.request_key, ip_address=_ip(request)
    )
    return _launched(run)


@router.post("/runs/{run_id}/cancel", response={200: RunOut, **REFUSALS}, summary="Cancel a run")
def cancel_run(request, run_id: int):
    require(request, "operator")
    run = get_object_or_404(Run, pk=run_id)
    return run_as_dict(runner.cancel(run, request.user, ip_address=_ip(request)))


@router.post("/runs/{run_id}/retry", response=LAUNCHED, summary="Retry an unsuccessful run")
def retry_run(request, run_id: int):
    require(request, "operator")
    run = get_object_or_404(Run, pk=run_id)
    return _launched(runner.retry(run, request.user, ip_address=_ip(request)))


@router.post(
    "/cache/{target}/invalidate", response=LAUNCHED, summary="Invalidate the keys of a pattern"
)
def invalidate(request, target: str, body: InvalidateIn):
    """Past CACHE_CONFIRM_ABOVE estimated keys, `confirm` must be the pattern; a pattern
    matching every key needs an admin and the target's name. A 400 carries the preview."""
    require(request, "operator")
    invalidation.check_pattern(body.pattern)
    run = invalidation.start_pattern_invalidation(
        target,
        body.pattern,
        request.user,
        confirm=body.confirm,
        is_admin=has_role(request.user, "admin"),
        ip_address=_ip(request),
    )
    return _launched(run)


@router.post("/cache/{target}/warm", response=LAUNCHED, summary="Run a cache warmer")
def warm(request, target: str, body: WarmIn):
    require(request, "operator")
    run = warming.start_warm(
        target, body.warmer, request.user, limit=body.limit, ip_address=_ip(request)
    )
    return _launched(run)


@router.post(
    "/migrations/plan", response={201: MigrationOut, **REFUSALS}, summary="Plan a migration"
)
def plan_migration(request, body: PlanIn):
    require(request, "operator")
    options = body.dict(exclude={"warehouse", "schema_name", "table"}, exclude_none=True)
    migration = partitions.plan_migration(
        request.user, body.warehouse, body.schema_name, body.table, options, ip_address=_ip(request)
    )
    return Status(201, migration_as_dict(migration, steps=True))


@router.post(
    "/migrations/{migration_id}/start",
    response={202: MigrationOut, **REFUSALS},
    summary="Start a planned migration",
)
def start_migration(request, migration_id: int, body: StartIn):
    """`confirm` is the table's name (as the page asks to type it)."""
    require(request, "operator")
    migration = get_object_or_404(Migration, pk=migration_id)
    checked = partitions.start_migration(
        request.user, migration, confirm=body.confirm, reason=body.reason, ip_address=_ip(request)
    )
    return Status(202, migration_as_dict(checked.migration, steps=True))


@router.post(
    "/migrations/{migration_id}/rollback",
    response=LAUNCHED,
    summary="Roll back a succeeded migration",
)
def rollback_migration(request, migration_id: int, body: ReasonIn):
    require(request, "operator")
    migration = get_object_or_404(Migration, pk=migration_id)
    run = partitions.rollback_migration(
        request.user, migration, reason=body.reason, ip_address=_ip(request)
    )
    return _launched(run)


@router.post("/indexes/apply", response=LAUNCHED, summary="Build a suggested index")
def apply_index(request, body: ApplyIndexIn):
    """CREATE INDEX CONCURRENTLY as a job; `confirm` is the index name."""
    require(request, "operator")
    params = {
        "warehouse": body.warehouse,
        "schema": body.schema_name,
        "table": body.table,
        "columns": ",".join(body.columns),
        "name": body.name,
        "confirm": body.confirm,
    }
    run = apply.start_apply(
        request.user, params, request_key=body.request_key, ip_address=_ip(request)
    )
    return _launched(run)


@router.post(
    "/indexes/{run_id}/rollback", response=LAUNCHED, summary="Drop an index the console built"
)
def rollback_index(request, run_id: int, body: ConfirmIn):
    """Admin only, as on the page; `confirm` is the index name."""
    require(request, "admin")
    run = get_object_or_404(Run, pk=run_id, name=apply.APPLY_JOB)
    return _launched(apply.start_rollback(request.user, run, body.confirm, ip_address=_ip(request)))


@router.post(
    "/runbooks/{name}/launch",
    response={202: RunOut | RunbookRequestOut, **REFUSALS},
    summary="Launch a runbook",
)
def launch_runbook(request, name: str, body: RunbookLaunchIn):
    """`confirm` is the runbook's name. A four-eyes runbook is filed for approval."""
    require(request, "operator")
    book = get_runbook(name)
    if book is None:
        raise registry.UnknownJob(f"Unknown runbook {name!r}.")
    outcome = runbooks.launch(
        book,
        body.params,
        request.user,
        reason=body.reason,
        request_key=body.request_key,
        confirm=body.confirm,
        ip_address=_ip(request),
    )
    if isinstance(outcome, RunbookRequest):
        body = {"request_id": outcome.pk, "runbook": book.name, "status": outcome.status}
        return Status(202, body)
    return _launched(outcome)
