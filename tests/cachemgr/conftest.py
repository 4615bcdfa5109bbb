"""Cache manager fixtures: real Redis, each test on its own key prefix and namespaces."""

import socket
import subprocess
import time
import uuid

import pytest
import redis

from cachemgr import targets
from cachemgr.client import META, Cache
from cachemgr.localservers import LocalCluster, LocalSentinel
from jobs.models import Run

FINISHED = ("succeeded", "failed", "cancelled", "timed_out", "lost")


class Scratch:
    """A unique prefix and namespace names in the test cache target, removed afterwards."""

    def __init__(self):
        self.id = uuid.uuid4().hex[:10]
        self.prefix = f"t{self.id}:"
        self.redis = targets.connect("main")
        self.namespaces: list[str] = []

    def ns(self, name: str = "ns") -> str:
        namespace = f"{name}_{self.id}"
        self.namespaces.append(namespace)
        return namespace

    def cache(self, **kwargs) -> Cache:
        kwargs.setdefault("counters_flush_s", 0)
        return Cache(client=self.redis, prefix=self.prefix, **kwargs)

    def load(self, keys, value=b"x") -> None:
        pipe = self.redis.pipeline(transaction=False)
        for i, key in enumerate(keys):
            pipe.set(key, value)
            if i % 5000 == 4999:
                pipe.execute()
        pipe.execute()

    def cleanup(self) -> None:
        patterns = [self.prefix + "*"]
        for ns in self.namespaces:
            patterns += [f"{ns}:*", f"{META}:*:{ns}", f"{META}:tag:*{self.id}*"]
        for pattern in patterns:
            batch = []
            for key in self.redis.scan_iter(match=pattern, count=5000):
                batch.append(key)
                if len(batch) == 2000:
                    self.redis.unlink(*batch)
                    batch = []
            if batch:
                self.redis.unlink(*batch)
        # Per-minute counters are shared hashes: drop only this test's fields.
        for key in self.redis.scan_iter(match=f"{META}:stats:*", count=5000):
            fields = [f for f in self.redis.hkeys(key) if self.id.encode() in f]
            if fields:
                self.redis.hdel(key, *fields)


@pytest.fixture
def scratch():
    box = Scratch()
    yield box
    box.cleanup()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnRedis:
    """A redis-server of this test's own (for match-all deletes and for killing it)."""

    def __init__(self):
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def own_redis(settings):
    """Target "own": a private redis-server, stopped afterwards."""
    server = OwnRedis()
    settings.CACHE_TARGETS = {**settings.CACHE_TARGETS, "own": server.url}
    yield server
    server.stop()
    targets.forget(server.url)


@pytest.fixture
def down_target(settings):
    """Target "down": nothing listens there."""
    url = f"redis://127.0.0.1:{_free_port()}/0"
    settings.CACHE_TARGETS = {**settings.CACHE_TARGETS, "down": url}
    yield "down"
    targets.forget(url)


@pytest.fixture(scope="session")
def cluster_servers():
    """A real 3-primary Redis Cluster for the whole session."""
    cluster = LocalCluster(3)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def sentinel_servers():
    """A real primary + replica + Sentinel for the whole session (never failed over)."""
    group = LocalSentinel("cache")
    yield group
    group.stop()


@pytest.fixture
def resharded(settings):
    """Target "resharded": a 3-primary cluster of this test's own (its layout changes)."""
    cluster = LocalCluster(3)
    settings.CACHE_TARGETS = {**settings.CACHE_TARGETS, "resharded": cluster.url}
    yield cluster
    targets.forget(cluster.url)
    cluster.stop()


@pytest.fixture
def cluster(settings, cluster_servers):
    """Target "cluster": the session's cluster, emptied after the test."""
    settings.CACHE_TARGETS = {**settings.CACHE_TARGETS, "cluster": cluster_servers.url}
    yield "cluster"
    for node in cluster_servers.nodes:
        node.client.flushall()


@pytest.fixture
def sentinel(settings, sentinel_servers):
    """Target "sentinel": the session's Sentinel service (db 0), emptied after the test."""
    settings.CACHE_TARGETS = {**settings.CACHE_TARGETS, "sentinel": sentinel_servers.url()}
    yield "sentinel"
    sentinel_servers.primary.client.flushall()


@pytest.fixture(params=["cluster", "sentinel"])
def shape(request):
    """Each test using it runs once against the cluster and once against Sentinel."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def failing_sentinel(settings):
    """Target "failover": a Sentinel group of this test's own (its primary gets killed)."""
    group = LocalSentinel("failover")
    settings.CACHE_TARGETS = {**settings.CACHE_TARGETS, "failover": group.url()}
    yield group
    targets.forget(group.url())
    group.stop()


def wait_for(run: Run, statuses=FINISHED, timeout: float = 30.0) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status in statuses:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run #{run.pk} still {run.status} after {timeout} s")


def count(client, pattern: str) -> int:
    return len(set(client.scan_iter(match=pattern, count=5000)))
