"""Exclusive-run locks in Redis: a token per owner, a TTL renewed while the run
lives, and release or renewal only by the owner (compare-and-act in Lua)."""

import redis
from django.conf import settings

LOCK_TTL_S = 60

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) end
return 0
"""


def client() -> redis.Redis:
    return redis.Redis.from_url(
        settings.CELERY_BROKER_URL, socket_connect_timeout=2, socket_timeout=5
    )


def key(job_name: str) -> str:
    return f"{settings.KEY_PREFIX}lock:job:{job_name}"


def acquire(job_name: str, token: str, ttl: int = LOCK_TTL_S) -> str | None:
    """Take the lock; returns None on success, else the current holder's token.

    A holder that presents the same token again (a redelivered run) keeps it.
    """
    conn = client()
    if conn.set(key(job_name), token, nx=True, ex=ttl):
        return None
    holder = conn.get(key(job_name))
    if holder is not None and holder.decode() == token:
        conn.expire(key(job_name), ttl)
        return None
    return holder.decode() if holder else ""


def renew(job_name: str, token: str, ttl: int = LOCK_TTL_S) -> bool:
    return bool(client().eval(_RENEW, 1, key(job_name), token, ttl))


def release(job_name: str, token: str) -> bool:
    return bool(client().eval(_RELEASE, 1, key(job_name), token))


def holder(job_name: str) -> str | None:
    value = client().get(key(job_name))
    return value.decode() if value else None
