"""Run history: the one query behind the history page and `manage.py jobs list`."""

from datetime import datetime, time

from django.db.models import QuerySet
from django.utils import timezone

from .models import Run


def filtered_runs(data: dict) -> QuerySet[Run]:
    """Runs matching the history filter's cleaned data (job, status, kind, actor,
    since/until dates, before an id). Reads only."""
    runs = Run.objects.all()
    if data.get("job"):
        runs = runs.filter(name=data["job"])
    if data.get("status"):
        runs = runs.filter(status=data["status"])
    if data.get("kind"):
        runs = runs.filter(kind=data["kind"])
    if data.get("actor"):
        runs = runs.filter(actor_name=data["actor"])
    tz = timezone.get_current_timezone()
    if data.get("since"):
        runs = runs.filter(created_at__gte=datetime.combine(data["since"], time.min, tz))
    if data.get("until"):
        runs = runs.filter(created_at__lte=datetime.combine(data["until"], time.max, tz))
    if data.get("before"):
        runs = runs.filter(id__lt=data["before"])
    return runs


def run_as_dict(run: Run) -> dict:
    """One run as the commands print it (--json)."""
    return {
        "id": run.pk,
        "name": run.name,
        "kind": run.kind,
        "status": run.status,
        "attempt": run.attempt,
        "max_attempts": run.max_attempts,
        "params": run.params,
        "progress": {
            "done": run.progress_done,
            "total": run.progress_total,
            "message": run.progress_message,
        },
        "result": run.result,
        "error": run.error,
        "actor": run.actor_name,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "duration_ms": run.duration_ms,
    }
