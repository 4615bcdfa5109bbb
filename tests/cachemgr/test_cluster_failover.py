"""A cluster primary that dies under a running pattern invalidation: its replica is
promoted (real processes, cluster-node-timeout 2 s), and the run finishes there."""

import pytest
from redis.cluster import RedisCluster

from cachemgr import targets
from cachemgr.localservers import LocalCluster, Server
from cachemgr.services import invalidation
from opsconsole.models import AuditEvent

pytestmark = pytest.mark.django_db

MATCHING, OTHERS = 60_000, 5_000


@pytest.fixture
def failing_cluster(settings):
    """Target "failing": 3 primaries with a replica each, of this test's own."""
    cluster = LocalCluster(3, replicas=1)
    settings.CACHE_TARGETS = {**settings.CACHE_TARGETS, "failing": cluster.url}
    yield cluster
    targets.forget(cluster.url)
    cluster.stop()


def _role(server: Server) -> list:
    return server.client.role()


def _load(cluster: LocalCluster) -> None:
    client = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    names = [f"gone:{i}" for i in range(MATCHING)] + [f"kept:{i}" for i in range(OTHERS)]
    for start in range(0, len(names), 5000):
        client.mset_nonatomic({name: b"x" for name in names[start : start + 5000]})
    client.close()
    for server in cluster.nodes:
        if _role(server)[0] == b"master":
            assert server.client.wait(1, 10_000) == 1  # its replica has every key


def _keys(servers: list[Server], pattern: str) -> set[bytes]:
    return {k for s in servers for k in s.client.scan_iter(match=pattern, count=5000)}


def test_a_pattern_invalidation_finishes_on_the_promoted_replica(failing_cluster):
    cluster = failing_cluster
    _load(cluster)
    victim = next(s for s in cluster.nodes if _role(s)[0] == b"master")
    replica = next(
        s for s in cluster.nodes if _role(s)[0] == b"slave" and _role(s)[2] == victim.port
    )
    killed_after: list[int] = []

    def kill_a_primary_midway(figures):
        if not killed_after and figures["deleted"] >= 5000:
            victim.stop()  # SIGKILL: whatever it had not replicated is lost
            killed_after.append(figures["deleted"])

    figures = invalidation.invalidate_pattern(
        "failing",
        "gone:*",
        "tester",
        duty=0.2,  # slow enough for the kill to land while the victim still has keys
        progress=kill_a_primary_midway,
    )

    assert killed_after and killed_after[0] < MATCHING
    assert _role(replica)[0] == b"master"  # promoted
    alive = [s for s in cluster.nodes if s is not victim and _role(s)[0] == b"master"]
    assert replica in alive and len(alive) == 3
    assert _keys(alive, "gone:*") == set()
    assert _keys(alive, "kept:*") == {f"kept:{i}".encode() for i in range(OTHERS)}
    assert figures["nodes"][replica.address] > 0  # it went on there
    event = AuditEvent.objects.get(action="cache.invalidate_pattern")
    assert event.outcome == "ok" and event.params["deleted"] >= MATCHING
