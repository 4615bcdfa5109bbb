"""Celery entry points of the Queries module: a few lines each, calling services."""

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

from . import analyses, longrunning, slow


@shared_task(name="queries.snapshot_statements")
def snapshot_statements() -> dict[str, str]:
    return slow.snapshot_all()


@worker_ready.connect
def first_snapshot_on_worker_start(**kwargs) -> None:
    """The Queries trends and the dashboard's slowest queries start at once on a fresh
    install, not after the first hourly beat."""
    if settings.SNAPSHOTS_ON_WORKER_START:
        snapshot_statements.delay()


@shared_task(name=analyses.ANALYSE_TASK)
def analyse_indexes(analysis_id: int) -> dict:
    analysis = analyses.refresh(analysis_id)
    return {"analysis": analysis.pk, "took_s": analysis.took_s, "error": analysis.error}


@shared_task(name=longrunning.SAMPLE_TASK)
def sample_long_running() -> dict[str, str]:
    return longrunning.sample_all()
