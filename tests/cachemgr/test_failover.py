"""A Sentinel failover in the middle of the work: real primary killed, replica promoted."""

import time

import pytest

from cachemgr.client import Cache
from cachemgr.services import invalidation
from opsconsole.models import AuditEvent

from .conftest import count


def _load_and_replicate(group, names: list[str]) -> None:
    pipe = group.primary.client.pipeline(transaction=False)
    for i, name in enumerate(names):
        pipe.set(name, b"x")
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    assert group.primary.client.wait(1, 10_000) == 1  # the replica has every key


@pytest.mark.django_db
def test_a_pattern_invalidation_finishes_on_the_promoted_replica(failing_sentinel):
    group = failing_sentinel
    _load_and_replicate(
        group, [f"gone:{i}" for i in range(60_000)] + [f"kept:{i}" for i in range(5000)]
    )
    killed_after: list[int] = []

    def kill_the_primary_midway(figures):
        if not killed_after and figures["deleted"] >= 5000:
            group.primary.stop()  # SIGKILL: whatever it had not replicated is lost
            killed_after.append(figures["deleted"])

    figures = invalidation.invalidate_pattern(
        "failover", "gone:*", "tester", scan_count=100, progress=kill_the_primary_midway
    )
    assert killed_after and killed_after[0] < 60_000
    promoted = group.replica.client
    assert promoted.role()[0] == b"master"
    assert group.current_primary_port() == group.replica.port
    assert count(promoted, "gone:*") == 0
    assert count(promoted, "kept:*") == 5000
    assert figures["nodes"][group.replica.address] > 0  # it went on there
    event = AuditEvent.objects.get(action="cache.invalidate_pattern")
    assert event.outcome == "ok"


def test_the_client_survives_a_failover(failing_sentinel):
    group = failing_sentinel
    cache = Cache(group.url(), counters_flush_s=0, retry_after_s=0.5, version_cache_s=0)
    assert cache.set("ns", "before", {"v": 1})
    deadline = time.monotonic() + 5
    while not group.replica.client.exists(cache.key("ns", "before")):
        assert time.monotonic() < deadline, "the write never reached the replica"
        time.sleep(0.05)
    group.primary.stop()
    deadline = time.monotonic() + 30
    while not cache.set("ns", "after", {"v": 2}):
        assert time.monotonic() < deadline, "the client never reached the promoted replica"
        time.sleep(0.2)
    time.sleep(0.6)  # past retry_after_s: reads go to Redis again, not the local store
    assert cache.get("ns", "before") == {"v": 1}  # replicated before the failover
    assert group.replica.client.get(cache.key("ns", "after")) is not None
    assert group.current_primary_port() == group.replica.port
