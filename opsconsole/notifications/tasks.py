"""Celery entry points of the notifications: a line each."""

from celery import shared_task

from . import dispatch, readiness


@shared_task(name=dispatch.DELIVER_TASK)
def deliver(delivery_id: int) -> str:
    return dispatch.deliver(delivery_id)


@shared_task(name=readiness.WATCH_TASK)
def watch_readiness() -> str:
    return readiness.watch()
