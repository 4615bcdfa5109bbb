"""Per-job statistics, read from the run history (never from memory)."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Max, Q
from django.utils import timezone

from .models import FINISHED_STATUSES, Run, RunStatus

DURATION_WINDOW = 1000  # durations and the chart use the newest finished runs


@dataclass
class JobStats:
    name: str
    runs: int
    by_status: dict[str, int]
    success_rate: float | None
    avg_ms: float | None
    p95_ms: float | None
    window: int
    last_success: datetime | None
    last_failure: datetime | None
    recent: list[dict] = field(default_factory=list)  # oldest first, for the chart

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "runs": self.runs,
            "by_status": self.by_status,
            "success_rate": self.success_rate,
            "avg_ms": self.avg_ms,
            "p95_ms": self.p95_ms,
            "duration_window": self.window,
            "last_success": self.last_success.isoformat() if self.last_success else None,
            "last_failure": self.last_failure.isoformat() if self.last_failure else None,
        }


def percentile(sorted_values: list[int], fraction: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return float(sorted_values[index])


def _last_finished(name: str, statuses) -> datetime | None:
    """When the newest run (by launch) with one of `statuses` finished.

    One index probe per status on (name, status, -id): an IN list would make
    PostgreSQL walk the whole primary key backwards for a job that never failed.
    """
    newest = [
        row
        for status in statuses
        if (
            row := Run.objects.filter(name=name, status=status)
            .order_by("-id")
            .values_list("id", "finished_at")
            .first()
        )
    ]
    return max(newest)[1] if newest else None


def job_stats(name: str) -> JobStats:
    counts = dict(
        Run.objects.filter(name=name)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    finished = sum(counts.get(s, 0) for s in FINISHED_STATUSES)
    succeeded = counts.get(RunStatus.SUCCEEDED, 0)
    recent = list(
        Run.objects.filter(name=name, status__in=FINISHED_STATUSES)
        .order_by("-id")
        .values("id", "status", "duration_ms", "created_at")[:DURATION_WINDOW]
    )
    recent.reverse()
    durations = sorted(r["duration_ms"] for r in recent if r["duration_ms"] is not None)
    failures = [RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.LOST]
    return JobStats(
        name=name,
        runs=sum(counts.values()),
        by_status=counts,
        success_rate=round(100 * succeeded / finished, 1) if finished else None,
        avg_ms=round(sum(durations) / len(durations), 1) if durations else None,
        p95_ms=percentile(durations, 0.95),
        window=len(recent),
        last_success=_last_finished(name, [RunStatus.SUCCEEDED]),
        last_failure=_last_finished(name, failures),
        recent=recent,
    )


def recent_summary(hours: int = 24) -> list[dict]:
    """Per job over the last `hours`: runs, failures, last success — one grouped query."""
    since = timezone.now() - timedelta(hours=hours)
    failed = [RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.LOST]
    rows = (
        Run.objects.filter(created_at__gte=since)
        .values("name")
        .annotate(
            runs=Count("id"),
            failures=Count("id", filter=Q(status__in=failed)),
            succeeded=Count("id", filter=Q(status=RunStatus.SUCCEEDED)),
            last_success=Max("finished_at", filter=Q(status=RunStatus.SUCCEEDED)),
            last_failure=Max("finished_at", filter=Q(status__in=failed)),
        )
        .order_by("name")
    )
    return list(rows)
