"""Cache targets: the Redis servers named in settings.CACHE_TARGETS, and how we connect."""

from urllib.parse import urlsplit, urlunsplit

import redis
from django.conf import settings

from . import conf

_POOLS: dict[str, redis.ConnectionPool] = {}


class UnknownTarget(LookupError):
    pass


class TargetUnavailable(Exception):
    """The target's Redis did not answer (down, refused, timed out)."""


REDIS_FAULTS = (redis.ConnectionError, redis.TimeoutError)


def names() -> list[str]:
    return list(settings.CACHE_TARGETS)


def default() -> str:
    return names()[0]


def url(target: str) -> str:
    try:
        return settings.CACHE_TARGETS[target]
    except KeyError:
        known = ", ".join(names()) or "none"
        raise UnknownTarget(f"Unknown cache target {target!r} (known: {known}).") from None


def display_url(target: str) -> str:
    """The target's URL without its password, for pages and messages."""
    parts = urlsplit(url(target))
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def connect(target: str) -> redis.Redis:
    """A client for `target` (pooled per URL; short connect timeout so a dead host fails fast)."""
    address = url(target)
    pool = _POOLS.get(address)
    if pool is None:
        pool = redis.ConnectionPool.from_url(
            address,
            socket_connect_timeout=conf.get("CACHE_CONNECT_TIMEOUT"),
            socket_timeout=conf.get("CACHE_SOCKET_TIMEOUT"),
            health_check_interval=30,
        )
        _POOLS[address] = pool
    return redis.Redis(connection_pool=pool)


def unavailable(target: str, exc: Exception) -> TargetUnavailable:
    return TargetUnavailable(
        f"Cache target {target} ({display_url(target)}) is unreachable: {type(exc).__name__}: {exc}"
    )
