"""Celery entry points: a few lines each; the work lives in the services."""

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

from .services import stats, warming

log = logging.getLogger(__name__)


@shared_task(name="cachemgr.snapshot_stats")
def snapshot_stats() -> dict:
    return stats.snapshot_all()


@worker_ready.connect
def first_snapshot_on_worker_start(**kwargs) -> None:
    """A fresh install shows cache figures in its first minute, not after the first beat."""
    if settings.SNAPSHOTS_ON_WORKER_START:
        snapshot_stats.delay()


@worker_ready.connect
def warm_on_worker_start(**kwargs) -> None:
    """Start the warmers named in CACHE_WARM_ON_STARTUP (none by default)."""
    try:
        warming.start_startup_warmers()
    except Exception:  # a worker must start even when warming cannot
        log.exception("start-up warming failed")
