"""Shared answers: computed once per TTL however many requests ask at the same moment."""

import threading
import time

import pytest

from opsconsole import health
from opsconsole.shared import SharedAnswer, SharedAnswers


class Counting:
    def __init__(self, seconds: float = 0.0):
        self.calls = 0
        self.seconds = seconds

    def __call__(self, *key):
        self.calls += 1
        time.sleep(self.seconds)
        return (self.calls, *key)


def ask_at_once(answer: SharedAnswer, callers: int) -> list:
    results, start = [], threading.Barrier(callers)

    def ask():
        start.wait()
        results.append(answer.get())

    threads = [threading.Thread(target=ask) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return results


def test_callers_at_the_same_moment_share_one_computation(settings):
    settings.SHARED_READ_S = 5.0
    compute = Counting(seconds=0.2)
    results = ask_at_once(SharedAnswer(compute), callers=8)
    assert compute.calls == 1
    assert results == [(1,)] * 8


def test_the_answer_is_computed_again_once_it_is_older_than_the_ttl(settings):
    settings.SHARED_READ_S = 0.2
    compute = Counting()
    answer = SharedAnswer(compute)
    assert answer.get() == answer.get() == (1,)
    time.sleep(0.3)
    assert answer.get() == (2,)
    answer.forget()
    assert answer.get() == (3,)


def test_without_a_ttl_every_caller_reads_afresh(settings):
    settings.SHARED_READ_S = 0.0
    compute = Counting(seconds=0.05)
    ask_at_once(SharedAnswer(compute), callers=4)
    assert compute.calls == 4


def test_a_failure_is_not_kept(settings):
    settings.SHARED_READ_S = 5.0
    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("down")
        return "up"

    answer = SharedAnswer(flaky)
    with pytest.raises(ConnectionError):
        answer.get()
    assert answer.get() == "up"


def test_each_key_has_its_own_answer(settings):
    settings.SHARED_READ_S = 5.0
    compute = Counting()
    answers = SharedAnswers(compute)
    assert answers.get("a") == (1, "a")
    assert answers.get("b") == (2, "b")
    assert answers.get("a") == (1, "a")


def test_pages_reuse_one_readiness_answer_for_a_few_seconds(settings, celery_worker):
    settings.SHARED_READ_S = 5.0
    health.current.forget()
    first = health.current_readiness()
    assert {check.name for check in first} >= {"database", "broker", "worker"}
    assert health.current_readiness() is first
    health.current.forget()
    assert health.current_readiness() is not first
