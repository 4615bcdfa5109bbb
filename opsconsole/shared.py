"""Answers shared by a web process's requests for a moment.

Fifty operators keep the same pages open, and those pages poll: without sharing, each
poll repeats the same reads of the console's tables, Redis and the warehouses. A
`SharedAnswer` keeps its last result for `SHARED_READ_S` seconds (2 by default; the
tests set 0) and computes it once however many requests ask at the same moment: the
first one computes, the others wait for its result (single flight). An operator sees
figures at most that old, on pages that poll every few seconds anyway.

Only shared, role-independent data goes through here; whatever depends on who asks
(forms, permissions) is rendered per request from it.
"""

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from django.conf import settings
from django.template.loader import render_to_string

T = TypeVar("T")


def ttl_s() -> float:
    return settings.SHARED_READ_S


class SharedAnswer(Generic[T]):
    """The result of `compute()`, reused for `SHARED_READ_S` and computed by one caller
    at a time. An exception is not kept: the callers waiting for it try again."""

    def __init__(self, compute: Callable[[], T], ttl: Callable[[], float] = ttl_s):
        self.compute = compute
        self.ttl = ttl
        self._cond = threading.Condition()
        self._computing = False
        self._value: T | None = None
        self._at: float | None = None

    def get(self) -> T:
        with self._cond:
            while True:
                if self._at is not None and time.monotonic() - self._at < self.ttl():
                    return self._value
                if not self._computing:
                    self._computing = True
                    break
                self._cond.wait()
        try:
            value = self.compute()
        except BaseException:
            self._finish(None, None)
            raise
        self._finish(value, time.monotonic())
        return value

    def forget(self) -> None:
        """The next caller computes afresh (after a change this process made)."""
        with self._cond:
            self._at = None

    def _finish(self, value: T | None, at: float | None) -> None:
        with self._cond:
            self._value, self._at, self._computing = value, at, False
            self._cond.notify_all()


class SharedAnswers(Generic[T]):
    """One `SharedAnswer` per key (a cache target, a warehouse): `compute(key)`."""

    def __init__(self, compute: Callable[[Hashable], T]):
        self.compute = compute
        self._answers: dict[Hashable, SharedAnswer[T]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> T:
        with self._lock:
            answer = self._answers.get(key)
            if answer is None:
                answer = self._answers[key] = SharedAnswer(lambda: self.compute(key))
        return answer.get()

    def forget(self) -> None:
        with self._lock:
            self._answers.clear()


class SharedHTML:
    """A template rendered from a shared answer, rendered again only when the answer is a
    new object: every operator's request between two computations gets the same HTML,
    exactly as fresh as the answer itself. Only for templates that use nothing of the
    request (no user, role, form or CSRF token): it is rendered without one."""

    def __init__(self, template_name: str):
        self.template_name = template_name
        self._lock = threading.Lock()
        self._rendered: tuple[object, str] | None = None  # (the answer, its HTML)

    def render(self, answer: object, context: dict) -> str:
        with self._lock:
            if self._rendered is not None and self._rendered[0] is answer:
                return self._rendered[1]
        html = render_to_string(self.template_name, context)
        with self._lock:
            self._rendered = (answer, html)
        return html
