"""The readiness watch: `readiness.failing` once /readyz has failed for
NOTIFY_READINESS_AFTER_S, and again only after it has recovered.

Beat runs it every minute (the default schedule declared in jobdefs). When the failing check is the
broker itself, the watch cannot run either: an outside monitor of /readyz covers that.
The first failure time and the "told already" mark live in Redis, shared by workers.
"""

import time

import redis
from django.conf import settings

from opsconsole import health

from .dispatch import Notice, fan_out
from .models import Event

WATCH_TASK = "notifications.watch_readiness"


def _keys() -> tuple[str, str]:
    prefix = f"{settings.KEY_PREFIX}notify:readiness"
    return f"{prefix}:since", f"{prefix}:told"


def watch(now: float | None = None, checks: list[health.Check] | None = None) -> str:
    """One look at readiness: "ok", "failing" (not for long enough yet, or told
    already) or "notified". Changes only the two Redis keys and the deliveries."""
    now = time.time() if now is None else now
    checks = health.readiness() if checks is None else checks
    failing = [check for check in checks if not check.ok]
    since_key, told_key = _keys()
    with redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2) as conn:
        if not failing:
            conn.unlink(since_key, told_key)
            return "ok"
        conn.set(since_key, now, nx=True)
        since = float(conn.get(since_key))
        if now - since < settings.NOTIFY_READINESS_AFTER_S or conn.exists(told_key):
            return "failing"
        conn.set(told_key, now)
    names = ", ".join(f"{c.name} ({c.detail})" if c.detail else c.name for c in failing)
    minutes = (now - since) / 60
    summary = f"Readiness failing for {minutes:.0f} min: {names}"
    fan_out(Notice(Event.READINESS_FAILING, "readyz", summary, "/", {"failing": names}))
    return "notified"
