"""Cache targets: the Redis deployments named in settings.CACHE_TARGETS, and how we reach them.

A target is one node, a Redis Cluster or a Sentinel service (cachemgr.addresses reads
the URL). `connect()` gives the client that routes keys (redis-py's Redis, RedisCluster
or Sentinel-managed Redis); `primaries()` gives one plain client per primary, for the
work that walks a keyspace (SCAN runs per node, never across a cluster); `nodes()` adds
the replicas, for the per-node stats.
"""

import time
from dataclasses import dataclass

import redis
from django.conf import settings
from redis.cluster import RedisCluster
from redis.exceptions import ClusterError, RedisClusterException

from . import addresses, conf

_CLIENTS: dict[str, redis.Redis | RedisCluster] = {}
# Plain clients of one server of a Sentinel group, per (target URL, host, port).
_NODE_CLIENTS: dict[tuple[str, str, int], redis.Redis] = {}
# Retries of one command after a connection fault on a cluster or Sentinel target (a
# moved slot, a replica just promoted); see addresses.failover_retry.
FAILOVER_RETRIES = 2
# A cluster's slot layout counts as settled once it stayed the same this long.
SLOTS_QUIET_S = 1.0


class UnknownTarget(LookupError):
    pass


class TargetUnavailable(Exception):
    """The target's Redis did not answer (down, refused, timed out)."""


REDIS_FAULTS = (redis.ConnectionError, redis.TimeoutError, ClusterError, RedisClusterException)


@dataclass(frozen=True)
class Node:
    """One server of a target: `name` is host:port, `role` primary or replica."""

    name: str
    role: str
    client: redis.Redis


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


def address(target: str) -> addresses.Address:
    """The target's parsed address; a URL the console cannot use is an UnknownTarget
    whose message says what is wrong (pages and commands show it as bad input)."""
    try:
        return addresses.parse(url(target))
    except addresses.BadAddress as exc:
        raise UnknownTarget(f"Cache target {target}: {exc}") from None


def shape(target: str) -> str:
    return address(target).shape


def display_url(target: str) -> str:
    """The target's URL without its password, for pages and messages."""
    return address(target).display


def _timeouts() -> dict[str, float]:
    return {
        "socket_connect_timeout": conf.get("CACHE_CONNECT_TIMEOUT"),
        "socket_timeout": conf.get("CACHE_SOCKET_TIMEOUT"),
    }


def connect(target: str) -> redis.Redis | RedisCluster:
    """The client for `target`, shared per URL (a single node's pool, the cluster's slot
    map, the Sentinel pool). Commands outlast a failover by retrying on new connections."""
    where = address(target)
    client = _CLIENTS.get(where.url)
    if client is None:
        try:
            client = addresses.client_for(
                where,
                connect_timeout=conf.get("CACHE_CONNECT_TIMEOUT"),
                socket_timeout=conf.get("CACHE_SOCKET_TIMEOUT"),
                retries=0 if where.shape == addresses.NODE else FAILOVER_RETRIES,
            )
        except REDIS_FAULTS as exc:  # RedisCluster reads the slot map when built
            raise unavailable(target, exc) from exc
        _CLIENTS[where.url] = client
    return client


def forget(target_url: str) -> None:
    """Drop the shared client of a URL (tests whose servers went away)."""
    client = _CLIENTS.pop(target_url, None)
    if client is not None:
        client.close()
    for key in [key for key in _NODE_CLIENTS if key[0] == target_url]:
        _NODE_CLIENTS.pop(key).close()


def primaries(target: str) -> list[Node]:
    """One client per primary, ordered by name (a combined SCAN cursor relies on it)."""
    return [node for node in nodes(target) if node.role == "primary"]


def nodes(target: str) -> list[Node]:
    """Every server of the target: primaries first, then replicas, each ordered by name."""
    where = address(target)
    client = connect(target)
    try:
        if where.shape == addresses.CLUSTER:
            found = [
                Node(
                    n.name,
                    "primary" if n.server_type == "primary" else "replica",
                    client.get_redis_connection(n),
                )
                for n in client.get_nodes()
            ]
        elif where.shape == addresses.SENTINEL:
            found = _sentinel_nodes(where, client)
        else:
            kwargs = client.connection_pool.connection_kwargs
            name = f"{kwargs.get('host', kwargs.get('path', '?'))}:{kwargs.get('port', '')}"
            found = [Node(name.rstrip(":"), "primary", client)]
    except REDIS_FAULTS as exc:
        raise unavailable(target, exc) from exc
    return sorted(found, key=lambda n: (n.role != "primary", n.name))


def _sentinel_nodes(where: addresses.Address, client: redis.Redis) -> list[Node]:
    """The service's primary and replicas as the Sentinels see them now. Each is a plain
    client of that one server (no retry that could land on another one midway: work
    that walks a keyspace must notice a failover and start that walk again)."""
    watchers = client.connection_pool.sentinel_manager
    found = [("primary", *watchers.discover_master(where.service))]
    found += [("replica", *pair) for pair in watchers.discover_slaves(where.service)]
    return [
        Node(f"{host}:{port}", role, _node_client(where, host, port)) for role, host, port in found
    ]


def _node_client(where: addresses.Address, host: str, port: int) -> redis.Redis:
    """One server's client, kept per target and address (the pages ask every few seconds)."""
    key = (where.url, host, port)
    if key not in _NODE_CLIENTS:
        _NODE_CLIENTS[key] = addresses.node_client(where, host, port, **_timeouts())
    return _NODE_CLIENTS[key]


def wait_for_new_primary(target: str, timeout: float) -> Node:
    """After a connection fault on a Sentinel target: the primary the Sentinels name once
    it answers as a primary (the same one, if it only blinked). TargetUnavailable when
    none does within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            primary = primaries(target)[0]
            if primary.client.role()[0] == b"master":
                return primary
        except (TargetUnavailable, *REDIS_FAULTS):
            pass
        if time.monotonic() > deadline:
            raise TargetUnavailable(
                f"Cache target {target}: no primary answered within {timeout:g} s."
            )
        time.sleep(0.2)


def a_slot_of(target: str, node_name: str) -> int | None:
    """One slot the cluster client's slot map gives to primary `node_name` (None if it
    serves none): read before a fault, it says whose slots to look for afterwards."""
    manager = connect(target).nodes_manager
    with manager._lock:  # other walks may be refreshing the map
        return next(
            (slot for slot, owners in manager.slots_cache.items() if owners[0].name == node_name),
            None,
        )


def is_cluster_down(exc: Exception) -> bool:
    """True for a cluster node's refusal while a slot has no answering primary (between a
    primary's death and its replica's promotion: CLUSTERDOWN, or from a script "…while the
    cluster is down")."""
    text = str(exc)
    return isinstance(exc, redis.ResponseError) and (
        text.startswith("CLUSTERDOWN") or "cluster is down" in text
    )


def wait_for_slot_owner(target: str, slot: int, timeout: float) -> Node:
    """After a fault on a cluster primary: the primary serving `slot` once the cluster
    says its state is ok and that primary answers as one (the promoted replica after a
    failover; the same node if it only blinked). The slot map is read again each time
    (the client's copy names the dead node). TargetUnavailable after `timeout` s."""
    deadline = time.monotonic() + timeout
    client = connect(target)
    while True:
        try:
            client.nodes_manager.initialize()
            owner = client.nodes_manager.get_node_from_slot(slot)
            node = client.get_redis_connection(owner)
            if node.role()[0] == b"master" and node.cluster("info")["cluster_state"] == "ok":
                return Node(owner.name, "primary", node)
        except REDIS_FAULTS:
            pass
        if time.monotonic() > deadline:
            raise TargetUnavailable(
                f"Cache target {target}: no primary served slot {slot} within {timeout:g} s."
            )
        time.sleep(0.2)


@dataclass(frozen=True)
class SlotLayout:
    """Who serves which slots of a cluster, as each primary says of itself: per primary
    its name, config epoch (a slot that moved and came back still moves an epoch), slot
    ranges, and the slots it is migrating or importing."""

    primaries: tuple[tuple[str, str, tuple, tuple], ...]

    @property
    def moving(self) -> bool:
        """True while a slot is being migrated (its keys are on two nodes)."""
        return any(migrations for *_, migrations in self.primaries)


def slot_layout(target: str) -> SlotLayout:
    """The cluster's slot layout now: the slot map is read again (not the client's copy),
    then every primary describes itself (CLUSTER NODES, its `myself` line)."""
    client = connect(target)
    layout = []
    try:
        client.nodes_manager.initialize()
        for node in primaries(target):
            me = next(n for n in node.client.cluster("nodes").values() if "myself" in n["flags"])
            migrations = sorted((m["slot"], m["state"], m["node_id"]) for m in me["migrations"])
            slots = tuple(tuple(r) for r in me["slots"])
            layout.append((node.name, me["epoch"], slots, tuple(migrations)))
    except REDIS_FAULTS as exc:
        raise unavailable(target, exc) from exc
    return SlotLayout(tuple(layout))


def wait_for_settled_slots(target: str, timeout: float, quiet: float = SLOTS_QUIET_S) -> None:
    """Return once the cluster's slot layout has stayed the same, with no slot migrating,
    for `quiet` seconds (a resharding moves one slot after another: between two of them
    nothing is migrating for an instant), or after `timeout` seconds (a resharding may
    take hours: the caller decides what an unsettled layout means)."""
    deadline = time.monotonic() + timeout
    layout, still_since = slot_layout(target), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = slot_layout(target)
        if now != layout:
            layout, still_since = now, time.monotonic()
        elif not now.moving and time.monotonic() - still_since >= quiet:
            return


def describe(target: str) -> str:
    """What the target is, in an operator's words: "one node", "cluster with 3
    primaries", "sentinel service cache, primary 10.0.0.5:6379"."""
    where = address(target)
    if where.shape == addresses.NODE:
        return "one node"
    found = primaries(target)
    if where.shape == addresses.CLUSTER:
        return f"cluster with {len(found)} primaries"
    return f"sentinel service {where.service}, primary {found[0].name}"


def unavailable(target: str, exc: Exception) -> TargetUnavailable:
    return TargetUnavailable(
        f"Cache target {target} ({display_url(target)}) is unreachable: {type(exc).__name__}: {exc}"
    )
