"""Cache target addresses: the one parser of a target's URL, and the client it gives.

    redis://[user:pass@]host:port/db            one node (rediss:// for TLS)
    redis-cluster://host:port[?seed=host:port&seed=…]        Redis Cluster (rediss-cluster)
    redis-sentinel://host:port/<service>/<db>[?sentinel=host:port&…]   (rediss-sentinel)

Credentials come from the URL or, to keep them out of settings, from environment
variables named by `?username_env=VAR&password_env=VAR` (`sentinel_password_env=VAR`
for Sentinels that ask for a password of their own). The clients are redis-py's own:
`Redis`, `RedisCluster` (it discovers the primaries and follows slot moves) and
`Sentinel.master_for` (it asks the Sentinels for the current primary on every new
connection, so a retried command reaches the promoted replica after a failover).
"""

import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel

NODE, CLUSTER, SENTINEL = "node", "cluster", "sentinel"
SCHEMES = {
    "redis": (NODE, False),
    "rediss": (NODE, True),
    "unix": (NODE, False),
    "redis-cluster": (CLUSTER, False),
    "rediss-cluster": (CLUSTER, True),
    "redis-sentinel": (SENTINEL, False),
    "rediss-sentinel": (SENTINEL, True),
}
# Query parameters the console reads itself (the rest go to redis-py for a single node).
OWN_PARAMS = ("seed", "sentinel", "username_env", "password_env", "sentinel_password_env")
# TLS options a cluster or Sentinel URL may carry (a single node's go to redis-py as they are).
TLS_PARAMS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname")
SERVICE_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")


class BadAddress(ValueError):
    """A target URL the console cannot use; the message says what to fix."""


@dataclass(frozen=True)
class Address:
    url: str
    shape: str
    tls: bool
    hosts: tuple[tuple[str, int], ...] = ()
    db: int = 0
    service: str = ""
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None
    node_url: str = ""  # a single node: the URL handed to redis-py, console params removed
    tls_options: dict[str, Any] = field(default_factory=dict)  # cluster and Sentinel

    @property
    def display(self) -> str:
        """The address without credentials, for pages and messages."""
        scheme = urlsplit(self.url).scheme
        if self.shape == NODE:
            parts = urlsplit(self.node_url)
            host = parts.hostname or ""
            if parts.port:
                host = f"{host}:{parts.port}"
            return urlunsplit((parts.scheme, host, parts.path, "", ""))
        hosts = ",".join(f"{h}:{p}" for h, p in self.hosts)
        path = f"/{self.service}/{self.db}" if self.shape == SENTINEL else ""
        return f"{scheme}://{hosts}{path}"


def parse(url: str) -> Address:
    """Read a target URL, or raise BadAddress saying what is wrong with it."""
    parts = urlsplit(url.strip())
    if parts.scheme not in SCHEMES:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise BadAddress(f"{url!r}: unknown scheme {parts.scheme!r} (use one of {known}).")
    shape, tls = SCHEMES[parts.scheme]
    query = parse_qs(parts.query, keep_blank_values=True)
    username = _secret(query, "username_env", unquote(parts.username or "") or None)
    password = _secret(query, "password_env", unquote(parts.password or "") or None)
    common = {"url": url, "shape": shape, "tls": tls, "username": username, "password": password}
    if shape != NODE:
        common["tls_options"] = _tls_options(url, query, tls)
    if shape == NODE:
        return Address(**common, node_url=_node_url(parts, query, username, password))
    try:
        first = (parts.hostname or "", parts.port or 0)
    except ValueError as exc:
        raise BadAddress(f"{url!r}: {exc}.") from None
    more = query.get("seed" if shape == CLUSTER else "sentinel", [])
    hosts = tuple(_host_port(url, f"{h}:{p}") for h, p in [first]) + tuple(
        _host_port(url, item) for item in more
    )
    if shape == CLUSTER:
        if parts.path.strip("/") not in ("", "0"):
            raise BadAddress(f"{url!r}: a Redis Cluster has database 0 only.")
        return Address(**common, hosts=hosts)
    service, db = _service_and_db(url, parts.path)
    sentinel_password = _secret(query, "sentinel_password_env", None)
    return Address(
        **common, hosts=hosts, service=service, db=db, sentinel_password=sentinel_password
    )


def _tls_options(url: str, query: dict[str, list[str]], tls: bool) -> dict[str, Any]:
    options: dict[str, Any] = {name: query[name][0] for name in TLS_PARAMS if name in query}
    if options and not tls:
        raise BadAddress(f"{url!r}: TLS options need a rediss-… scheme.")
    if "ssl_check_hostname" in options:
        options["ssl_check_hostname"] = options["ssl_check_hostname"].lower() in ("1", "true")
    return options


def _secret(query: dict[str, list[str]], param: str, given: str | None) -> str | None:
    if not query.get(param):
        return given
    variable = query[param][0]
    if variable not in os.environ:
        raise BadAddress(f"{param}={variable}: the environment variable {variable} is not set.")
    return os.environ[variable]


def _host_port(url: str, item: str) -> tuple[str, int]:
    host, sep, port = item.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadAddress(f"{url!r}: {item!r} is not host:port.")
    return host, int(port)


def _service_and_db(url: str, path: str) -> tuple[str, int]:
    pieces = [p for p in path.split("/") if p]
    if not pieces or len(pieces) > 2 or not SERVICE_NAME.fullmatch(pieces[0]):
        raise BadAddress(
            f"{url!r}: name the Sentinel service and database, e.g. "
            "redis-sentinel://127.0.0.1:26379/mymaster/0."
        )
    db = pieces[1] if len(pieces) == 2 else "0"
    if not db.isdigit():
        raise BadAddress(f"{url!r}: the database {db!r} is not a number.")
    return pieces[0], int(db)


def _node_url(parts, query, username, password) -> str:
    kept = {k: v for k, v in query.items() if k not in OWN_PARAMS}
    netloc = parts.netloc.rpartition("@")[2]
    if password is not None or username is not None:
        credentials = (username or "") + (f":{password}" if password is not None else "")
        netloc = f"{credentials}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(kept, doseq=True), ""))


# --- clients ---------------------------------------------------------------------


def failover_retry(retries: int) -> Retry:
    """Retry a command on a fresh connection (backoff 50 ms doubling up to 250 ms): after
    a failover the new connection goes to the promoted primary. Kept short on purpose:
    redis-py applies it to connecting too, so the tries multiply (n+1)², and a page or a
    product request must fail fast while the Sentinels are still electing; work that must
    outlast a failover waits for the new primary itself (invalidation.NodeSteps)."""
    return Retry(ExponentialBackoff(cap=0.25, base=0.05), retries)


def client_for(
    address: Address,
    *,
    connect_timeout: float = 1.0,
    socket_timeout: float = 10.0,
    retries: int = 0,
) -> redis.Redis | RedisCluster:
    """A client for `address`: Redis, RedisCluster or a Sentinel-managed Redis."""
    timeouts = {"socket_connect_timeout": connect_timeout, "socket_timeout": socket_timeout}
    retry = failover_retry(retries)
    faults = [redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError]
    if address.shape == NODE:
        return redis.Redis.from_url(
            address.node_url, health_check_interval=30, retry=retry, **timeouts
        )
    auth = {
        "username": address.username,
        "password": address.password,
        "ssl": address.tls,
        **address.tls_options,
    }
    if address.shape == CLUSTER:
        return RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in address.hosts],
            retry=retry,
            **auth,
            **timeouts,
        )
    return sentinels(address, connect_timeout).master_for(
        address.service,
        db=address.db,
        retry=retry,
        retry_on_error=faults,
        health_check_interval=30,
        **auth,
        **timeouts,
    )


def sentinels(address: Address, timeout: float = 1.0) -> Sentinel:
    """The Sentinels of a sentinel address (asked for the service's primary and replicas)."""
    return Sentinel(
        list(address.hosts),
        sentinel_kwargs={
            # One try per Sentinel (the next one is asked instead); redis-py's default
            # would retry a dead one three times with second-long backoffs.
            "retry": Retry(NoBackoff(), 0),
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "password": address.sentinel_password,
            "ssl": address.tls,
            **address.tls_options,
        },
        username=address.username,
        password=address.password,
        ssl=address.tls,
        **address.tls_options,
        socket_connect_timeout=timeout,
    )


def node_client(address: Address, host: str, port: int, **timeouts) -> redis.Redis:
    """A plain client for one node of a cluster or sentinel address (same auth and TLS)."""
    return redis.Redis(
        host=host,
        port=port,
        retry=Retry(NoBackoff(), 0),  # one server: its fault is the caller's to handle
        db=address.db,
        username=address.username,
        password=address.password,
        ssl=address.tls,
        **address.tls_options,
        **timeouts,
    )
