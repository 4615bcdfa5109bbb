"""Walks leave Redis room: each node works on a walk at most `duty` of the time."""

import threading
import time

import pytest

from cachemgr.services import analysis, invalidation, pacing

from .conftest import count


def _server_seconds(client, command: str) -> float:
    """Time Redis itself spent on `command` since the last CONFIG RESETSTAT."""
    return client.info("commandstats").get(f"cmdstat_{command}", {}).get("usec", 0) / 1e6


def _steps_taking(seconds: float, n: int):
    for i in range(n):
        time.sleep(seconds)
        yield i


def test_it_rests_after_each_step_in_proportion_to_the_step():
    started = time.perf_counter()
    steps = list(pacing.paced(_steps_taking(0.02, 5), 0.25, threading.Event()))
    assert steps == [0, 1, 2, 3, 4]
    assert time.perf_counter() - started >= 0.1 * 4 * 0.95  # busy 0.1 s, 3× that at rest


def test_a_stopped_walk_does_not_wait_out_its_rest():
    stop = threading.Event()
    started = time.perf_counter()
    for _ in pacing.paced(_steps_taking(0.05, 2), 0.001, stop):  # rests ~50 s per step
        stop.set()
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize("duty", [0, -0.5, 1.5])
def test_a_duty_outside_0_to_1_is_refused(duty):
    with pytest.raises(pacing.BadDuty, match="above 0 and at most 1"):
        pacing.rest_per_busy_second(duty)


@pytest.mark.django_db
def test_a_pattern_invalidation_keeps_redis_busy_at_most_its_duty(own_redis):
    own_redis.client.mset({f"gone:{i}": b"x" for i in range(20_000)})
    own_redis.client.config_resetstat()
    figures = invalidation.invalidate_pattern("own", "gone:*", "tester", scan_count=200, duty=0.1)
    assert figures["deleted"] == 20_000 and figures["duty"] == 0.1
    assert _server_seconds(own_redis.client, "evalsha") <= 0.1 * figures["seconds"]
    assert count(own_redis.client, "gone:*") == 0


@pytest.mark.django_db
def test_an_exact_analysis_keeps_redis_busy_at_most_its_duty(own_redis):
    own_redis.client.mset({f"ns:{i}": b"x" for i in range(20_000)})
    own_redis.client.config_resetstat()
    started = time.perf_counter()
    row = analysis.analyze("own", count=100, duty=0.1)
    assert row.keys == 20_000
    assert _server_seconds(own_redis.client, "evalsha") <= 0.1 * (time.perf_counter() - started)


@pytest.mark.django_db
def test_a_bad_duty_setting_fails_before_anything_is_deleted(own_redis, settings):
    own_redis.client.mset({f"gone:{i}": b"x" for i in range(100)})
    settings.CACHE_INVALIDATE_DUTY = 2
    with pytest.raises(pacing.BadDuty):
        invalidation.invalidate_pattern("own", "gone:*", "tester")
    assert count(own_redis.client, "gone:*") == 100


def _calls(client, command: str) -> int:
    return client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0)


@pytest.mark.django_db
def test_a_step_runs_scan_chunks_until_its_time_budget_is_spent(own_redis):
    own_redis.client.mset({f"gone:{i}": b"x" for i in range(20_000)})
    own_redis.client.config_resetstat()
    invalidation.invalidate_pattern("own", "gone:1*", "tester", scan_count=50, budget_ms=0)
    one_chunk_each = _calls(own_redis.client, "evalsha")
    own_redis.client.config_resetstat()
    # A budget far above what the whole walk costs: one step or a few do it all.
    figures = invalidation.invalidate_pattern(
        "own", "gone:*", "tester", scan_count=50, budget_ms=1000
    )
    assert one_chunk_each > 200  # 32k buckets, 50 a chunk
    assert _calls(own_redis.client, "evalsha") < one_chunk_each / 10
    assert figures["deleted"] == 20_000 - 11_111 and figures["step_ms"] == 1000
    assert count(own_redis.client, "gone:*") == 0


@pytest.mark.django_db
def test_the_analysis_steps_by_time_budget_too(own_redis):
    own_redis.client.mset({f"ns:{i}": b"x" for i in range(20_000)})
    own_redis.client.config_resetstat()
    assert analysis.analyze("own", count=50, budget_ms=0).keys == 20_000
    one_chunk_each = _calls(own_redis.client, "evalsha")
    own_redis.client.config_resetstat()
    assert analysis.analyze("own", count=50, budget_ms=1000).keys == 20_000
    assert one_chunk_each > 200
    assert _calls(own_redis.client, "evalsha") < one_chunk_each / 10


@pytest.mark.django_db
def test_a_bad_step_budget_fails_before_anything_is_deleted(own_redis, settings):
    own_redis.client.mset({f"gone:{i}": b"x" for i in range(100)})
    settings.CACHE_INVALIDATE_STEP_MS = -1
    with pytest.raises(pacing.BadStepBudget, match="0 to 1000 ms"):
        invalidation.invalidate_pattern("own", "gone:*", "tester")
    assert count(own_redis.client, "gone:*") == 100
