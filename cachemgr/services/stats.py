"""Reading a cache target's health: INFO figures, SLOWLOG, namespaces, and the history.

Nothing here changes the cache. Namespace discovery reads a bounded SCAN sample and its
result is cached (stale-while-revalidate), so a page view never scans the keyspace.
"""

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from .. import client as cache_client
from .. import conf, targets
from ..models import StatsSnapshot

TTL_BUCKETS = ("no TTL", "< 1 h", "< 1 d", "longer")
MEMORY_SAMPLES_PER_NAMESPACE = 30
TTL_SAMPLES = 5000
HISTORY_RANGES = {"1h": 1, "24h": 24, "7d": 24 * 7, "30d": 24 * 30}


def _redis(target: str):
    return targets.connect(target)


SUMMED = (
    "keyspace_hits",
    "keyspace_misses",
    "used_memory",
    "used_memory_peak",
    "maxmemory",
    "evicted_keys",
    "expired_keys",
    "ops_per_sec",
    "keys",
    "keys_with_ttl",
)


def server_stats(target: str) -> dict[str, Any]:
    """INFO figures and the newest SLOWLOG entries of every node of `target` (one INFO and
    one SLOWLOG per node), with the target's totals: counters summed over the primaries
    (replicas hold copies), clients over every node."""
    try:
        nodes = [node_stats(node) for node in targets.nodes(target)]
        shape = targets.describe(target)
    except targets.REDIS_FAULTS as exc:
        raise targets.unavailable(target, exc) from exc
    primaries = [row for row in nodes if row["role"] == "primary"]
    totals = {name: sum(row[name] for row in primaries) for name in SUMMED}
    hits, misses = totals["keyspace_hits"], totals["keyspace_misses"]
    first = primaries[0]
    return {
        "target": target,
        "url": targets.display_url(target),
        "shape": shape,
        "version": first["version"],
        "uptime_s": min(row["uptime_s"] for row in nodes),
        **totals,
        "hit_rate": hits / (hits + misses) if hits + misses else None,
        "maxmemory_policy": first["maxmemory_policy"],
        "connected_clients": sum(row["connected_clients"] for row in nodes),
        "replication_lag_s": max((row["lag_s"] or 0 for row in nodes), default=0),
        "slowlog": sorted(
            (entry for row in nodes for entry in row["slowlog"]),
            key=lambda entry: entry["at"],
            reverse=True,
        )[:SLOWLOG_ENTRIES],
        "nodes": nodes,
    }


SLOWLOG_ENTRIES = 10


def node_stats(node: targets.Node) -> dict[str, Any]:
    """One server's INFO figures, replication state and slow log."""
    info = node.client.info()
    slowlog = node.client.slowlog_get(SLOWLOG_ENTRIES)
    hits, misses = int(info.get("keyspace_hits", 0)), int(info.get("keyspace_misses", 0))
    db_index = node.client.connection_pool.connection_kwargs.get("db", 0)
    keyspace = info.get(f"db{db_index}") or {}
    return {
        "node": node.name,
        "role": node.role,
        "version": info.get("redis_version", "?"),
        "uptime_s": int(info.get("uptime_in_seconds", 0)),
        "hit_rate": hits / (hits + misses) if hits + misses else None,
        "keyspace_hits": hits,
        "keyspace_misses": misses,
        "used_memory": int(info.get("used_memory", 0)),
        "used_memory_peak": int(info.get("used_memory_peak", 0)),
        "maxmemory": int(info.get("maxmemory", 0)),
        "maxmemory_policy": info.get("maxmemory_policy", "?"),
        "evicted_keys": int(info.get("evicted_keys", 0)),
        "expired_keys": int(info.get("expired_keys", 0)),
        "ops_per_sec": float(info.get("instantaneous_ops_per_sec", 0)),
        "connected_clients": int(info.get("connected_clients", 0)),
        "keys": int(keyspace.get("keys", 0)),
        "keys_with_ttl": int(keyspace.get("expires", 0)),
        # SLOWLOG entries carry no database: on a server shared with other databases
        # they may be theirs (the page says so).
        "other_databases": sorted(
            name for name in info if name.startswith("db") and name != f"db{db_index}"
        ),
        **_replication(info),
        "slowlog": [
            {
                "node": node.name,
                "id": entry.get("id"),
                "at": datetime.fromtimestamp(entry.get("start_time", 0), UTC),
                "duration_us": entry.get("duration"),
                "command": _printable(entry.get("command", b""))[:200],
            }
            for entry in slowlog
        ],
    }


def _replication(info: dict[str, Any]) -> dict[str, Any]:
    """A replica's lag behind its primary: seconds since it last heard from it, and
    replication-stream bytes not yet applied (from the primary's view, when it is one)."""
    if info.get("role") == "slave":
        return {
            "lag_s": int(info.get("master_last_io_seconds_ago", 0)),
            "link": info.get("master_link_status", "?"),
            "replicas": [],
        }
    offset = int(info.get("master_repl_offset", 0))
    replicas = [
        {
            "address": f"{value.get('ip')}:{value.get('port')}",
            "state": value.get("state"),
            "lag_s": int(value.get("lag", 0)),
            "lag_bytes": max(0, offset - int(value.get("offset", 0))),
        }
        for name, value in info.items()
        if name.startswith("slave") and isinstance(value, dict)
    ]
    return {"lag_s": None, "link": None, "replicas": replicas}


def _printable(value: bytes | str) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return str(value)


def namespace_of(key: bytes) -> str | None:
    """`user_profile:v3:42` -> `user_profile`; the client's own keys -> None."""
    name = key.decode("utf-8", errors="backslashreplace")
    head, sep, _ = name.partition(":")
    if head == cache_client.META:
        return None
    return head if sep else "(no namespace)"


def discover_namespaces(target: str, sample: int | None = None) -> dict[str, Any]:
    """Sample the keyspace with a bounded SCAN on each primary (hash order, so a uniform
    sample; the sample shared out among them) and estimate per namespace: keys, memory
    (MEMORY USAGE on a few keys) and TTL spread."""
    sample = sample or conf.get("CACHE_DISCOVERY_SAMPLE")
    started = time.perf_counter()
    primaries = targets.primaries(target)
    try:
        found = [_discover_on(node.client, sample // len(primaries)) for node in primaries]
    except targets.REDIS_FAULTS as exc:
        raise targets.unavailable(target, exc) from exc
    return {
        "target": target,
        "scanned": sum(part["scanned"] for part in found),
        "total_keys": sum(part["total_keys"] for part in found),
        "complete": all(part["complete"] for part in found),
        "seconds": round(time.perf_counter() - started, 3),
        "taken_at": time.time(),
        "namespaces": _merge([part["namespaces"] for part in found]),
    }


def _discover_on(client, sample: int) -> dict[str, Any]:
    total = int(client.dbsize())
    cursor, scanned, groups = 0, 0, {}
    while True:
        cursor, keys = client.scan(cursor, count=1000)
        for key in keys:
            namespace = namespace_of(key)
            if namespace is not None:
                groups.setdefault(namespace, []).append(key)
        scanned += len(keys)
        if cursor == 0 or scanned >= sample:
            break
    complete = cursor == 0
    return {
        "scanned": scanned,
        "total_keys": total,
        "complete": complete,
        "namespaces": _measure(client, groups, scanned, total, complete),
    }


def _merge(per_node: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per namespace from each node's rows (keys, memory and TTL buckets add up)."""
    merged: dict[str, dict[str, Any]] = {}
    for rows in per_node:
        for row in rows:
            into = merged.setdefault(
                row["namespace"],
                {"namespace": row["namespace"], "keys": 0, "memory": 0, "ttl": {}},
            )
            into["keys"] += row["keys"]
            into["memory"] += row["memory"]
            for bucket, n in row["ttl"].items():
                into["ttl"][bucket] = into["ttl"].get(bucket, 0) + n
    return sorted(merged.values(), key=lambda row: row["keys"], reverse=True)


def _measure(client, groups: dict[str, list[bytes]], scanned: int, total: int, complete: bool):
    scale = 1.0 if complete or not scanned else total / scanned
    ttl_share = min(1.0, TTL_SAMPLES / max(1, scanned))
    pipe = client.pipeline(transaction=False)
    plan = []
    for namespace, keys in groups.items():
        measured = keys[:MEMORY_SAMPLES_PER_NAMESPACE]
        ttl_keys = keys[: max(1, int(len(keys) * ttl_share))]
        for key in measured:
            pipe.memory_usage(key)
        for key in ttl_keys:
            pipe.pttl(key)
        plan.append((namespace, len(keys), len(measured), len(ttl_keys)))
    answers = iter(pipe.execute())
    rows = []
    for namespace, sampled, measured, ttl_count in plan:
        sizes = [size for size in (next(answers) for _ in range(measured)) if size]
        ttls = dict.fromkeys(TTL_BUCKETS, 0)
        for pttl in (next(answers) for _ in range(ttl_count)):
            if pttl == -2:
                continue  # expired between SCAN and read
            ttls[_ttl_bucket(pttl)] += 1
        keys_estimate = round(sampled * scale)
        measured_ttls = sum(ttls.values())
        if measured_ttls:  # from the TTL sample to the namespace's estimated key count
            ttls = {b: round(n * keys_estimate / measured_ttls) for b, n in ttls.items()}
        mean = sum(sizes) / len(sizes) if sizes else 0
        rows.append(
            {
                "namespace": namespace,
                "keys": keys_estimate,
                "memory": round(mean * keys_estimate),
                "ttl": ttls,
            }
        )
    rows.sort(key=lambda row: row["keys"], reverse=True)
    return rows


def _ttl_bucket(pttl: int) -> str:
    if pttl < 0:
        return "no TTL"
    if pttl < 3600_000:
        return "< 1 h"
    if pttl < 86400_000:
        return "< 1 d"
    return "longer"


def discovery_key(target: str) -> str:
    """Cached per target name and address: a target pointed elsewhere starts afresh."""
    return f"{target}@{targets.display_url(target)}"


def namespaces(target: str) -> dict[str, Any] | None:
    """Namespace figures from the cached discovery, with each namespace's live hit rate
    from the client counters (last hour). Discovery never runs in the request: a stale
    result is refreshed, and a missing one started, in the background (None until ready)."""
    ttl = conf.get("CACHE_DISCOVERY_TTL")
    found = cache_client.console_cache().get_or_set(
        "cache_namespaces",
        discovery_key(target),
        lambda: discover_namespaces(target),
        ttl,
        stale=ttl * 30,
        wait=False,
    )
    if found is None:
        return None
    try:
        counters = cache_client.read_counters(_redis(target), minutes=60)
    except targets.REDIS_FAULTS as exc:
        raise targets.unavailable(target, exc) from exc
    rows = [dict(row) for row in found["namespaces"]]
    seen = {row["namespace"] for row in rows}
    rows += [
        {"namespace": ns, "keys": 0, "memory": 0, "ttl": dict.fromkeys(TTL_BUCKETS, 0)}
        for ns in counters
        if ns not in seen
    ]
    for row in rows:
        row["counters"] = counters.get(row["namespace"])
        row["hit_rate"] = cache_client.hit_rate(row["counters"])
    return {**found, "namespaces": rows, "age_s": round(time.time() - found["taken_at"])}


def refresh_namespaces(target: str) -> dict[str, Any]:
    """Rediscover now and replace the cached result (the per-minute task calls this)."""
    found = discover_namespaces(target)
    ttl = conf.get("CACHE_DISCOVERY_TTL")
    cache_client.console_cache().set(
        "cache_namespaces", discovery_key(target), found, ttl, stale=ttl * 30
    )
    return found


# --- history -----------------------------------------------------------------


SNAPSHOT_FIELDS = (
    "keyspace_hits",
    "keyspace_misses",
    "used_memory",
    "used_memory_peak",
    "maxmemory",
    "ops_per_sec",
    "evicted_keys",
    "expired_keys",
    "keys",
    "connected_clients",
)


def take_snapshot(target: str) -> StatsSnapshot:
    """Store one StatsSnapshot row for the whole `target` (the history charts read these)
    and, when it has more than one server, one per node. Returns the target's row."""
    stats = server_stats(target)
    if len(stats["nodes"]) > 1:
        for row in stats["nodes"]:
            _snapshot(target, row["node"], row)
    return _snapshot(target, "", stats)


def _snapshot(target: str, node: str, figures: dict[str, Any]) -> StatsSnapshot:
    previous = StatsSnapshot.objects.filter(target=target, node=node).order_by("-taken_at").first()
    hit_rate = figures["hit_rate"]
    if previous and figures["keyspace_hits"] >= previous.keyspace_hits:
        hits = figures["keyspace_hits"] - previous.keyspace_hits
        misses = figures["keyspace_misses"] - previous.keyspace_misses
        hit_rate = hits / (hits + misses) if hits + misses > 0 else None
    return StatsSnapshot.objects.create(
        target=target,
        node=node,
        taken_at=timezone.now(),
        hit_rate=hit_rate,
        **{field: figures[field] for field in SNAPSHOT_FIELDS},
    )


def prune_snapshots(now=None) -> int:
    """Delete snapshots older than CACHE_HISTORY_DAYS; returns how many."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=conf.get("CACHE_HISTORY_DAYS"))
    deleted, _ = StatsSnapshot.objects.filter(taken_at__lt=cutoff).delete()
    return deleted


def snapshot_all() -> dict[str, Any]:
    """The per-minute beat task: snapshot every target, refresh its namespace discovery,
    prune old snapshots. A target that is down is reported, not raised."""
    outcome: dict[str, Any] = {"snapshots": [], "down": {}}
    for target in targets.names():
        try:
            take_snapshot(target)
            refresh_namespaces(target)
            outcome["snapshots"].append(target)
        except targets.TargetUnavailable as exc:
            outcome["down"][target] = str(exc)
    outcome["pruned"] = prune_snapshots()
    return outcome


def history(target: str, hours: int = 24, node: str = "") -> QuerySet:
    """The target's snapshots (or one node's) of the last `hours`, oldest first."""
    since = timezone.now() - timedelta(hours=hours)
    return StatsSnapshot.objects.filter(target=target, node=node, taken_at__gte=since).order_by(
        "taken_at"
    )
