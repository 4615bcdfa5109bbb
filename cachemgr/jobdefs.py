"""The cache manager's long actions (jobs) and its per-minute beat task."""

from jobs.registry import job
from jobs.schedules import periodic

from . import registry, targets
from .forms import AnalyzeJobForm, InvalidatePatternJobForm, WarmJobForm
from .services import analysis, invalidation, warming

registry.discover()  # warmers modules: scheduled warmers become jobs below

periodic(
    "cachemgr: stats snapshot",
    "cachemgr.snapshot_stats",
    60,
    "Stores each cache target's INFO figures for the history charts, refreshes namespace "
    "discovery, and prunes snapshots older than 30 days.",
)


def _actor(ctx):
    return ctx.run.actor or ctx.run.actor_name


@job(
    invalidation.JOB_NAME,
    kind="cache",
    form=InvalidatePatternJobForm,
    soft_timeout=3600,
    listed=False,
)
def invalidate_pattern(ctx, params):
    """Delete every key matching a glob pattern (SCAN + pipelined UNLINK)."""
    estimate = params.get("estimated_keys") or None
    # Keys deleted by earlier attempts of this run (one killed midway, say): the run
    # and this attempt's audit event count them too.
    earlier = ctx.run.effects.get("keys_deleted", 0)
    recorded = 0

    def progress(figures):
        nonlocal recorded
        ctx.record_effect(keys_deleted=figures["deleted"] - recorded)
        recorded = figures["deleted"]
        figures["deleted_by_earlier_attempts"] = earlier
        total = max(estimate, figures["deleted"]) if estimate else None
        # A cluster whose slots moved under the run is walked again: say so.
        again = f" · pass {figures['passes']}" if figures.get("passes", 1) > 1 else ""
        ctx.progress(
            figures["deleted"],
            total,
            f"{figures['deleted']:,} deleted · {figures['rounds']:,} SCAN rounds · "
            f"{figures['rate']:,} keys/s{again}",
        )

    ctx.log(f"invalidating {params['pattern']!r} on {params['target']}")
    figures = invalidation.invalidate_pattern(
        params["target"], params["pattern"], _actor(ctx), run=ctx.run, progress=progress
    )
    ctx.log(f"deleted {figures['deleted']:,} keys in {figures['seconds']} s")
    return figures


@job(warming.JOB_NAME, kind="cache", form=WarmJobForm, soft_timeout=3600)
def warm(ctx, params):
    """Run a cache warmer: write what it yields into its namespace."""

    def progress(figures):
        ctx.progress(figures["written"], params.get("limit"), f"{figures['written']:,} written")

    figures = warming.warm(
        params["target"],
        params["warmer"],
        _actor(ctx),
        limit=params.get("limit"),
        run=ctx.run,
        progress=progress,
    )
    ctx.log(f"wrote {figures['written']:,} keys in {figures['seconds']} s")
    return figures


@job(analysis.JOB_NAME, kind="cache", form=AnalyzeJobForm, soft_timeout=6 * 3600)
def analyze(ctx, params):
    """Exact keyspace analysis: every key of every primary (resumes from its cursors)."""

    def progress(row, total):
        ctx.progress(
            row.keys,
            max(total, row.keys),
            f"{row.keys:,} keys · {row.memory:,} B · {len(row.namespaces)} namespaces",
        )

    ctx.log(f"analysing every key of {params['target']}")
    row = analysis.analyze(params["target"], run=ctx.run, progress=progress)
    ctx.log(f"{row.keys:,} keys, {row.memory:,} B in {row.seconds:.1f} s")
    return {"analysis_id": row.pk, "keys": row.keys, "memory": row.memory, "seconds": row.seconds}


for spec in registry.WARMERS.values():
    if spec.schedule is not None and targets.names():
        job(
            f"{warming.JOB_NAME}.{spec.name}",
            kind="cache",
            form=WarmJobForm,
            soft_timeout=3600,
            exclusive=True,
            schedule=spec.schedule,
            schedule_params={"target": targets.default(), "warmer": spec.name},
            description=f"Warm {spec.namespace} on {targets.default()} ({spec.description})",
        )(warm)
