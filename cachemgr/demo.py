"""Demo keys for each cache target: several namespaces, every Redis type, and the awkward
cases (binary values, a non-UTF-8 key, glob specials in a key name, a 1 MB value).
The two demo warmers (cachemgr/warmers.py) fill user_profile and usage_analysis."""

import json
import random

from . import targets
from .client import Cache
from .services import stats

RESPONSES = 5000
RECOMMENDATIONS = 3000
SESSIONS = 2000


def seed() -> dict:
    summary = {}
    for target in targets.names():
        try:
            summary[target] = seed_target(target)
        except targets.REDIS_FAULTS as exc:
            summary[target] = f"skipped: {targets.unavailable(target, exc)}"
    return summary


def seed_target(target: str) -> dict:
    client = targets.connect(target)
    cache = Cache(client=client, counters_flush_s=3600)
    rng = random.Random(7)
    written = cache.set_many(
        "response_cache",
        (
            (f"/api/products/{i}?page={i % 7}", {"status": 200, "items": list(range(i % 9))}, None)
            for i in range(RESPONSES)
        ),
    )
    written += cache.set_many(
        "recommendations",
        ((i, [rng.randrange(10_000) for _ in range(8)], None) for i in range(RECOMMENDATIONS)),
        tags=["model:v7"],
    )
    written += cache.set_many(
        "plan_catalog",
        [(name, {"id": pid, "price_cents": cents}, None) for pid, name, cents in _plans()],
    )
    pipe = client.pipeline(transaction=False)
    for i in range(SESSIONS):
        pipe.set(f"session:{i:05d}", json.dumps({"user": i, "cart": [i % 5]}))  # no TTL
    pipe.hset("demo:hash", mapping={f"field{i}": f"value {i}" for i in range(150)})
    for name in ("demo:list", "demo:set", "demo:zset"):  # one key each: slots may differ
        pipe.delete(name)
    pipe.rpush("demo:list", *[f"item {i}" for i in range(120)])
    pipe.sadd("demo:set", *[f"member-{i}" for i in range(40)])
    pipe.zadd("demo:zset", {f"player{i}": i * 1.5 for i in range(60)})
    pipe.set("demo:binary", bytes(range(256)) * 4)
    pipe.set(b"demo:\xff\xfe-not-utf8", "a key that is not UTF-8")
    pipe.set("demo:weird[1]*?\\key", "glob specials in the name")
    pipe.set("demo:huge", "x" * 1_000_000, ex=7 * 86400)
    pipe.execute()
    return {"keys_written": written + SESSIONS + 8}


def set_up_console(actor) -> dict:
    """Per target, a first stats snapshot, then the demo's reads: the worker's start-up
    snapshot is the second point, so the hit-rate charts draw at once, not a minute on."""
    summary = {}
    for target in targets.names():
        try:
            stats.take_snapshot(target)
            summary[target] = f"{read_some(target)} reads after the first snapshot"
        except targets.TargetUnavailable as exc:
            summary[target] = f"skipped: {exc}"
        except targets.REDIS_FAULTS as exc:
            summary[target] = f"skipped: {targets.unavailable(target, exc)}"
    return summary


def read_some(target: str) -> int:
    """Hits and misses, so the per-namespace hit rates have something to show."""
    cache = Cache(client=targets.connect(target), counters_flush_s=3600)
    rng = random.Random(7)
    for i in range(400):
        cache.get("response_cache", f"/api/products/{i * 20}?page={(i * 20) % 7}")
        cache.get("recommendations", rng.randrange(RECOMMENDATIONS * 2))
    cache.flush_counters()
    return 800


def _plans():
    from jobs.demo import PLANS

    return PLANS
