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
