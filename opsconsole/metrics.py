"""Prometheus metrics in the text exposition format, computed on each scrape."""

from datetime import timedelta

from django.db.models import Count
from django.utils import timezone

from jobs.models import FINISHED_STATUSES, Run
from jobs.stats import percentile

from . import health
from .models import AuditEvent


def _labels(**labels) -> str:
    def escape(value) -> str:
        return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels.items()) + "}"


class Exposition:
    def __init__(self):
        self.lines: list[str] = []

    def metric(self, name: str, kind: str, help_text: str, samples) -> None:
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(**labels) if labels else ''} {value}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def run_samples():
    rows = Run.objects.values_list("name", "status").annotate(n=Count("id")).order_by()
    return [({"job": name, "status": status}, n) for name, status, n in rows]


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
        samples.append(({"job": name, "quantile": "0.5"}, percentile(values, 0.5) / 1000))
        samples.append(({"job": name, "quantile": "0.95"}, percentile(values, 0.95) / 1000))
    return samples


def render() -> str:
    out = Exposition()
    out.metric("opsconsole_runs", "gauge", "Runs recorded, by job and status.", run_samples())
    out.metric(
        "opsconsole_run_duration_seconds",
        "gauge",
        "Duration quantiles of runs finished in the last 24 hours.",
        duration_samples(),
    )
    out.metric(
        "opsconsole_audit_events",
        "gauge",
        "Audit events recorded, by outcome.",
        [
            ({"outcome": o}, n)
            for o, n in AuditEvent.objects.values_list("outcome").annotate(n=Count("id")).order_by()
        ],
    )
    checks = health.readiness()
    out.metric(
        "opsconsole_ready",
        "gauge",
        "1 when the dependency answers, else 0.",
        [({"check": c.name}, int(c.ok)) for c in checks],
    )
    out.metric(
        "opsconsole_ready_latency_seconds",
        "gauge",
        "Time the readiness check took.",
        [({"check": c.name}, c.latency_ms / 1000) for c in checks],
    )
    snapshots = latest_cache_snapshots()
    out.metric(
        "opsconsole_cache_hit_ratio",
        "gauge",
        "Redis keyspace hit ratio between the last two stats snapshots, per cache target.",
        [({"target": s.target}, s.hit_rate) for s in snapshots if s.hit_rate is not None],
    )
    out.metric(
        "opsconsole_cache_used_memory_bytes",
        "gauge",
        "Redis used_memory at the last snapshot.",
        [({"target": s.target}, s.used_memory) for s in snapshots],
    )
    return out.text()


def latest_cache_snapshots():
    from django.conf import settings

    from cachemgr.models import StatsSnapshot

    latest = []
    for target in settings.CACHE_TARGETS:
        snapshot = StatsSnapshot.objects.filter(target=target).order_by("-taken_at").first()
        if snapshot is not None:
            latest.append(snapshot)
    return latest
