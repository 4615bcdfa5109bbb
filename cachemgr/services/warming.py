"""Warming: run a registered warmer against a target and write what it yields."""

import math
import time
from collections.abc import Callable
from itertools import islice
from typing import Any

from django.utils import timezone

from jobs import runner
from jobs.models import Run
from opsconsole import audit
from opsconsole.actions import audited_action

from .. import conf, registry, targets
from ..client import Cache, hit_rate, read_counters

BATCH = 500
JOB_NAME = "cache.warm"


def namespace_hit_rate(target: str, namespace: str, minutes: int = 60) -> float | None:
    """The namespace's hit rate over the last `minutes` (client counters); None if no reads."""
    try:
        counters = read_counters(targets.connect(target), minutes=minutes)
    except targets.REDIS_FAULTS as exc:
        raise targets.unavailable(target, exc) from exc
    return hit_rate(counters.get(namespace))


def overview(target: str) -> list[dict[str, Any]]:
    """Each registered warmer with its last run on `target`, the namespace's hit rate over
    the last hour and since that run ended (up to an hour)."""
    rows = []
    for spec in sorted(registry.WARMERS.values(), key=lambda s: s.name):
        last = Run.objects.filter(
            name__startswith=JOB_NAME, params__warmer=spec.name, params__target=target
        ).first()
        row = {"spec": spec, "last": last}
        row["hit_rate"] = namespace_hit_rate(target, spec.namespace)
        if last and last.finished_at:
            minutes = (timezone.now() - last.finished_at).total_seconds() / 60
            since = max(1, min(60, math.ceil(minutes)))
            row["hit_rate_after"] = namespace_hit_rate(target, spec.namespace, since)
        rows.append(row)
    return rows


@audited_action("cache.warm")
def warm(
    target: str,
    name: str,
    actor: audit.Actor,
    *,
    limit: int | None = None,
    run=None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Write every row the warmer yields (at most `limit`) into its namespace on `target`,
    500 per pipeline. Undo: bump the namespace (or let the TTLs run out)."""
    spec = registry.get(name)
    cache = Cache(client=targets.connect(target))
    with audit.record(
        actor, "cache.warm", f"{target}:{spec.namespace}", run=run, warmer=name, limit=limit
    ) as event:
        figures = event.params
        figures.update(target=target, namespace=spec.namespace, written=0)
        figures["hit_rate_before"] = namespace_hit_rate(target, spec.namespace)
        started = time.perf_counter()
        rows = iter(spec.func(limit))
        if limit is not None:
            rows = islice(rows, limit)
        try:
            while batch := list(islice(rows, BATCH)):
                figures["written"] += cache.set_many(
                    spec.namespace, (_row(r) for r in batch), tags=spec.tags
                )
                figures["seconds"] = round(time.perf_counter() - started, 3)
                if progress:
                    progress(figures)
        except targets.REDIS_FAULTS as exc:
            raise targets.TargetUnavailable(
                f"Redis target {target} went away after {figures['written']:,} keys were "
                f"written: {type(exc).__name__}: {exc}"
            ) from exc
        figures["seconds"] = round(time.perf_counter() - started, 3)
    return dict(figures)


def _row(row) -> tuple[Any, Any, int | None]:
    if len(row) == 2:
        return row[0], row[1], None
    return row[0], row[1], row[2]


@audited_action("job.start", long=True)
def start_warm(
    target: str,
    name: str,
    actor: audit.Actor,
    *,
    limit: int | None = None,
    request_key: str | None = None,
    ip_address: str | None = None,
):
    """Start warmer `name` on `target` as a job (a Run). Raises UnknownTarget,
    UnknownWarmer or runner.LaunchRefused."""
    targets.url(target)
    registry.get(name)
    params = {"target": target, "warmer": name}
    if limit:
        params["limit"] = limit
    return runner.start(JOB_NAME, params, actor, request_key=request_key, ip_address=ip_address)


def start_startup_warmers() -> list:
    """Start one run per CACHE_WARM_ON_STARTUP entry ("target:warmer", or "warmer" for every
    target). Returns the runs started."""
    runs = []
    for entry in conf.get("CACHE_WARM_ON_STARTUP"):
        target, _, name = entry.rpartition(":")
        for each in [target] if target else targets.names():
            runs.append(start_warm(each, name, "worker-startup"))
    return runs
