"""The cache client product code imports, against real Redis."""

import threading
import time

import pytest

from cachemgr.client import Cache, read_counters
from cachemgr.localservers import free_port


def test_it_namespaces_keys_with_their_version(scratch):
    cache = scratch.cache()
    ns = scratch.ns("profile")
    assert cache.key(ns, 42) == f"{scratch.prefix}{ns}:v1:42"
    cache.set(ns, 42, {"name": "Ada"})
    assert scratch.redis.exists(f"{scratch.prefix}{ns}:v1:42") == 1
    assert cache.get(ns, 42) == {"name": "Ada"}


def test_it_applies_the_namespace_default_ttls(scratch):
    cache = scratch.cache(stale_fraction=0)
    cache.prefix = scratch.prefix  # real namespace names, under this test's prefix
    cache.set("plan_catalog", "all", [1, 2])
    cache.set("user_profile", 1, {"id": 1})
    cache.set("response_cache", "/x", "ok")
    cache.set("usage_analysis", 1, {})
    ttl = {
        ns: scratch.redis.ttl(cache.key(ns, k))
        for ns, k in [
            ("plan_catalog", "all"),
            ("user_profile", 1),
            ("response_cache", "/x"),
            ("usage_analysis", 1),
        ]
    }
    assert 3590 <= ttl["plan_catalog"] <= 3600
    assert 86390 <= ttl["user_profile"] <= 86400
    assert 290 <= ttl["response_cache"] <= 300
    assert 604790 <= ttl["usage_analysis"] <= 604800


def test_it_adds_the_stale_window_to_the_redis_ttl(scratch):
    cache = scratch.cache(ttls={scratch.ns("a"): 100}, stale_fraction=0.5)
    ns = scratch.namespaces[0]
    cache.set(ns, "k", 1)
    assert 145 <= scratch.redis.ttl(cache.key(ns, "k")) <= 150


def test_it_loads_a_miss_once_and_then_hits(scratch):
    cache = scratch.cache()
    ns = scratch.ns()
    calls = []
    for _ in range(3):
        value = cache.get_or_set(ns, "k", lambda: calls.append(1) or "loaded")
        assert value == "loaded"
    assert len(calls) == 1


def test_it_serves_stale_then_refreshes_once_under_20_concurrent_readers(scratch):
    now = [1_000_000.0]
    cache = scratch.cache(clock=lambda: now[0])
    ns = scratch.ns()
    cache.set(ns, "k", "old", ttl=10, stale=3600)
    now[0] += 11  # past the fresh window, inside the stale one
    loads = []
    gate = threading.Event()

    def loader():
        loads.append(1)
        gate.wait(5)  # keep the refresh in flight while every reader arrives
        return "new"

    answers = []
    barrier = threading.Barrier(20)

    def reader():
        barrier.wait()
        answers.append(cache.get_or_set(ns, "k", loader, ttl=10, stale=3600))

    readers = [threading.Thread(target=reader) for _ in range(20)]
    for t in readers:
        t.start()
    for t in readers:
        t.join(10)
    assert answers == ["old"] * 20
    gate.set()
    deadline = time.monotonic() + 5
    while cache.get(ns, "k") != "new" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cache.get(ns, "k") == "new"
    assert len(loads) == 1


def test_it_single_flights_a_miss_across_concurrent_callers(scratch):
    cache = scratch.cache()
    ns = scratch.ns()
    loads = []

    def loader():
        loads.append(1)
        time.sleep(0.2)
        return "v"

    answers = []
    barrier = threading.Barrier(10)

    def reader():
        barrier.wait()
        answers.append(cache.get_or_set(ns, "k", loader))

    readers = [threading.Thread(target=reader) for _ in range(10)]
    for t in readers:
        t.start()
    for t in readers:
        t.join(10)
    assert answers == ["v"] * 10
    assert len(loads) == 1


def test_it_invalidates_everything_tagged(scratch):
    cache = scratch.cache()
    ns = scratch.ns()
    tag = f"customer-{scratch.id}"
    cache.set(ns, "a", 1, tags=[tag])
    cache.set(ns, "b", 2, tags=[tag, "other"])
    cache.set(ns, "c", 3)
    assert cache.invalidate_tag(tag) == 2
    assert cache.get(ns, "a") is None and cache.get(ns, "b") is None
    assert cache.get(ns, "c") == 3
    assert cache.invalidate_tag(tag) == 0


def test_it_makes_a_namespace_unreachable_with_a_version_bump(scratch):
    cache = scratch.cache()
    ns = scratch.ns()
    cache.set(ns, "k", "v1 value")
    old_key = cache.key(ns, "k")
    assert cache.bump_namespace(ns) == 2
    assert cache.get(ns, "k") is None
    assert cache.key(ns, "k").endswith(f"{ns}:v2:k")
    assert scratch.redis.exists(old_key) == 1  # left to expire by its TTL
    other = Cache(client=scratch.redis, prefix=scratch.prefix, version_cache_s=0)
    assert other.version(ns) == 2


def test_it_falls_back_to_the_loader_when_redis_is_unreachable(down_target, settings):
    cache = Cache(settings.CACHE_TARGETS["down"], socket_timeout=0.3)
    calls = []
    for _ in range(3):
        assert cache.get_or_set("profile", 1, lambda: calls.append(1) or "from db") == "from db"
    assert len(calls) == 1  # the in-process store kept it
    assert cache.get("profile", 1) == "from db"
    assert cache.get("profile", 2, "default") == "default"
    assert cache.set("profile", 3, "x") is False
    assert cache.delete("profile", 3) == 0
    assert cache.bump_namespace is not None
    assert cache._pending  # errors wait in-process until Redis is back


@pytest.mark.parametrize("scheme", ["redis-cluster", "redis-sentinel"])
def test_a_cluster_or_sentinel_that_is_down_is_a_fault_not_an_error(scheme):
    """The product starts and serves from its loader while the cache is away."""
    url = f"{scheme}://127.0.0.1:{free_port()}" + ("/svc/0" if scheme == "redis-sentinel" else "")
    cache = Cache(url, socket_timeout=0.3, counters_flush_s=0)
    assert cache.get_or_set("profile", 1, lambda: "from db") == "from db"
    assert cache.get("profile", 1) == "from db"
    assert cache.set("profile", 2, "x") is False
    cache.flush_counters()  # kept in-process, not raised
    assert cache._pending


def test_it_counts_hits_misses_stale_hits_and_errors_per_minute(scratch):
    now = [time.time()]
    cache = scratch.cache(clock=lambda: now[0])
    ns = scratch.ns()
    cache.get(ns, "missing")
    cache.set(ns, "k", "v", ttl=5, stale=3600)
    cache.get(ns, "k")
    cache.get(ns, "k")
    now[0] += 6
    cache.get(ns, "k")
    cache.flush_counters()
    counts = read_counters(scratch.redis, scratch.prefix, minutes=2, now=now[0])[ns]
    assert counts == {"hits": 2, "misses": 1, "stale": 1, "errors": 0}


def test_it_keeps_answering_when_redis_stops_while_in_use(own_redis):
    cache = Cache(own_redis.url, counters_flush_s=0, socket_timeout=0.5)
    assert cache.get_or_set("profile", 1, lambda: "first") == "first"
    own_redis.stop()
    assert cache.get_or_set("profile", 2, lambda: "from the loader") == "from the loader"
    assert cache.get_or_set("profile", 2, lambda: "not called") == "from the loader"
    assert cache.get("profile", 1, "gone") == "gone"  # Redis held it; no local copy
