"""Prometheus metrics through prometheus_client: one custom collector reads the
console's own tables, snapshots and readiness checks on each scrape (nothing is
kept between scrapes), exposed with generate_latest."""

from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import Count
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cachemgr.models import StatsSnapshot
from jobs.models import FINISHED_STATUSES, Run
from jobs.stats import percentile

from . import health
from .models import AuditEvent

# generate_latest writes the 0.0.4 text format; say so (newer prometheus_client
# advertises 1.0.0 in CONTENT_TYPE_LATEST, which older scrapers do not know).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def gauge(name: str, help_text: str, labels: list[str], samples) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=labels)
    for label_values, value in samples:
        family.add_metric([str(v) for v in label_values], value)
    return family


def run_samples():
    rows = Run.objects.values_list("name", "status").annotate(n=Count("id")).order_by()
    return [((name, status), n) for name, status, n in rows]


def duration_samples(hours: int = 24):
    since = timezone.now() - timedelta(hours=hours)
    durations: dict[str, list[int]] = {}
    finished = Run.objects.filter(
        finished_at__gte=since, status__in=FINISHED_STATUSES, duration_ms__isnull=False
    ).values_list("name", "duration_ms")
    for name, ms in finished.iterator(chunk_size=5000):
        durations.setdefault(name, []).append(ms)
    samples = []
    for name, values in sorted(durations.items()):
        values.sort()
        samples.append(((name, "0.5"), percentile(values, 0.5) / 1000))
        samples.append(((name, "0.95"), percentile(values, 0.95) / 1000))
    return samples


def audit_samples():
    rows = AuditEvent.objects.values_list("outcome").annotate(n=Count("id")).order_by()
    return [((outcome,), n) for outcome, n in rows]


def latest_cache_snapshots() -> list[StatsSnapshot]:
    latest = []
    for target in settings.CACHE_TARGETS:
        whole = StatsSnapshot.objects.filter(target=target, node="")  # not one node's rows
        snapshot = whole.order_by("-taken_at").first()
        if snapshot is not None:
            latest.append(snapshot)
    return latest


class ConsoleCollector(Collector):
    """Runs, durations, audit outcomes, readiness and cache snapshots, read on scrape."""

    def collect(self) -> Iterator[Metric]:
        yield gauge(
            "opsconsole_runs",
            "Runs recorded, by job and status.",
            ["job", "status"],
            run_samples(),
        )
        yield gauge(
            "opsconsole_run_duration_seconds",
            "Duration quantiles of runs finished in the last 24 hours.",
            ["job", "quantile"],
            duration_samples(),
        )
        yield gauge(
            "opsconsole_audit_events",
            "Audit events recorded, by outcome.",
            ["outcome"],
            audit_samples(),
        )
        checks = health.current_readiness()
        yield gauge(
            "opsconsole_ready",
            "1 when the dependency answers, else 0.",
            ["check"],
            [((c.name,), int(c.ok)) for c in checks],
        )
        yield gauge(
            "opsconsole_ready_latency_seconds",
            "Time the readiness check took.",
            ["check"],
            [((c.name,), c.latency_ms / 1000) for c in checks],
        )
        snapshots = latest_cache_snapshots()
        yield gauge(
            "opsconsole_cache_hit_ratio",
            "Redis keyspace hit ratio between the last two stats snapshots, per cache target.",
            ["target"],
            [((s.target,), s.hit_rate) for s in snapshots if s.hit_rate is not None],
        )
        yield gauge(
            "opsconsole_cache_used_memory_bytes",
            "Redis used_memory at the last snapshot.",
            ["target"],
            [((s.target,), s.used_memory) for s in snapshots],
        )


# A registry of our own: the process-wide default one would add Python/process
# collectors that every web worker reports differently.
REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(ConsoleCollector())


def render() -> str:
    return generate_latest(REGISTRY).decode()
