"""Readiness checks: each dependency answers, with its latency."""

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import redis
from django.conf import settings
from django.db import connection

from cachemgr import addresses
from jobs import workers
from partitions import warehouses

from .shared import SharedAnswer

CONNECT_TIMEOUT_S = 1.0
# The worker probe's answer is reused this long, and only one request at a time
# (per web process) computes it; the others answer with the last result.
WORKER_PROBE_TTL_S = 5.0


@dataclass
class Check:
    name: str
    ok: bool
    latency_ms: float
    detail: str = ""
    warning: str = ""  # answers, but something an operator should fix

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Answer:
    """What a probe that answered says: its detail, and a warning if any."""

    detail: str
    warning: str = ""


def timed(name: str, probe: Callable[[], "str | Answer | None"]) -> Check:
    started = time.perf_counter()
    try:
        result = probe() or ""
        answer, ok = result if isinstance(result, Answer) else Answer(result), True
    except Exception as exc:  # a failed check is data, not an error
        answer, ok = Answer(f"{type(exc).__name__}: {exc}"), False
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    return Check(name, ok, elapsed, answer.detail, answer.warning)


SUPERUSER_WARNING = (
    "the console logs in to this warehouse as a superuser: give it a least-privilege "
    "login (pg_monitor, pg_read_all_stats; see the README)"
)


def ping_redis(url: str) -> str:
    client = redis.Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S
    )
    try:
        client.ping()
    finally:
        client.close()
    return ""


def ping_cache(url: str) -> str:
    """PING a cache target of any shape (one node, a cluster's primaries, a Sentinel
    service's current primary)."""
    client = addresses.client_for(
        addresses.parse(url), connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S
    )
    try:
        client.ping()
    finally:
        client.close()
    return ""


def ping_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return connection.vendor


def ping_workers() -> str:
    """Live workers from their own snapshots in Redis (no broadcast: never waits on them)."""
    names = workers.live_workers()
    if not names:
        raise RuntimeError("no Celery worker has reported in the last few seconds")
    return ", ".join(names)


# Readiness is polled by every dashboard and load balancer: the worker check is reused
# for WORKER_PROBE_TTL_S and computed by one request at a time.
worker_probe = SharedAnswer(lambda: timed("worker", ping_workers), ttl=lambda: WORKER_PROBE_TTL_S)


def ping_warehouse(url: str) -> Answer:
    """The warehouse layer's ping (PostgreSQL within 1 s, BigQuery within 5 s)."""
    found = warehouses.ping(url)
    return Answer(found.detail, SUPERUSER_WARNING if found.superuser else "")


def readiness(include_workers: bool = True) -> list[Check]:
    checks = [timed("database", ping_database)]
    broker = timed("broker", lambda: ping_redis(settings.CELERY_BROKER_URL))
    checks.append(broker)
    if include_workers and settings.READYZ_REQUIRE_WORKER:
        if broker.ok:
            checks.append(worker_probe.get())
        else:
            checks.append(Check("worker", False, 0.0, "not checked: the broker is down"))
    for name, url in settings.CACHE_TARGETS.items():
        checks.append(timed(f"cache:{name}", lambda url=url: ping_cache(url)))
    for name, url in settings.WAREHOUSES.items():
        checks.append(timed(f"warehouse:{name}", lambda url=url: ping_warehouse(url)))
    return checks


# What the pages, /readyz and /metrics show: one readiness answer per web process,
# shared for SHARED_READ_S (each check opens a connection to its dependency).
current = SharedAnswer(readiness)


def current_readiness() -> list[Check]:
    return current.get()
