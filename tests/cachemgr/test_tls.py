"""TLS targets (rediss://, rediss-cluster://) against real servers listening with TLS only."""

import tempfile
from pathlib import Path

import pytest

from cachemgr import addresses, targets
from cachemgr.localservers import LocalCluster, Server, TLSFiles
from cachemgr.services import analysis, invalidation, stats

pytestmark = pytest.mark.django_db


@pytest.fixture
def tls_node(settings):
    directory = Path(tempfile.mkdtemp(prefix="oc-tls-"))
    files = TLSFiles(directory)
    server = Server(directory, tls=files)
    url = f"rediss://127.0.0.1:{server.port}/0?ssl_ca_certs={files.ca}"
    settings.CACHE_TARGETS = {"tls": url}
    yield server
    targets.forget(url)
    server.stop()


@pytest.fixture
def tls_cluster(settings):
    cluster = LocalCluster(3, tls=True)
    settings.CACHE_TARGETS = {"tls-cluster": cluster.url}
    yield cluster
    targets.forget(cluster.url)
    cluster.stop()


def test_a_tls_node_is_reached_with_its_ca(tls_node):
    tls_node.client.mset({f"t:{i}": i for i in range(100)} | {"keep": 1})
    assert stats.server_stats("tls")["keys"] == 101
    assert invalidation.invalidate_pattern("tls", "t:*", "tester")["deleted"] == 100
    assert tls_node.client.dbsize() == 1


def test_a_tls_cluster_is_walked_on_every_primary(tls_cluster):
    assert addresses.parse(tls_cluster.url).tls
    assert targets.describe("tls-cluster") == "cluster with 3 primaries"
    targets.connect("tls-cluster").mset_nonatomic({f"t:{i}": i for i in range(300)})
    assert analysis.analyze("tls-cluster").keys == 300
    assert invalidation.invalidate_pattern("tls-cluster", "t:*", "tester")["deleted"] == 300


def test_tls_options_need_a_tls_scheme():
    with pytest.raises(addresses.BadAddress, match="need a rediss"):
        addresses.parse("redis-cluster://h:7000?ssl_ca_certs=/ca.crt")
