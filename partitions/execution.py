"""The bodies of the migration and rollback jobs: walk the stored plan step by
step, each step's status committed as it changes, and roll back on any failure.

A killed worker leaves a step `running`; the job's next attempt runs that step
again, and each backend step is idempotent (it resumes from its checkpoint).
"""

import logging
from typing import Any

import psycopg
from django.utils import timezone

from jobs.runner import JobCancelled, JobTimedOut, PermanentError, RunContext
from opsconsole import audit

from . import backends, faults
from .backends.base import Backend, PlanRefused, StepFailed, StepReport
from .models import Migration, MigrationState, MigrationStep, StepStatus
from .warehouses import WarehouseUnreachable

log = logging.getLogger(__name__)

# Failures that end the migration in a rollback (a worker death does not: it resumes).
FAILURES = (StepFailed, PlanRefused, WarehouseUnreachable, psycopg.Error, JobCancelled, JobTimedOut)


def report_for(ctx: RunContext, step: MigrationStep) -> StepReport:
    def save(data: dict) -> None:
        MigrationStep.objects.filter(pk=step.pk).update(checkpoint=data)

    return StepReport(
        progress=lambda done, total, message: ctx.progress(done, total, f"{step.name}: {message}"),
        log=ctx.log,
        check=ctx.check,
        save=save,
        checkpoint=step.checkpoint,
        fault=lambda point, n: faults.trip(point, n, ctx.run.attempt),
    )


class MigrationStopped(StepFailed, PermanentError):
    """A migration that failed (and rolled back) or may not run: the runner must not retry it."""


def claim(ctx: RunContext, migration: Migration, field: str) -> None:
    """Only the run the service started (or a retry of it, once that run has ended)
    may work on a migration: a launch from the generic jobs page cannot bypass the
    confirmation or run twice at once."""
    current = getattr(migration, field)
    if current is not None and current.pk == ctx.run.pk:
        return
    if ctx.run.retry_of_id and (current is None or not current.is_active):
        Migration.objects.filter(pk=migration.pk).update(**{field: ctx.run})
        return
    raise MigrationStopped(
        f"migration #{migration.pk} belongs to another run; start it from its page"
    )


def run_migration(ctx: RunContext, migration_id: int) -> dict[str, Any]:
    migration = Migration.objects.select_related("run").get(pk=migration_id)
    claim(ctx, migration, "run")
    if migration.state != MigrationState.RUNNING:
        raise MigrationStopped(f"migration #{migration.pk} is {migration.state}, not running")
    if not migration.plan_intact:
        raise MigrationStopped("the stored plan does not match its hash")
    ctx.log(f"attempt {ctx.run.attempt}: migrating {migration.target}")
    try:
        backend = backends.for_warehouse(migration.warehouse)
    except Exception as exc:
        return fail_into_rollback(ctx, migration, None, exc)
    try:
        return walk_steps(ctx, migration, backend)
    finally:
        backend.close()


def walk_steps(ctx: RunContext, migration: Migration, backend: Backend) -> dict[str, Any]:
    results: dict[str, Any] = {}
    steps = list(migration.steps.order_by("position"))
    for index, step in enumerate(steps):
        if step.status == StepStatus.DONE:
            results[step.name] = step.detail
            continue
        ctx.progress(index, len(steps), f"{step.name}: starting")
        MigrationStep.objects.filter(pk=step.pk).update(
            status=StepStatus.RUNNING, started_at=step.started_at or timezone.now()
        )
        try:
            detail = backend.run_step(migration.plan, step.name, report_for(ctx, step))
        except faults.WorkerDied:
            raise
        except FAILURES as exc:
            MigrationStep.objects.filter(pk=step.pk).update(
                status=StepStatus.FAILED, detail={"error": str(exc)[:2000]}
            )
            return fail_into_rollback(ctx, migration, backend, exc)
        MigrationStep.objects.filter(pk=step.pk).update(
            status=StepStatus.DONE, detail=detail, finished_at=timezone.now()
        )
        results[step.name] = detail
        ctx.log(f"{step.name}: done {detail}")
        if step.name == "swap":  # a detail event of the run: notifications listen for it
            audit.write(
                f"system (run #{ctx.run.pk})",
                "partitions.swapped",
                migration.target,
                run=ctx.run,
                params={"migration_id": migration.pk},
            )
    Migration.objects.filter(pk=migration.pk).update(
        state=MigrationState.SUCCEEDED, result=results, error=""
    )
    ctx.progress(len(steps), len(steps), "migrated; the original is kept until you drop it")
    return {"migration_id": migration.pk, "state": "succeeded", **results}


def fail_into_rollback(
    ctx: RunContext, migration: Migration, backend: Backend | None, exc: Exception
) -> dict:
    """Undo whatever was built, record it (one audit event), and fail the run."""
    error = f"{type(exc).__name__}: {exc}"
    ctx.log(f"failed: {error}; rolling back")
    with audit.record(
        f"system (run #{ctx.run.pk})",
        "partitions.auto_rollback",
        migration.target,
        run=ctx.run,
        migration_id=migration.pk,
        error=error[:500],
    ) as event:
        try:
            backend = backend or backends.for_warehouse(migration.warehouse)
            report = StepReport(log=ctx.log)
            swapped = backend.is_swapped(migration.plan)
            event.params["undo"] = backend.undo(migration.plan, swapped, report)
        except Exception as undo_exc:
            Migration.objects.filter(pk=migration.pk).update(
                error=f"{error}; rollback failed: {undo_exc} (the job retries it)"
            )
            raise
        Migration.objects.filter(pk=migration.pk).update(state=MigrationState.FAILED, error=error)
        migration.steps.exclude(status=StepStatus.PENDING).update(status=StepStatus.UNDONE)
    raise MigrationStopped(f"{error} (rolled back: the original table serves, untouched)")


def run_rollback(ctx: RunContext, migration_id: int) -> dict[str, Any]:
    migration = Migration.objects.select_related("rollback_run").get(pk=migration_id)
    claim(ctx, migration, "rollback_run")
    if migration.state != MigrationState.ROLLING_BACK:
        raise MigrationStopped(f"migration #{migration.pk} is {migration.state}, not rolling back")
    backend = backends.for_warehouse(migration.warehouse)
    try:
        ctx.progress(0, 1, "swapping the original back")
        report = StepReport(
            progress=lambda done, total, message: ctx.progress(done, total, message),
            log=ctx.log,
            check=ctx.check,
            save=lambda data: Migration.objects.filter(pk=migration.pk).update(
                result={**migration.result, "rollback_progress": data}
            ),
        )
        result = backend.undo(migration.plan, backend.is_swapped(migration.plan), report)
    finally:
        backend.close()
    Migration.objects.filter(pk=migration.pk).update(
        state=MigrationState.ROLLED_BACK,
        result={k: v for k, v in migration.result.items() if k != "rollback_progress"}
        | {"rollback": result},
    )
    migration.steps.update(status=StepStatus.UNDONE)
    ctx.progress(1, 1, "rolled back: the original serves again")
    return {"migration_id": migration.pk, **result}
