"""Workers and queues as the console sees them, without asking a worker anything.

A page must never wait on a worker. So every worker writes a snapshot of itself to
the broker's Redis every WORKER_SNAPSHOT_S seconds (a thread in the worker's main
process, started on Celery's `worker_ready` signal), and counts its outcomes there;
pages read those keys and the queues' lengths, which Redis answers in a millisecond.
A worker whose snapshots stop is shown as gone after GONE_AFTER_SNAPSHOTS periods.

The same thread runs the runner's reaper, at most once per period across all
workers (a SET NX with an expiry elects the worker that does it this period).
"""

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

import redis
from celery.worker import state as worker_state
from django.conf import settings
from django.db import connection
from django.utils import timezone

from opsconsole.celery import app

from . import locks, runner
from .models import ACTIVE_STATUSES, Run, RunStatus

log = logging.getLogger(__name__)

GONE_AFTER_SNAPSHOTS = 3
FORGET_AFTER_S = 24 * 3600  # a gone worker leaves the overview after a day


def snapshot_s() -> float:
    return float(getattr(settings, "WORKER_SNAPSHOT_S", 2.0))


def _key(*parts: str) -> str:
    return settings.KEY_PREFIX + ":".join(("workers", *parts))


# --- written by the workers --------------------------------------------------


def count_outcome(hostname: str, outcome: str) -> None:
    """Count one finished delivery for the worker `hostname` (processed, and failed)."""
    if not hostname:
        return
    with locks.client().pipeline(transaction=False) as pipe:
        pipe.hincrby(_key("counts", hostname), "processed", 1)
        if outcome in (RunStatus.FAILED, RunStatus.TIMED_OUT):
            pipe.hincrby(_key("counts", hostname), "failed", 1)
        pipe.expire(_key("counts", hostname), FORGET_AFTER_S)
        pipe.execute()


def held_runs() -> list[int]:
    """Runs this worker process is executing now (its active jobs.execute_run requests)."""
    held = []
    for request in list(worker_state.active_requests):
        if request.task_name == runner.EXECUTE_TASK and request.args:
            held.append(int(request.args[0]))
    return sorted(held)


def write_snapshot(hostname: str, concurrency: int, stopping: bool = False) -> None:
    """Publish what this worker is doing now; readers trust it for a few periods."""
    now = time.time()
    snapshot = {
        "hostname": hostname,
        "pid": os.getpid(),
        "at": now,
        "concurrency": concurrency,
        "active": len(worker_state.active_requests),
        "runs": held_runs(),
        "load": list(os.getloadavg()),
        "stopping": stopping,
    }
    with locks.client().pipeline(transaction=False) as pipe:
        pipe.set(_key("snapshot", hostname), json.dumps(snapshot), ex=FORGET_AFTER_S)
        pipe.zadd(_key("seen"), {hostname: now})
        pipe.zremrangebyscore(_key("seen"), 0, now - FORGET_AFTER_S)
        pipe.execute()


def reap_if_elected(hostname: str) -> list[int]:
    """Run the reaper unless another worker did in this period."""
    period_ms = int(snapshot_s() * 1000)
    if not locks.client().set(_key("reaper"), hostname, nx=True, px=period_ms):
        return []
    try:
        return runner.reap()
    finally:
        connection.close()  # this thread's connection must not outlive the period


class Snapshots(threading.Thread):
    """The worker's own reporter: snapshot and reaper every period until stopped."""

    def __init__(self, hostname: str, concurrency: int, reaps: bool = True):
        super().__init__(daemon=True, name="opsconsole-worker-snapshots")
        self.hostname, self.concurrency, self.reaps = hostname, concurrency, reaps
        self.stopped = threading.Event()

    def run(self) -> None:
        while True:
            try:
                write_snapshot(self.hostname, self.concurrency, stopping=self.stopped.is_set())
                if self.stopped.is_set():
                    return
                if self.reaps:
                    reap_if_elected(self.hostname)
            except Exception:  # Redis or the database away for a moment: try next period
                log.warning("worker snapshot or reap failed", exc_info=True)
            self.stopped.wait(snapshot_s())


# --- read by the pages -------------------------------------------------------


@dataclass
class Worker:
    hostname: str
    last_seen: float
    gone: bool
    concurrency: int = 0
    active: int = 0
    processed: int = 0
    failed: int = 0
    load: list[float] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    stopping: bool = False

    @property
    def seconds_ago(self) -> float:
        return max(0.0, time.time() - self.last_seen)

    @property
    def load_text(self) -> str:
        return " ".join(f"{x:.2f}" for x in self.load)


def workers() -> tuple[list[Worker], str]:
    """Every worker seen in the last day, from their snapshots; and an error text."""
    client = locks.client()
    try:
        names = [name.decode() for name in client.zrange(_key("seen"), 0, -1)]
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.get(_key("snapshot", name))
                pipe.hgetall(_key("counts", name))
            replies = pipe.execute()
    except redis.RedisError as exc:
        return [], f"{type(exc).__name__}: {exc}"
    gone_after = GONE_AFTER_SNAPSHOTS * snapshot_s()
    found = []
    for name, raw, counts in zip(names, replies[::2], replies[1::2], strict=True):
        if raw is None:
            continue
        snap = json.loads(raw)
        found.append(
            Worker(
                hostname=name,
                last_seen=snap["at"],
                gone=snap.get("stopping", False) or time.time() - snap["at"] > gone_after,
                concurrency=snap.get("concurrency", 0),
                active=snap.get("active", 0),
                processed=int(counts.get(b"processed", 0)),
                failed=int(counts.get(b"failed", 0)),
                load=snap.get("load", []),
                stopping=snap.get("stopping", False),
            )
        )
    _attach_runs(found)
    found.sort(key=lambda w: (w.gone, w.hostname))
    return found, ""


def _attach_runs(found: list[Worker]) -> None:
    """The runs each worker holds, from the runs' own rows (one query)."""
    by_name = {w.hostname: w for w in found}
    running = Run.objects.filter(status=RunStatus.RUNNING, worker__in=list(by_name))
    for run in running.only("id", "name", "kind", "worker", "progress_message", "status"):
        by_name[run.worker].runs.append(run)


def live_workers() -> list[str]:
    """Names of the workers whose snapshot is fresh (what readiness needs)."""
    found, error = workers()
    if error:
        raise RuntimeError(error)
    return [w.hostname for w in found if not w.gone]


def _queues() -> list[str]:
    return sorted({app.conf.task_default_queue, *(q.name for q in app.amqp.queues.values())})


def queue_depths() -> tuple[dict[str, dict], str]:
    """Per queue: messages waiting (LLEN) and the oldest one's age in seconds.

    The Redis transport pushes on the left and pops on the right, so the oldest
    waiting message is the list's last element; the runner stamps `published_at`.
    """
    queues = _queues()
    try:
        with locks.client().pipeline(transaction=False) as pipe:
            for name in queues:
                pipe.llen(name)
                pipe.lindex(name, -1)
            replies = pipe.execute()
    except redis.RedisError as exc:
        return {}, f"{type(exc).__name__}: {exc}"
    depths = {}
    for name, length, oldest in zip(queues, replies[::2], replies[1::2], strict=True):
        depths[name] = {"waiting": length, "oldest_age_s": _age(oldest)}
    return depths, ""


def _age(raw: bytes | None) -> float | None:
    if raw is None:
        return None
    try:
        published = json.loads(raw)["headers"].get("published_at")
    except (ValueError, KeyError, TypeError):
        return None
    return round(time.time() - published, 1) if published else None


def stuck_runs(now=None) -> list[Run]:
    """Runs that need the reaper (or are past their timeout): running with no heartbeat
    for the lost-after window or past their timeout, or queued/retrying whose message
    is overdue by that window."""
    now = now or timezone.now()
    late = now - timedelta(seconds=runner.lost_after_s())
    stuck = []
    for run in Run.objects.filter(status__in=ACTIVE_STATUSES).order_by("id")[:500]:
        if run.status == RunStatus.RUNNING:
            silent = run.heartbeat_at is None or run.heartbeat_at < late
            overran = (
                run.timeout_seconds
                and run.started_at
                and (now - run.started_at).total_seconds() > run.timeout_seconds
            )
            if silent or overran:
                stuck.append(run)
        elif (run.due_at or run.created_at) < late:
            stuck.append(run)
    return stuck
