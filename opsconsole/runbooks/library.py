"""The runbooks that ship with the console. Each step calls an existing service."""

import time
from datetime import timedelta

from django import forms
from django.conf import settings
from django.utils import timezone

from cachemgr import registry as warmers
from cachemgr.services import invalidation, warming
from jobs import runner, sync
from jobs.models import FINISHED_STATUSES, Run, RunStatus
from opsconsole import audit, health
from partitions import retention

from .book import Runbook, Step, StepFailed
from .registry import register

CHECK_POLL_S = 2.0


def target_choices():
    return [(name, name) for name in settings.CACHE_TARGETS]


def warmer_choices():
    warmers.discover()
    return [
        (name, f"{name} (namespace {w.namespace})") for name, w in sorted(warmers.WARMERS.items())
    ]


def postgres_warehouses():
    return [(n, n) for n, url in settings.WAREHOUSES.items() if url.startswith("postgres")]


def wait_until(condition, timeout_s: float, poll_s: float = CHECK_POLL_S, on_wait=None):
    """Poll `condition()` until it returns a truthy value or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        if on_wait:
            on_wait()
        time.sleep(poll_s)


# --- cache stampede recovery -------------------------------------------------


class StampedeForm(forms.Form):
    target = forms.ChoiceField(choices=target_choices)
    warmer = forms.ChoiceField(choices=warmer_choices, help_text="Its namespace is bumped")
    limit = forms.IntegerField(required=False, min_value=1, help_text="Rows to warm (all if empty)")
    min_hit_rate = forms.FloatField(initial=80, min_value=0, max_value=100)
    within_minutes = forms.FloatField(initial=5, min_value=0.05, max_value=60)


def _namespace(params) -> str:
    return warmers.get(params["warmer"]).namespace


def bump_step(ctx):
    return invalidation.bump_namespace(ctx.params["target"], _namespace(ctx.params), ctx.actor)


def undo_bump_step(ctx):
    before = ctx.outputs["Bump the namespace version"]["old_version"]
    return invalidation.restore_namespace_version(
        ctx.params["target"], _namespace(ctx.params), before, ctx.actor
    )


def warm_step(ctx):
    figures = warming.warm(
        ctx.params["target"],
        ctx.params["warmer"],
        ctx.actor,
        limit=ctx.params.get("limit"),
        run=ctx.run,
        progress=lambda f: ctx.progress(f"{f['written']:,} keys written"),
    )
    return {"written": figures["written"], "seconds": figures.get("seconds")}


def hit_rate_check(ctx):
    target, namespace = ctx.params["target"], _namespace(ctx.params)
    wanted = float(ctx.params.get("min_hit_rate", 80))

    def good_enough():
        share = warming.namespace_hit_rate(target, namespace, minutes=1)
        rate = None if share is None else round(100 * share, 1)
        ctx.progress(f"hit rate of {namespace}: {'no reads yet' if rate is None else f'{rate}%'}")
        return rate is not None and rate >= wanted and rate

    rate = wait_until(good_enough, float(ctx.params.get("within_minutes", 5)) * 60)
    if not rate:
        raise StepFailed(f"Hit rate of {namespace} stayed below {wanted:g}% for the whole window.")
    return {"hit_rate": rate}


register(
    Runbook(
        name="cache_stampede",
        title="Cache stampede recovery",
        description="After a deploy floods the warehouse with misses: start the namespace "
        "afresh, warm it from the database, and watch the hit rate come back.",
        form=StampedeForm,
        steps=[
            Step(
                "Bump the namespace version",
                bump_step,
                lambda p: (
                    f"Bump the version of the {_namespace(p)} namespace on {p['target']}: "
                    "every old key stops being read at once (O(1), nothing is scanned)."
                ),
                undo=undo_bump_step,
                undo_describe="Point the namespace back at its previous version; its keys "
                "that have not expired are read again.",
            ),
            Step(
                "Warm the namespace",
                warm_step,
                lambda p: (
                    f"Run the {p['warmer']} warmer into {p['target']}"
                    + (f", at most {p['limit']} rows." if p.get("limit") else ", every row.")
                ),
            ),
            Step(
                "Check the hit rate",
                hit_rate_check,
                lambda p: (
                    f"Wait until the hit rate of {_namespace(p)} over the last minute is at "
                    f"least {p.get('min_hit_rate', 80):g}%, "
                    f"for up to {p.get('within_minutes', 5):g} minutes."
                ),
                check=True,
            ),
        ],
    )
)


# --- retry the failed syncs ---------------------------------------------------


class RetrySyncsForm(forms.Form):
    job = forms.CharField(initial="table_sync")
    hours = forms.IntegerField(initial=24, min_value=1, max_value=24 * 14)
    wait_minutes = forms.FloatField(initial=30, min_value=0.05, max_value=240)


def failed_runs(job: str, hours: int):
    """Unsuccessful runs of `job` in the last `hours` that nobody has retried yet."""
    since = timezone.now() - timedelta(hours=hours)
    return (
        Run.objects.filter(
            name=job,
            created_at__gte=since,
            status__in=[RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.LOST],
        )
        .exclude(pk__in=Run.objects.filter(retry_of__isnull=False).values("retry_of"))
        .order_by("id")
    )


def retry_step(ctx):
    retried = []
    for run in failed_runs(ctx.params["job"], int(ctx.params["hours"])):
        try:
            retried.append(runner.retry(run, ctx.actor).pk)
        except runner.LaunchRefused as exc:
            raise StepFailed(str(exc)) from exc
    ctx.progress(f"{len(retried)} runs retried")
    return {"retried": retried}


def wait_for_retries(ctx):
    ids = ctx.outputs["Retry every failed run"]["retried"]

    def all_done():
        return not Run.objects.filter(pk__in=ids).exclude(status__in=FINISHED_STATUSES).exists()

    if not wait_until(all_done, float(ctx.params.get("wait_minutes", 30)) * 60):
        raise StepFailed("Some retried runs were still going when the wait ran out.")
    failed = list(
        Run.objects.filter(pk__in=ids)
        .exclude(status=RunStatus.SUCCEEDED)
        .values_list("pk", flat=True)
    )
    if failed:
        raise StepFailed(f"These retries did not succeed: {', '.join(f'#{pk}' for pk in failed)}.")
    return {"succeeded": len(ids)}


def verify_counts(ctx):
    ids = ctx.outputs["Retry every failed run"]["retried"]
    pairs = {
        (r.params["source"], r.params["source_table"], r.params["target"], r.params["target_table"])
        for r in Run.objects.filter(pk__in=ids)
        if {"source", "source_table", "target", "target_table"} <= set(r.params)
    }
    counts = []
    for source, source_table, target, target_table in sorted(pairs):
        src, dst = sync.row_counts(
            settings.WAREHOUSES[source], source_table, settings.WAREHOUSES[target], target_table
        )
        counts.append(
            {"source": source_table, "target": target_table, "source_rows": src, "target_rows": dst}
        )
        if src != dst:
            raise StepFailed(f"{source_table} has {src:,} rows but {target_table} has {dst:,}.")
    return {"tables": counts}


register(
    Runbook(
        name="retry_failed_syncs",
        title="Retry the failed syncs",
        description="After a night of failed syncs: retry every failed run of the last hours, "
        "wait for them, then check that source and warehouse have the same row counts.",
        form=RetrySyncsForm,
        steps=[
            Step(
                "Retry every failed run",
                retry_step,
                lambda p: (
                    f"Retry the {failed_runs(p['job'], int(p['hours'])).count()} failed, "
                    f"timed-out or lost {p['job']} runs of the last {p['hours']} hours "
                    "that nobody retried yet."
                ),
                idempotent=False,
            ),
            Step(
                "Wait for the retries",
                wait_for_retries,
                lambda p: (
                    f"Wait up to {p.get('wait_minutes', 30):g} minutes; every retry must succeed."
                ),
                check=True,
            ),
            Step(
                "Compare row counts",
                verify_counts,
                lambda p: (
                    "Count the rows of each synced source table and its warehouse copy; "
                    "they must match."
                ),
                check=True,
            ),
        ],
    )
)


# --- refresh materialized views, then warm what reads them -------------------------


class RefreshAndWarmForm(forms.Form):
    warehouse = forms.ChoiceField(choices=postgres_warehouses)
    views = forms.CharField(initial="analytics.daily_revenue", help_text="Comma-separated")
    target = forms.ChoiceField(choices=target_choices)
    warmers = forms.MultipleChoiceField(choices=warmer_choices)


def refresh_step(ctx):
    url = settings.WAREHOUSES[ctx.params["warehouse"]]
    names = [v.strip() for v in ctx.params["views"].split(",") if v.strip()]
    try:
        return {"views": [sync.refresh_matview(url, name) for name in names]}
    except sync.SyncError as exc:
        raise StepFailed(str(exc)) from exc


def warm_all_step(ctx):
    written = {}
    for name in ctx.params["warmers"]:
        written[name] = warming.warm(ctx.params["target"], name, ctx.actor, run=ctx.run)["written"]
    return {"written": written}


register(
    Runbook(
        name="refresh_and_warm",
        title="Refresh materialized views and warm their caches",
        description="Refresh the views concurrently (readers keep the old rows), then warm "
        "the cache namespaces built from them.",
        form=RefreshAndWarmForm,
        steps=[
            Step(
                "Refresh the materialized views",
                refresh_step,
                lambda p: (
                    f"REFRESH MATERIALIZED VIEW CONCURRENTLY {p['views']} on {p['warehouse']}."
                ),
            ),
            Step(
                "Warm the caches",
                warm_all_step,
                lambda p: f"Run the warmers {', '.join(p['warmers'])} into {p['target']}.",
            ),
        ],
    )
)


# --- partition retention --------------------------------------------------------------


def retention_preview_step(ctx):
    report = retention.apply_retention(ctx.actor, dry_run=True, run=ctx.run)
    statements = [st for table in report["tables"] for st in table.get("statements", [])]
    return {"statements": statements}


def retention_apply_step(ctx):
    report = retention.apply_retention(ctx.actor, dry_run=False, run=ctx.run, log=ctx.progress)
    return {
        "tables": [
            {"table": t["table"], "statements": len(t.get("statements", []))}
            for t in report["tables"]
        ]
    }


register(
    Runbook(
        name="enforce_retention",
        title="Enforce partition retention",
        description="For every migrated table: create the coming partitions and drop the "
        "ones wholly past retention. Dropped partitions cannot be brought back, so a second "
        "operator approves first.",
        needs_approval=True,
        steps=[
            Step(
                "Preview the statements",
                retention_preview_step,
                lambda p: (
                    "List every CREATE and DROP the retention policies call for "
                    "(nothing is changed)."
                ),
                check=True,
            ),
            Step(
                "Apply retention",
                retention_apply_step,
                lambda p: (
                    "Create the upcoming partitions, then detach and drop those past "
                    "retention (audited per table)."
                ),
            ),
        ],
    )
)


# --- health sweep ----------------------------------------------------------------


def readiness_step(ctx):
    checks = health.readiness()
    failing = [f"{c.name} ({c.detail})" for c in checks if not c.ok]
    if failing:
        raise StepFailed("Not ready: " + "; ".join(failing))
    return {"checks": [c.as_dict() for c in checks]}


def audit_chain_step(ctx):
    report = audit.verify()
    if not report.intact:
        raise StepFailed(
            f"The audit chain is broken at event {report.broken_id}: {report.problem} "
            f"({report.checked} intact before it)."
        )
    return {"events_checked": report.checked}


register(
    Runbook(
        name="health_sweep",
        title="Health sweep",
        description="Every readiness check, then the audit log's hash chain.",
        steps=[
            Step(
                "Readiness checks",
                readiness_step,
                lambda p: "Check the database, broker, workers, every cache target and warehouse.",
                check=True,
            ),
            Step(
                "Audit chain",
                audit_chain_step,
                lambda p: "Walk the audit log's hash chain; a changed or missing event fails it.",
                check=True,
            ),
        ],
    )
)
