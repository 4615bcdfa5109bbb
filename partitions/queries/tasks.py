"""Celery entry points of the Queries module: a few lines each, calling services."""

from celery import shared_task

from . import slow


@shared_task(name="queries.snapshot_statements")
def snapshot_statements() -> dict[str, str]:
    return slow.snapshot_all()
