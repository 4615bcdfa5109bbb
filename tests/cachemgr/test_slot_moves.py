"""A cluster that reshards under a running pattern invalidation: slots migrated midway
(CLUSTER SETSLOT … IMPORTING / MIGRATING, MIGRATE, SETSLOT … NODE, as redis-cli
--cluster reshard does it), and the run still deletes exactly the matching keys."""

import threading

import pytest
from redis.cluster import RedisCluster

from cachemgr import targets
from cachemgr.localservers import LocalCluster, Server
from cachemgr.services import invalidation
from opsconsole.models import AuditEvent

pytestmark = pytest.mark.django_db

MATCHING, OTHERS = 30_000, 5_000
MOVED_SLOTS = range(0, 300)  # of the first primary (slots 0–5460): ~2 % of the keys


def _node_id(server: Server) -> str:
    return server.client.execute_command("CLUSTER", "MYID").decode()


def migrate_slots(cluster: LocalCluster, slots: range, source: Server, dest: Server) -> None:
    """Move `slots` with their keys from `source` to `dest`, slot by slot."""
    source_id, dest_id = _node_id(source), _node_id(dest)
    for slot in slots:
        dest.client.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        source.client.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dest_id)
        while keys := source.client.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
            source.client.execute_command(
                "MIGRATE", "127.0.0.1", dest.port, "", 0, 5000, "KEYS", *keys
            )
        for node in (dest, source, *[n for n in cluster.nodes if n not in (source, dest)]):
            node.client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dest_id)


def _load(cluster: LocalCluster) -> RedisCluster:
    client = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    names = [f"gone:{i}" for i in range(MATCHING)] + [f"kept:{i}" for i in range(OTHERS)]
    for start in range(0, len(names), 5000):
        client.mset_nonatomic({name: b"x" for name in names[start : start + 5000]})
    return client


def _owner(cluster: LocalCluster, slot: int) -> int:
    """The port of the primary serving `slot` now."""
    for start, end, (_, port, *_) in cluster.nodes[2].client.cluster("slots"):
        if start <= slot <= end:
            return port
    raise AssertionError(f"nobody serves slot {slot}")


def _keys(cluster: LocalCluster, pattern: str) -> set[bytes]:
    return {k for node in cluster.nodes for k in node.client.scan_iter(match=pattern, count=5000)}


@pytest.mark.parametrize("mode", ["steps", "pipeline"])
def test_it_deletes_exactly_the_matching_keys_while_slots_move(resharded, mode):
    cluster = resharded
    source, dest = cluster.nodes[0], cluster.nodes[1]
    _load(cluster).close()
    moved_keys = sum(source.client.cluster("countkeysinslot", s) for s in MOVED_SLOTS)
    assert moved_keys > 300  # the move carries keys, some not walked yet
    resharding = threading.Thread(target=migrate_slots, args=(cluster, MOVED_SLOTS, source, dest))

    def reshard_once_the_run_is_under_way(figures):
        if figures["deleted"] and resharding.ident is None:
            resharding.start()

    figures = invalidation.invalidate_pattern(
        "resharded",
        "gone:*",
        "tester",
        scan_count=50,
        mode=mode,
        duty=0.2,  # slow enough for the move to happen under the walk
        progress=reshard_once_the_run_is_under_way,
    )
    resharding.join(timeout=60)

    assert _owner(cluster, MOVED_SLOTS[-1]) == dest.port  # the move did happen
    assert _keys(cluster, "gone:*") == set()
    assert _keys(cluster, "kept:*") == {f"kept:{i}".encode() for i in range(OTHERS)}
    assert figures["deleted"] == MATCHING
    assert figures["passes"] >= 2  # the move was seen, and the new layout walked again
    event = AuditEvent.objects.get(action="cache.invalidate_pattern")
    assert event.outcome == "ok" and event.params["deleted"] == MATCHING


@pytest.mark.parametrize("mode", ["steps", "pipeline"])
def test_a_migration_left_half_done_ends_the_run_with_what_it_did(resharded, monkeypatch, mode):
    cluster = resharded
    source, dest = cluster.nodes[0], cluster.nodes[1]
    _load(cluster).close()
    # A resharding that stopped midway: slot 0 migrating, half its keys moved already.
    slot = 0
    dest.client.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", _node_id(source))
    source.client.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", _node_id(dest))
    in_slot = source.client.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
    moved = set(in_slot[: len(in_slot) // 2])
    source.client.execute_command("MIGRATE", "127.0.0.1", dest.port, "", 0, 5000, "KEYS", *moved)
    monkeypatch.setattr(invalidation, "SLOTS_SETTLE_WAIT_S", 0.0)

    with pytest.raises(targets.TargetUnavailable, match="still moving after 5 passes"):
        invalidation.invalidate_pattern("resharded", "gone:*", "tester", mode=mode)

    # The importing node refuses to delete keys that are not its own yet (skipped, not a
    # crash); every other matching key is gone, every other key is still there.
    left = {key for key in moved if key.startswith(b"gone:")}
    assert left and _keys(cluster, "gone:*") == left
    assert _keys(cluster, "kept:*") == {f"kept:{i}".encode() for i in range(OTHERS)}
    event = AuditEvent.objects.get(action="cache.invalidate_pattern")
    assert event.outcome == "failed" and event.params["deleted"] == MATCHING - len(left)
