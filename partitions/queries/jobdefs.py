"""The Queries module's jobs (apply and roll back an index, the demo shop's full load)
and its beat task."""

from django.conf import settings

from jobs.registry import job
from jobs.schedules import periodic

from . import apply, demo, drops, longrunning
from .forms import (
    ApplyIndexForm,
    DemoFullLoadForm,
    DropIndexForm,
    RecreateIndexForm,
    RollbackIndexForm,
)

SNAPSHOT_EVERY_S = 3600


@job(
    apply.APPLY_JOB,
    kind="index",
    form=ApplyIndexForm,
    soft_timeout=4 * 3600,
    listed=False,
    description="Build a suggested index with CREATE INDEX CONCURRENTLY.",
)
def apply_index(ctx, params: dict) -> dict:
    return apply.build_index(ctx, params)


@job(
    apply.ROLLBACK_JOB,
    kind="index",
    form=RollbackIndexForm,
    soft_timeout=3600,
    role="admin",
    listed=False,
    description="Drop an index the console built (DROP INDEX CONCURRENTLY).",
)
def rollback_index(ctx, params: dict) -> dict:
    return apply.drop_index(ctx, params)


@job(
    drops.DROP_JOB,
    kind="index",
    form=DropIndexForm,
    soft_timeout=3600,
    role="admin",
    listed=False,
    description="Drop an unused or duplicate index (DROP INDEX CONCURRENTLY), definition kept.",
)
def drop_unneeded_index(ctx, params: dict) -> dict:
    return drops.drop_unneeded(ctx, params)


@job(
    drops.RECREATE_JOB,
    kind="index",
    form=RecreateIndexForm,
    soft_timeout=4 * 3600,
    role="admin",
    listed=False,
    description="Re-create a dropped index from its saved definition, concurrently.",
)
def recreate_index(ctx, params: dict) -> dict:
    return drops.recreate(ctx, params)


@job(
    demo.FULL_LOAD_JOB,
    form=DemoFullLoadForm,
    exclusive=True,
    soft_timeout=1800,
    role="admin",
    listed=False,
    description="Demo only: load the shop's full orders table and rerun its workload.",
)
def demo_shop_orders(ctx, params: dict) -> dict:
    return demo.load_full_orders(
        params["warehouse"], params["schema"], int(params["orders"]), progress=ctx.progress
    )


periodic(
    "queries: snapshot pg_stat_statements",
    "queries.snapshot_statements",
    SNAPSHOT_EVERY_S,
    "Stores each PostgreSQL warehouse's top statements so the Queries page shows trends.",
)

periodic(
    "queries: sample long-running statements",
    longrunning.SAMPLE_TASK,
    settings.QUERIES_LONG_SAMPLE_S,
    "Records statements running longer than QUERIES_LONG_RUNNING_MS, so the index "
    "advisor weighs those that never finish (pg_stat_statements only sees finished ones).",
)
