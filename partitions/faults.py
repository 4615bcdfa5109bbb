"""Fault injection points for the resilience tests: a worker that dies at copy
batch N (or at the swap) on attempt K, or any action a test wants to run right
there (start a writer, corrupt a copy). Nothing is armed outside tests."""

from collections.abc import Callable
from dataclasses import dataclass


class WorkerDied(Exception):
    """Stands in for a killed worker: the migration is left as it was, and the
    job's next attempt resumes it from its checkpoints."""


@dataclass
class Fault:
    point: str
    n: int
    attempt: int | None
    action: Callable[[], None] | None


ARMED: list[Fault] = []


def arm(
    point: str, n: int = 0, attempt: int | None = 1, action: Callable[[], None] | None = None
) -> None:
    """At `point` number `n` on `attempt` (any when None): run `action`, or die."""
    ARMED.append(Fault(point, n, attempt, action))


def disarm() -> None:
    ARMED.clear()


def trip(point: str, n: int, attempt: int) -> None:
    for fault in list(ARMED):
        if fault.point == point and fault.n == n and fault.attempt in (None, attempt):
            if fault.action is None:
                raise WorkerDied(f"simulated worker death at {point} {n} (attempt {attempt})")
            fault.action()
