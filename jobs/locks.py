"""Exclusive-run locks in Redis, with redis-py's `Lock`: a token per owner (the run),
a TTL renewed while the run lives, and release or renewal only by the owner
(redis-py compares the token and acts in one server-side script).

One client for the process: redis-py's connection pool is thread-safe and resets
itself after a fork, so workers, their heartbeat threads and web threads share it.
"""

from functools import cache

import redis
from django.conf import settings
from redis.exceptions import LockError
from redis.lock import Lock

LOCK_TTL_S = 60


@cache
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)


def client() -> redis.Redis:
    """The broker's Redis (locks, markers, worker snapshots), one client per URL."""
    return _client_for(settings.CELERY_BROKER_URL)


def key(job_name: str) -> str:
    return f"{settings.KEY_PREFIX}lock:job:{job_name}"


def _lock(job_name: str, token: str, ttl: int = LOCK_TTL_S) -> Lock:
    lock = Lock(client(), key(job_name), timeout=ttl, thread_local=False)
    lock.local.token = token.encode()
    return lock


def acquire(job_name: str, token: str, ttl: int = LOCK_TTL_S) -> str | None:
    """Take the lock; returns None on success, else the current holder's token.

    A holder that presents the same token again (a redelivered run) keeps it,
    with a fresh TTL.
    """
    lock = Lock(client(), key(job_name), timeout=ttl, thread_local=False)
    if lock.acquire(blocking=False, token=token):
        return None
    if renew(job_name, token, ttl):
        return None
    return holder(job_name) or ""


def renew(job_name: str, token: str, ttl: int = LOCK_TTL_S) -> bool:
    """Reset the TTL to `ttl` if `token` still holds the lock."""
    try:
        return _lock(job_name, token, ttl).reacquire()
    except LockError:
        return False


def release(job_name: str, token: str) -> bool:
    """Free the lock if `token` holds it; another holder's lock is left alone."""
    try:
        _lock(job_name, token).release()
    except LockError:
        return False
    return True


def holder(job_name: str) -> str | None:
    value = client().get(key(job_name))
    return value.decode() if value else None
