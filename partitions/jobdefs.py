"""Partition jobs: the migration, its rollback, and the nightly retention pass."""

from celery.schedules import crontab
from django import forms

from jobs.registry import job

from . import execution, retention


class MigrationParams(forms.Form):
    migration_id = forms.IntegerField(min_value=1)


class RetentionParams(forms.Form):
    dry_run = forms.BooleanField(required=False)


# Migrations and rollbacks resume from their checkpoints, so a retry after a lost
# worker continues the work; both start only from their pages (typed confirmation).
MIGRATION_POLICY = dict(
    kind="migration",
    form=MigrationParams,
    retries=3,
    backoff=1,
    backoff_max=10,
    soft_timeout=6 * 3600,
    role="operator",
    listed=False,
)


@job("partition_migration", **MIGRATION_POLICY)
def partition_migration(ctx, params):
    """Run a confirmed partition migration plan (resumes from its checkpoints)."""
    return execution.run_migration(ctx, params["migration_id"])


@job("partition_rollback", **MIGRATION_POLICY)
def partition_rollback(ctx, params):
    """Swap a migrated table's original back and drop the partitioned copy."""
    return execution.run_rollback(ctx, params["migration_id"])


@job(
    "partition_retention",
    kind="maintenance",
    form=RetentionParams,
    exclusive=True,
    soft_timeout=3600,
    schedule=crontab(minute=17, hour=3),
    role="operator",
)
def partition_retention(ctx, params):
    """Pre-create upcoming partitions and drop those past retention (audited)."""
    return retention.apply_retention(
        f"schedule (run #{ctx.run.pk})",
        dry_run=bool(params.get("dry_run")),
        run=ctx.run,
        log=ctx.log,
    )
