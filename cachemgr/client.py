"""The cache library product code imports (and the console uses for its own caching).

    from cachemgr.client import Cache
    cache = Cache("redis://127.0.0.1:6379/1")
    profile = cache.get_or_set("user_profile", user_id, lambda: load_profile(user_id))

- Keys are namespaced and versioned: `user_profile:v3:42`. `bump_namespace("user_profile")`
  makes every key of the namespace unreachable in O(1); the old keys expire by their TTL.
- Each namespace has a default TTL (conf.CACHE_NAMESPACE_TTLS). A value stays *fresh* for
  its TTL and then *stale* for a further window: a stale read is served at once while one
  background thread (a per-key lock in Redis, so one across all processes) reloads it.
  A miss is single-flight too: one caller loads, the others wait briefly for its result.
- Tags: `set(..., tags=["customer:42"])`, then `invalidate_tag("customer:42")`.
- When Redis is unreachable the cache never raises: it serves from a small in-process
  store or the loader, and retries Redis after a few seconds.
- Hits, misses, stale hits and errors are counted per namespace per minute in Redis
  hashes (`__cachemgr__:stats:<minute>`), buffered in-process and flushed in one pipeline.
- The URL may name one node, a Redis Cluster or a Sentinel service (see
  cachemgr.addresses); against Sentinel a command retries on the promoted primary.
  Keys of one call are never assumed to share a slot: tag sets carry a hash tag
  (`__cachemgr__:tag:{customer:42}`) so the set and its working copy share one slot.
Values are stored as JSON (never pickle: a cache must not execute what it reads).
"""

import atexit
import contextlib
import json
import threading
import time
import uuid
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.exceptions import ClusterError, RedisClusterException

from . import addresses, conf

META = "__cachemgr__"  # the client's own keys: versions, tags, locks, counters
COUNTER_KINDS = ("hits", "misses", "stale", "errors")
COUNTER_KEEP_S = 8 * 24 * 3600
FAULTS = (redis.ConnectionError, redis.TimeoutError, ClusterError, RedisClusterException, OSError)
# Against Sentinel or a cluster, a command is retried once on a new connection before
# the cache falls back to its local store (and tries Redis again after retry_after_s).
FAILOVER_RETRIES = 1
_MISSING = object()
_LIVE: "weakref.WeakSet[Cache]" = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    """Counters still buffered when the process exits go to Redis (best effort)."""
    for cache in list(_LIVE):
        with contextlib.suppress(Exception):
            cache.flush_counters()


def minute_bucket(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y%m%d%H%M")


def counters_key(prefix: str, bucket: str) -> str:
    return f"{prefix}{META}:stats:{bucket}"


def read_counters(
    client: redis.Redis, prefix: str = "", minutes: int = 60, now: float | None = None
) -> dict[str, dict[str, int]]:
    """Sum the per-minute counters of the last `minutes` minutes: {namespace: {kind: n}}."""
    now = time.time() if now is None else now
    pipe = client.pipeline(transaction=False)
    for back in range(minutes):
        pipe.hgetall(counters_key(prefix, minute_bucket(now - 60 * back)))
    totals: dict[str, dict[str, int]] = {}
    for bucket in pipe.execute():
        for field, count in bucket.items():
            namespace, _, kind = field.decode(errors="replace").rpartition(":")
            row = totals.setdefault(namespace, dict.fromkeys(COUNTER_KINDS, 0))
            row[kind] = row.get(kind, 0) + int(count)
    return totals


def hit_rate(row: dict[str, int] | None) -> float | None:
    """Share of reads answered from the cache (stale answers count as hits)."""
    if not row:
        return None
    served = row.get("hits", 0) + row.get("stale", 0)
    reads = served + row.get("misses", 0)
    return served / reads if reads else None


class Cache:
    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        prefix: str = "",
        ttls: dict[str, int] | None = None,
        stale_fraction: float | None = None,
        counters_flush_s: float = 1.0,
        retry_after_s: float = 5.0,
        version_cache_s: float = 1.0,
        miss_wait_s: float = 3.0,
        socket_timeout: float = 0.5,
        local_size: int = 1024,
        clock: Callable[[], float] = time.time,
    ):
        self._client = client
        self._address = None if client else addresses.parse(url or "redis://127.0.0.1:6379/0")
        self._socket_timeout = socket_timeout
        self.prefix = prefix
        self.ttls = ttls
        self.stale_fraction = (
            conf.get("CACHE_STALE_FRACTION") if stale_fraction is None else stale_fraction
        )
        self.counters_flush_s = counters_flush_s
        self.retry_after_s = retry_after_s
        self.version_cache_s = version_cache_s
        self.miss_wait_s = miss_wait_s
        self.clock = clock
        self._versions: dict[str, tuple[int, float]] = {}
        self._down_until = 0.0
        self._local: OrderedDict[tuple[str, str], tuple[float, Any]] = OrderedDict()
        self._local_size = local_size
        self._pending: Counter = Counter()
        self._pending_lock = threading.Lock()
        self._last_flush = 0.0
        _LIVE.add(self)

    @property
    def redis(self) -> redis.Redis | RedisCluster:
        """The Redis client, built on first use: a cluster's client reads the slot map
        when built, so a cluster that is down then is a fault like any other (the cache
        falls back) instead of an error when the product starts."""
        if self._client is None:
            self._client = addresses.client_for(
                self._address,
                connect_timeout=self._socket_timeout,
                socket_timeout=self._socket_timeout,
                retries=0 if self._address.shape == addresses.NODE else FAILOVER_RETRIES,
            )
        return self._client

    # --- naming --------------------------------------------------------------

    def ttl_for(self, namespace: str) -> int:
        if self.ttls is not None and namespace in self.ttls:
            return int(self.ttls[namespace])
        return conf.namespace_ttl(namespace)

    def version(self, namespace: str) -> int:
        cached = self._versions.get(namespace)
        if cached and time.monotonic() - cached[1] < self.version_cache_s:
            return cached[0]
        raw = self.redis.get(self._version_key(namespace))
        version = int(raw) if raw else 1
        self._versions[namespace] = (version, time.monotonic())
        return version

    def key(self, namespace: str, key: Any) -> str:
        """The Redis key for `key` in `namespace` at its current version: `ns:v3:key`."""
        if not namespace or ":" in namespace:
            raise ValueError(f"namespace must be non-empty without ':', got {namespace!r}")
        return f"{self.prefix}{namespace}:v{self.version(namespace)}:{key}"

    def _version_key(self, namespace: str) -> str:
        return f"{self.prefix}{META}:ver:{namespace}"

    def _tag_key(self, tag: str) -> str:
        """The tag's set; the braces make it a hash tag, so its working copy (same name
        plus a suffix) lands in the same cluster slot and RENAME works there."""
        return f"{self.prefix}{META}:tag:{{{tag}}}"

    def _legacy_tag_key(self, tag: str) -> str:
        """Where tags were kept before hash tags (still read when invalidating)."""
        return f"{self.prefix}{META}:tag:{tag}"

    def _lock_key(self, redis_key: str) -> str:
        return f"{self.prefix}{META}:lock:{redis_key}"

    # --- reading -------------------------------------------------------------

    def get(self, namespace: str, key: Any, default: Any = None) -> Any:
        """The cached value (fresh or stale), or `default`. Never raises on Redis faults."""
        if self._redis_down():
            return self._local_get(namespace, key, default)
        try:
            raw = self.redis.get(self.key(namespace, key))
        except FAULTS:
            self._fault(namespace)
            return self._local_get(namespace, key, default)
        if raw is None:
            self._count(namespace, "misses")
            return default
        value, fresh_until = self._decode(raw)
        self._count(namespace, "hits" if self.clock() < fresh_until else "stale")
        return value

    def get_or_set(
        self,
        namespace: str,
        key: Any,
        loader: Callable[[], Any],
        ttl: int | None = None,
        *,
        stale: int | None = None,
        tags: Iterable[str] = (),
        wait: bool = True,
    ) -> Any:
        """The cached value, loading (once across callers) and storing it when missing.

        A stale value is returned at once and refreshed by one background thread. With
        `wait=False` a miss returns None at once and loads in the background instead.
        """
        if self._redis_down():
            return self._local_or_load(namespace, key, loader, ttl)
        try:
            redis_key = self.key(namespace, key)
            raw = self.redis.get(redis_key)
        except FAULTS:
            self._fault(namespace)
            return self._local_or_load(namespace, key, loader, ttl)
        if raw is not None:
            value, fresh_until = self._decode(raw)
            if self.clock() < fresh_until:
                self._count(namespace, "hits")
            else:
                self._count(namespace, "stale")
                self._refresh_in_background(namespace, key, redis_key, loader, ttl, stale, tags)
            return value
        self._count(namespace, "misses")
        if not wait:
            self._refresh_in_background(namespace, key, redis_key, loader, ttl, stale, tags)
            return None
        return self._load_single_flight(namespace, key, redis_key, loader, ttl, stale, tags)

    def _load_single_flight(self, namespace, key, redis_key, loader, ttl, stale, tags) -> Any:
        try:
            token = self._acquire(redis_key)
        except FAULTS:
            self._fault(namespace)
            return self._local_or_load(namespace, key, loader, ttl)
        if token is None:
            return self._wait_for_loader(redis_key, loader)
        try:
            value = loader()
            try:
                self._store(namespace, key, value, ttl, stale, tags, redis_key=redis_key)
            except FAULTS:
                self._fault(namespace)
                self._local_put(namespace, key, value, ttl)
        finally:
            with contextlib.suppress(*FAULTS):
                self._release(redis_key, token)
        return value

    def _wait_for_loader(self, redis_key: str, loader: Callable[[], Any]) -> Any:
        """Someone else is loading this key: wait for their value instead of loading too."""
        deadline = time.monotonic() + self.miss_wait_s
        while time.monotonic() < deadline:
            time.sleep(0.02)
            try:
                raw = self.redis.get(redis_key)
            except FAULTS:
                break
            if raw is not None:
                return self._decode(raw)[0]
        return loader()

    def _refresh_in_background(self, namespace, key, redis_key, loader, ttl, stale, tags) -> None:
        try:
            token = self._acquire(redis_key)
        except FAULTS:
            self._fault(namespace)
            return
        if token is None:
            return  # another reader is already refreshing this key

        def refresh():
            try:
                self._store(namespace, key, loader(), ttl, stale, tags, redis_key=redis_key)
            except Exception:
                self._count(namespace, "errors")
            finally:
                with contextlib.suppress(*FAULTS):
                    self._release(redis_key, token)

        threading.Thread(target=refresh, daemon=True, name=f"cache-refresh-{redis_key}").start()

    # --- writing -------------------------------------------------------------

    def set(
        self,
        namespace: str,
        key: Any,
        value: Any,
        ttl: int | None = None,
        *,
        stale: int | None = None,
        tags: Iterable[str] = (),
    ) -> bool:
        """Store `value` (fresh for `ttl`, then stale for `stale` s). False when Redis is down."""
        try:
            self._store(namespace, key, value, ttl, stale, tags)
            return True
        except FAULTS:
            self._fault(namespace)
            self._local_put(namespace, key, value, ttl)
            return False

    def set_many(
        self,
        namespace: str,
        items: Iterable[tuple[Any, Any, int | None]],
        *,
        tags: Iterable[str] = (),
    ) -> int:
        """Store (key, value, ttl) rows in one pipeline; returns how many were written.

        Raises redis errors: bulk writers (warmers) must know when they failed.
        """
        pipe = self.redis.pipeline(transaction=False)
        written = 0
        for key, value, ttl in items:
            redis_key = self.key(namespace, key)
            self._queue_store(pipe, namespace, key, value, ttl, None, tags, redis_key)
            written += 1
        pipe.execute()
        return written

    def delete(self, namespace: str, key: Any) -> int:
        try:
            return int(self.redis.unlink(self.key(namespace, key)))
        except FAULTS:
            self._fault(namespace)
            self._local.pop((namespace, str(key)), None)
            return 0

    def _store(self, namespace, key, value, ttl, stale, tags, *, redis_key=None) -> None:
        pipe = self.redis.pipeline(transaction=False)
        redis_key = redis_key or self.key(namespace, key)
        self._queue_store(pipe, namespace, key, value, ttl, stale, tags, redis_key)
        pipe.execute()

    def _queue_store(self, pipe, namespace, key, value, ttl, stale, tags, redis_key) -> None:
        ttl = self.ttl_for(namespace) if ttl is None else int(ttl)
        stale = int(ttl * self.stale_fraction) if stale is None else int(stale)
        envelope = json.dumps(
            {"v": value, "f": round(self.clock() + ttl, 3)}, separators=(",", ":"), default=str
        )
        pipe.set(redis_key, envelope, ex=max(1, ttl + stale))
        for tag in tags:
            tag_key = self._tag_key(tag)
            pipe.sadd(tag_key, redis_key)
            # NX gives a new set a TTL; GT then only ever lengthens it.
            pipe.expire(tag_key, ttl + stale, nx=True)
            pipe.expire(tag_key, ttl + stale, gt=True)

    # --- invalidating --------------------------------------------------------

    def bump_namespace(self, namespace: str) -> int:
        """Make every key of `namespace` unreachable at once; returns the new version."""
        version = int(self.redis.incr(self._version_key(namespace)))
        if version == 1:  # no version key yet meant v1: move past it
            version = int(self.redis.incr(self._version_key(namespace)))
        self._versions[namespace] = (version, time.monotonic())
        return version

    def restore_version(self, namespace: str, version: int) -> None:
        """Point `namespace` back at `version` (undoing a bump while its keys still live)."""
        self.redis.set(self._version_key(namespace), int(version))
        self._versions[namespace] = (int(version), time.monotonic())

    def invalidate_tag(self, tag: str, batch: int = 500) -> int:
        """Delete every key stored with `tag`; returns how many existed."""
        tag_keys = [self._tag_key(tag)]
        if not isinstance(self.redis, RedisCluster):  # a cluster never had the old names
            tag_keys.append(self._legacy_tag_key(tag))
        return sum(self._delete_members(tag_key, batch) for tag_key in tag_keys)

    def _delete_members(self, tag_key: str, batch: int) -> int:
        # Rename first: keys tagged while we delete land in a fresh set, not in ours.
        work = f"{tag_key}:deleting:{uuid.uuid4().hex}"
        try:
            self.redis.rename(tag_key, work)
        except redis.ResponseError:
            return 0  # no such tag
        deleted = 0
        members: list[bytes] = []
        for member in self.redis.sscan_iter(work, count=1000):
            members.append(member)
            if len(members) >= batch:
                deleted += int(self.redis.unlink(*members))
                members = []
        if members:
            deleted += int(self.redis.unlink(*members))
        self.redis.unlink(work)
        return deleted

    # --- locks, counters, fallback -------------------------------------------

    def _acquire(self, redis_key: str, lock_s: int = 30) -> str | None:
        token = uuid.uuid4().hex
        got = self.redis.set(self._lock_key(redis_key), token, nx=True, ex=lock_s)
        return token if got else None

    _RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"

    def _release(self, redis_key: str, token: str) -> None:
        self.redis.eval(self._RELEASE, 1, self._lock_key(redis_key), token)

    def _decode(self, raw: bytes) -> tuple[Any, float]:
        try:
            envelope = json.loads(raw)
            return envelope["v"], float(envelope["f"])
        except (ValueError, TypeError, KeyError):
            # Written by something else: serve it as it is, always fresh.
            return raw, float("inf")

    def _count(self, namespace: str, kind: str) -> None:
        with self._pending_lock:
            self._pending[(minute_bucket(self.clock()), namespace, kind)] += 1
        if time.monotonic() - self._last_flush >= self.counters_flush_s:
            self.flush_counters()

    def flush_counters(self) -> None:
        """Write the buffered counters to Redis in one pipeline (kept if Redis is down)."""
        with self._pending_lock:
            pending, self._pending = self._pending, Counter()
            self._last_flush = time.monotonic()
        if not pending or self._redis_down():
            self._merge_back(pending)
            return
        try:
            pipe = self.redis.pipeline(transaction=False)
            for bucket in {b for b, _, _ in pending}:
                key = counters_key(self.prefix, bucket)
                for (b, namespace, kind), count in pending.items():
                    if b == bucket:
                        pipe.hincrby(key, f"{namespace}:{kind}", count)
                pipe.expire(key, COUNTER_KEEP_S)
            pipe.execute()
        except FAULTS:
            self._down_until = time.monotonic() + self.retry_after_s
            self._merge_back(pending)

    def _merge_back(self, pending: Counter) -> None:
        if pending:
            with self._pending_lock:
                self._pending.update(pending)

    def _redis_down(self) -> bool:
        return time.monotonic() < self._down_until

    def _fault(self, namespace: str) -> None:
        self._down_until = time.monotonic() + self.retry_after_s
        with self._pending_lock:
            self._pending[(minute_bucket(self.clock()), namespace, "errors")] += 1

    def _local_get(self, namespace: str, key: Any, default: Any = None) -> Any:
        entry = self._local.get((namespace, str(key)))
        if entry is None or entry[0] < self.clock():
            return default
        return entry[1]

    def _local_put(self, namespace: str, key: Any, value: Any, ttl: int | None) -> None:
        ttl = self.ttl_for(namespace) if ttl is None else ttl
        self._local[(namespace, str(key))] = (self.clock() + ttl, value)
        self._local.move_to_end((namespace, str(key)))
        while len(self._local) > self._local_size:
            self._local.popitem(last=False)

    def _local_or_load(self, namespace, key, loader, ttl) -> Any:
        value = self._local_get(namespace, key, _MISSING)
        if value is _MISSING:
            value = loader()
            self._local_put(namespace, key, value, ttl)
        return value


_CONSOLE_CACHE: Cache | None = None


def console_cache() -> Cache:
    """The console's own cache: the broker's Redis, under the console's KEY_PREFIX."""
    global _CONSOLE_CACHE
    from django.conf import settings

    prefix = f"{settings.KEY_PREFIX}cache:"
    if _CONSOLE_CACHE is None or _CONSOLE_CACHE.prefix != prefix:
        _CONSOLE_CACHE = Cache(settings.REDIS_URL, prefix=prefix, socket_timeout=1.0)
    return _CONSOLE_CACHE
