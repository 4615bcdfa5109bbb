"""Target addresses of every shape, parsed and reached on real servers."""

import time

import pytest

from cachemgr import addresses, localservers, targets
from cachemgr.services import stats


def test_it_reads_a_single_node_with_its_options():
    where = addresses.parse("redis://:s3cret@cache.internal:6380/2?health_check_interval=5")
    assert where.shape == "node" and not where.tls
    assert where.display == "redis://cache.internal:6380/2"
    assert "s3cret" not in where.display and "health_check_interval=5" in where.node_url


def test_it_reads_a_cluster_with_its_seeds():
    where = addresses.parse("rediss-cluster://u:p@10.0.0.1:7000?seed=10.0.0.2:7000&seed=h3:7001")
    assert where.shape == "cluster" and where.tls
    assert where.hosts == (("10.0.0.1", 7000), ("10.0.0.2", 7000), ("h3", 7001))
    assert (where.username, where.password) == ("u", "p")
    assert where.display == "rediss-cluster://10.0.0.1:7000,10.0.0.2:7000,h3:7001"


def test_it_reads_a_sentinel_service_and_database():
    where = addresses.parse("redis-sentinel://s1:26379/mymaster/3?sentinel=s2:26379")
    assert (where.shape, where.service, where.db) == ("sentinel", "mymaster", 3)
    assert where.hosts == (("s1", 26379), ("s2", 26379))


def test_it_takes_credentials_from_the_environment(monkeypatch):
    monkeypatch.setenv("OC_CACHE_USER", "console")
    monkeypatch.setenv("OC_CACHE_PASS", "from-env")
    where = addresses.parse(
        "redis-cluster://h:7000?username_env=OC_CACHE_USER&password_env=OC_CACHE_PASS"
    )
    assert (where.username, where.password) == ("console", "from-env")
    node = addresses.parse("redis://h:6379/0?password_env=OC_CACHE_PASS")
    assert node.node_url == "redis://:from-env@h:6379/0"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("memcached://h:1", "unknown scheme"),
        ("redis-cluster://h:7000/3", "database 0 only"),
        ("redis-cluster://h:7000?seed=nohost", "is not host:port"),
        ("redis-sentinel://h:26379", "name the Sentinel service"),
        ("redis-sentinel://h:26379/svc/x", "is not a number"),
        ("redis-sentinel://h:26379/svc/0?password_env=OC_NOT_SET_ANYWHERE", "is not set"),
    ],
)
def test_it_explains_an_address_it_cannot_use(url, says):
    with pytest.raises(addresses.BadAddress, match=says):
        addresses.parse(url)


def test_it_reports_a_bad_target_url_as_an_unknown_target(settings):
    settings.CACHE_TARGETS = {"odd": "redis-sentinel://h:1"}
    with pytest.raises(targets.UnknownTarget, match="Cache target odd: .*Sentinel service"):
        targets.connect("odd")


def test_it_describes_a_cluster_with_its_primaries(cluster, cluster_servers):
    assert targets.describe(cluster) == "cluster with 3 primaries"
    names = [node.name for node in targets.primaries(cluster)]
    assert sorted(names) == sorted(n.address for n in cluster_servers.nodes)
    client = targets.connect(cluster)
    client.set("routed:{a}", 1)
    client.set("routed:{b}", 2)
    assert sum(node.client.dbsize() for node in targets.primaries(cluster)) == 2


def test_it_describes_a_sentinel_service_with_its_current_primary(sentinel, sentinel_servers):
    primary = sentinel_servers.primary.address
    assert targets.describe(sentinel) == f"sentinel service cache, primary {primary}"
    roles = {node.name: node.role for node in targets.nodes(sentinel)}
    assert roles == {primary: "primary", sentinel_servers.replica.address: "replica"}
    targets.connect(sentinel).set("through-sentinel", 1)
    assert sentinel_servers.primary.client.get("through-sentinel") == b"1"


def test_it_says_a_node_is_one_node():
    assert targets.describe("main") == "one node"


@pytest.mark.parametrize(
    "path", ["redis-cluster://127.0.0.1:{port}", "redis-sentinel://127.0.0.1:{port}/svc/0"]
)
def test_a_target_that_is_down_is_reported_at_once(settings, path):
    url = path.format(port=localservers.free_port())
    settings.CACHE_TARGETS = {"gone": url}
    started = time.monotonic()
    with pytest.raises(targets.TargetUnavailable, match="Cache target gone .* is unreachable"):
        stats.server_stats("gone")
    assert time.monotonic() - started < 2
    targets.forget(url)
