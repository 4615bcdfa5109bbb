"""What the broker and the workers say right now (short timeouts: never hang a page)."""

from datetime import timedelta

import redis
from django.conf import settings
from django.utils import timezone

from opsconsole.celery import app

from .models import Run, RunStatus

INSPECT_TIMEOUT_S = 1.0


def workers_online() -> tuple[list[dict], str]:
    """[{name, active}] from a broadcast ping, and an error text ('' when it worked)."""
    try:
        inspector = app.control.inspect(timeout=INSPECT_TIMEOUT_S)
        replies = inspector.ping() or {}
        active = inspector.active() or {}
    except Exception as exc:
        return [], f"{type(exc).__name__}: {exc}"
    return [{"name": name, "active": len(active.get(name, []))} for name in sorted(replies)], ""


def queue_depths() -> tuple[dict[str, int], str]:
    """Messages waiting per queue (the Redis transport keeps each queue in a list)."""
    queues = sorted({app.conf.task_default_queue, *(q.name for q in app.amqp.queues.values())})
    try:
        conn = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=1)
        with conn.pipeline(transaction=False) as pipe:
            for name in queues:
                pipe.llen(name)
            depths = pipe.execute()
    except redis.RedisError as exc:
        return {}, f"{type(exc).__name__}: {exc}"
    return dict(zip(queues, depths, strict=True)), ""


def stuck_runs(now=None) -> list[Run]:
    """Running runs older than their timeout (the reaper closes them once heartbeats stop)."""
    now = now or timezone.now()
    running = Run.objects.filter(status=RunStatus.RUNNING, timeout_seconds__isnull=False)
    return [
        run
        for run in running.order_by("started_at")
        if run.started_at and now - run.started_at > timedelta(seconds=run.timeout_seconds)
    ]
