"""Pacing a keyspace walk so that each Redis node stays responsive to everyone else.

A walk (pattern invalidation, exact analysis) is a series of bounded steps per node: SCAN
chunks and the work on the keys they found, run server-side until the step has held the
node its time budget (Redis' own clock, `step_budget_us`). A step caps how long one
command of another client can wait behind it, whatever the keys cost, but steps sent
back to back keep the node busy all the time: on a machine where the nodes share a few
cores with their clients, every other client's command then queues for the CPU as well
as behind the walk. A duty cycle caps that share: after a step that took t seconds, the
walk rests t × (1 − duty) / duty, so the node works on the walk at most `duty` of the
time, whatever its load. The step is timed as the walker sees it (round trip included):
a node slowed down by other work answers later, and is then left alone for longer.
"""

import threading
import time
from collections.abc import Iterator
from typing import TypeVar

from .. import conf

Step = TypeVar("Step")


class BadDuty(ValueError):
    pass


class BadStepBudget(ValueError):
    pass


def step_budget_us(budget_ms: float | None, setting: str) -> int:
    """A step's time budget in µs: `budget_ms` if given, else the setting's (ms). 0 makes
    every step one SCAN chunk, whatever it costs."""
    value = conf.get(setting) if budget_ms is None else budget_ms
    if not 0 <= value <= 1000:
        raise BadStepBudget(
            f"{setting}: a step's time budget is 0 to 1000 ms (not {value}); "
            "Redis serves no one else during a step."
        )
    return round(value * 1000)


def rest_per_busy_second(duty: float) -> float:
    """Seconds of rest after each second of work, for a node busy `duty` of the time."""
    if not 0 < duty <= 1:
        raise BadDuty(f"A duty cycle is a share of the time above 0 and at most 1 (not {duty}).")
    return (1 - duty) / duty


def paced(steps: Iterator[Step], duty: float, stop: threading.Event) -> Iterator[Step]:
    """Each step of `steps`, followed by a rest in proportion to the time the step took.
    The rest ends early when `stop` is set (a cancelled run does not wait out its pause)."""
    rest = rest_per_busy_second(duty)
    while True:
        started = time.perf_counter()
        step = next(steps, None)
        if step is None:
            return
        busy = time.perf_counter() - started
        yield step
        if rest:
            stop.wait(busy * rest)
