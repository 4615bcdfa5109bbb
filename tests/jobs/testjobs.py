"""Jobs registered for the tests only: they misbehave on purpose."""

import threading
import time

from jobs.registry import JOBS, job

BACKOFF = 0.3
released = threading.Event()


def register_once(name, **policy):
    def wrap(func):
        return func if name in JOBS else job(name, **policy)(func)

    return wrap


@register_once("test_ok")
def ok(ctx, params):
    ctx.progress(1, 1, "done")
    ctx.log("hello from the job")
    return {"echo": params}


@register_once("test_flaky", retries=3, backoff=BACKOFF, backoff_max=1, jitter=0.1)
def flaky(ctx, params):
    """Fails until attempt `succeed_on`."""
    if ctx.run.attempt < int(params.get("succeed_on", 99)):
        raise RuntimeError(f"attempt {ctx.run.attempt} failed on purpose")
    return {"attempt": ctx.run.attempt}


@register_once("test_slow", exclusive=True, soft_timeout=30)
def slow(ctx, params):
    """Runs until the test releases it (or it is cancelled)."""
    deadline = time.monotonic() + float(params.get("seconds", 20))
    step = 0
    while time.monotonic() < deadline and not released.is_set():
        step += 1
        ctx.progress(step, None, "working")
        time.sleep(0.05)
    if params.get("fail"):
        raise RuntimeError("failed on purpose")
    return {"steps": step}


@register_once("test_timeout", soft_timeout=0.5)
def too_long(ctx, params):
    while True:
        ctx.progress(0, None, "never finishing")
        time.sleep(0.05)


WAIT_BEFORE_RETRY_S = 4.0


@register_once(
    "test_exclusive_flaky",
    exclusive=True,
    retries=2,
    backoff=WAIT_BEFORE_RETRY_S,
    backoff_max=WAIT_BEFORE_RETRY_S,
    jitter=0,
)
def exclusive_flaky(ctx, params):
    """Fails its first attempt, then waits WAIT_BEFORE_RETRY_S to retry (a broker restart
    in that window loses the retry's message)."""
    if ctx.run.attempt < int(params.get("succeed_on", 2)):
        raise RuntimeError(f"attempt {ctx.run.attempt} failed on purpose")
    return {"attempt": ctx.run.attempt}


@register_once("test_busy")
def busy(ctx, params):
    """Keeps a worker busy for `seconds`."""
    deadline = time.monotonic() + float(params.get("seconds", 10))
    step = 0
    while time.monotonic() < deadline:
        step += 1
        ctx.progress(step, None, "busy")
        time.sleep(0.05)
    return {"steps": step}
