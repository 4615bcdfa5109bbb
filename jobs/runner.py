"""The runner: every long action in the console goes through here.

`start()` records a Run and hands it to Celery; the Celery task (jobs.tasks)
calls `execute()`, which runs the registered function with a RunContext,
applies the job's policy (exclusive lock, retries with backoff, timeouts,
cancellation) and stores every attempt. `reap()` closes runs whose worker died.
"""

import logging
import threading
import time
import traceback
import uuid
from datetime import timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.utils import timezone

from opsconsole import audit
from opsconsole.actions import audited_action
from opsconsole.roles import has_role

from . import locks, registry
from .models import ACTIVE_STATUSES, FINISHED_STATUSES, Run, RunStatus

log = logging.getLogger(__name__)


def heartbeat_s() -> float:
    return float(getattr(settings, "RUN_HEARTBEAT_S", 5.0))


def lost_after_s() -> float:
    """No heartbeat for this long: the worker is gone."""
    return float(getattr(settings, "RUN_LOST_AFTER_S", 60.0))


PROGRESS_EVERY_S = 0.5
LOG_TAIL_LINES = 200


class LaunchRefused(Exception):
    """A launch that must not happen (already running, bad parameters, …)."""

    def __init__(self, message: str, run: Run | None = None):
        super().__init__(message)
        self.run = run


class PermanentError(Exception):
    """A failure that retrying cannot fix (missing table, bad configuration):
    the run fails at once instead of using up its attempts."""


class JobCancelled(Exception):
    pass


class JobTimedOut(Exception):
    pass


# The audit rule for long actions (docs/architecture.md): one accepted event at
# launch, one outcome event when the run reaches a final status, both linked to it.
ACCEPTED = "job.start"
ENDED = "job.end"


# --- launching -------------------------------------------------------------


def active_run(name: str) -> Run | None:
    return Run.objects.filter(name=name, status__in=ACTIVE_STATUSES).order_by("-id").first()


@audited_action(ACCEPTED, long=True)
def start(
    name: str,
    params: dict | None = None,
    actor: audit.Actor = None,
    *,
    request_key: str | None = None,
    retry_of: Run | None = None,
    ip_address: str | None = None,
    accepted_event: str | None = ACCEPTED,
) -> Run:
    """Record a Run for job `name` and enqueue it. Returns at once.

    Writes the launch's accepted event (`job.start`, linked to the run) unless
    `accepted_event` is None: then the calling service writes its own accepted
    event and links it to the returned run (one accepted event per launch).
    The run's outcome event (`job.end`) is written when it reaches a final status.

    Raises registry.UnknownJob, or LaunchRefused when the parameters are
    invalid or an exclusive job already runs. A repeated `request_key`
    (a double-submitted form) returns the run it started the first time.
    """
    spec = registry.get(name)
    if request_key and (existing := Run.objects.filter(request_key=request_key).first()):
        return existing
    if not isinstance(actor, str | None) and not has_role(actor, spec.role):
        raise LaunchRefused(f"{name} needs the {spec.role} role.")
    try:
        params = spec.clean_params(params)
    except forms.ValidationError as exc:
        raise LaunchRefused("Invalid parameters: " + "; ".join(exc.messages)) from None
    if spec.exclusive and (running := active_run(name)):
        raise LaunchRefused(f"{name} is already running (run #{running.pk}).", running)

    # One transaction (one commit) for the run and its audit event; Celery gets
    # the run only once both are committed.
    try:
        with transaction.atomic():
            run = Run.objects.create(
                kind=spec.kind,
                name=name,
                params=params,
                max_attempts=spec.max_attempts,
                timeout_seconds=spec.soft_timeout,
                actor=actor if not isinstance(actor, str | None) else None,
                actor_name=audit.actor_label(actor),
                request_key=request_key,
                retry_of=retry_of,
                celery_task_id="",
            )
            run.celery_task_id = task_id_for(run, 1)
            run.save(update_fields=["celery_task_id"])
            if accepted_event:
                audit.write(
                    actor,
                    accepted_event,
                    name,
                    ip_address=ip_address,
                    run=run,
                    params={"params": params, "kind": spec.kind, "run_id": run.pk},
                )
            transaction.on_commit(lambda: enqueue(run))
    except IntegrityError:
        # Two submits of one form raced past the check above: the first one won.
        if request_key and (existing := Run.objects.filter(request_key=request_key).first()):
            return existing
        raise
    return run


def task_id_for(run: Run, attempt: int) -> str:
    """A new Celery task id for `attempt` of `run`: readable, and never reused (workers
    remember revoked ids, and run ids restart in a new database)."""
    return f"run-{run.pk}-{attempt}-{uuid.uuid4().hex[:8]}"


def enqueue(run: Run, countdown: float | None = None) -> None:
    """Hand the run to Celery under `run.celery_task_id`, which the caller has committed;
    a broker failure fails the run with the reason."""
    from .tasks import execute_run

    spec = registry.get(run.name)
    try:
        execute_run.apply_async(
            args=[run.pk],
            task_id=run.celery_task_id,
            countdown=countdown,
            soft_time_limit=spec.soft_timeout,
            time_limit=spec.hard_timeout,
        )
    except Exception as exc:
        # The launch was accepted (and audited) but never reached a worker: end it.
        run.refresh_from_db()
        message = f"Could not enqueue (is the broker up?): {type(exc).__name__}: {exc}"
        _finish(run, RunStatus.FAILED, message, timezone.now())


@audited_action("job.cancel")
def cancel(run: Run, actor: audit.Actor, ip_address: str | None = None) -> Run:
    """Ask a queued or running run to stop. A queued run stops at once; a
    running one at its next progress report. Not undoable (run it again)."""
    if not run.is_active:
        raise LaunchRefused(f"Run #{run.pk} has already ended ({run.status}).", run)
    with audit.record(actor, "job.cancel", run.name, ip_address=ip_address, run=run):
        Run.objects.filter(pk=run.pk).update(cancel_requested=True)
        if run.status == RunStatus.QUEUED or run.status == RunStatus.RETRYING:
            with transaction.atomic():
                stopped = Run.objects.filter(
                    pk=run.pk, status__in=[RunStatus.QUEUED, RunStatus.RETRYING]
                ).update(status=RunStatus.CANCELLED, finished_at=timezone.now())
                if stopped:  # no worker will see it: the outcome is written here
                    run.refresh_from_db()
                    audit_end(run)
        if run.celery_task_id:
            from opsconsole.celery import app

            try:
                app.control.revoke(run.celery_task_id)
            except Exception:  # the cooperative flag still stops it
                log.warning("could not revoke %s", run.celery_task_id, exc_info=True)
    run.refresh_from_db()
    return run


@audited_action(ACCEPTED, long=True)
def retry(run: Run, actor: audit.Actor, ip_address: str | None = None) -> Run:
    """Launch a failed, timed-out, lost or cancelled run again with the same parameters."""
    if run.status == RunStatus.SUCCEEDED or run.is_active:
        raise LaunchRefused(
            f"Run #{run.pk} is {run.status}; only ended, unsuccessful runs can be retried.", run
        )
    return start(run.name, run.params, actor, retry_of=run, ip_address=ip_address)


# --- executing (inside the Celery task) --------------------------------------


class RunContext:
    """What a job function gets: progress, log and cooperative stop checks."""

    def __init__(self, run: Run, soft_timeout: float | None):
        self.run = run
        self.started = time.monotonic()
        self.soft_timeout = soft_timeout
        self.cancelled = threading.Event()
        self._log: list[str] = run.log_tail.splitlines()[-LOG_TAIL_LINES:]
        self._last_flush = 0.0
        self._dirty = False

    @property
    def params(self) -> dict[str, Any]:
        return self.run.params

    def check(self) -> None:
        """Raise if the run was cancelled or ran past its soft timeout."""
        if self.cancelled.is_set():
            raise JobCancelled("cancelled by request")
        if self.soft_timeout and time.monotonic() - self.started > self.soft_timeout:
            raise JobTimedOut(f"ran longer than its {self.soft_timeout:g} s timeout")

    def progress(self, done: int, total: int | None = None, message: str = "") -> None:
        self.run.progress_done = done
        if total is not None:
            self.run.progress_total = total
        if message:
            self.run.progress_message = message[:300]
        self._dirty = True
        self.flush()
        self.check()

    def checkpoint(self, **state) -> None:
        """Commit `state` into the run's result now, so a new attempt can resume from it."""
        self.run.result = {**self.run.result, **state}
        Run.objects.filter(pk=self.run.pk).update(result=self.run.result)

    def log(self, line: str) -> None:
        stamp = timezone.now().strftime("%H:%M:%S")
        self._log.append(f"{stamp} {line}")
        del self._log[:-LOG_TAIL_LINES]
        self._dirty = True
        self.flush()

    def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self._dirty or (not force and now - self._last_flush < PROGRESS_EVERY_S):
            return
        self.run.log_tail = "\n".join(self._log)
        Run.objects.filter(pk=self.run.pk).update(
            progress_done=self.run.progress_done,
            progress_total=self.run.progress_total,
            progress_message=self.run.progress_message,
            log_tail=self.run.log_tail,
        )
        self._last_flush, self._dirty = now, False


class Heartbeat(threading.Thread):
    """Marks the run alive, renews its lock and notices cancellation."""

    def __init__(self, ctx: RunContext, lock_name: str | None, token: str):
        super().__init__(daemon=True, name=f"heartbeat-run-{ctx.run.pk}")
        self.ctx, self.lock_name, self.token = ctx, lock_name, token
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(heartbeat_s()):
                self.beat()
        finally:
            connection.close()

    def beat(self) -> None:
        try:
            Run.objects.filter(pk=self.ctx.run.pk).update(heartbeat_at=timezone.now())
            if Run.objects.filter(pk=self.ctx.run.pk, cancel_requested=True).exists():
                self.ctx.cancelled.set()
            if self.lock_name:
                locks.renew(self.lock_name, self.token)
        except Exception:
            log.warning("heartbeat of run %s failed", self.ctx.run.pk, exc_info=True)


class StillRunning(Exception):
    """A delivery of a run whose heartbeat is fresh: its worker may still be alive."""


def _claim(run_id: int) -> Run | None:
    """Move the run to `running` for a new attempt; None when it must not run.

    Raises StillRunning when the run's heartbeat is fresh: a worker whose child
    process died hands the task back at once, before the heartbeat goes stale.
    """
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status in FINISHED_STATUSES:
            return None  # gone, or a duplicate delivery of a finished run
        now = timezone.now()
        if run.status == RunStatus.RUNNING:
            silent_s = (now - run.heartbeat_at).total_seconds() if run.heartbeat_at else 1e9
            if silent_s < lost_after_s():
                raise StillRunning(run)
            _end_attempt(run, "lost", "worker stopped during this attempt", now)
            if run.attempt >= run.max_attempts:
                _finish(run, RunStatus.LOST, "The worker died and no attempts are left.", now)
                return None
        if run.cancel_requested:
            _finish(run, RunStatus.CANCELLED, "", now)
            return None
        run.attempt += 1
        run.status = RunStatus.RUNNING
        run.started_at = run.started_at or now
        run.heartbeat_at = now
        run.attempts = [*run.attempts, {"n": run.attempt, "started_at": now.isoformat()}]
        run.save()
    return run


def _end_attempt(run: Run, outcome: str, error: str, now) -> None:
    if run.attempts and "ended_at" not in run.attempts[-1]:
        run.attempts[-1].update(ended_at=now.isoformat(), outcome=outcome, error=error[:2000])


def _finish(run: Run, status: str, error: str, now, result: dict | None = None) -> None:
    run.status = status
    run.error = error[:5000]
    run.finished_at = now
    if result is not None:
        run.result = result
    if run.started_at:
        run.duration_ms = int((now - run.started_at).total_seconds() * 1000)
    # The final status and its outcome event commit together: nobody sees one without the other.
    with transaction.atomic():
        run.save()
        audit_end(run)


def audit_end(run: Run) -> None:
    """Write the run's outcome event: its final status, and what it had done
    (progress, checkpoints) in case it stopped midway."""
    audit.write(
        run.actor or run.actor_name,
        ENDED,
        run.name,
        outcome=audit.Outcome.OK if run.status == RunStatus.SUCCEEDED else audit.Outcome.FAILED,
        error=run.error,
        run=run,
        params={
            "status": run.status,
            "attempts": run.attempt,
            "progress": {"done": run.progress_done, "total": run.progress_total},
            "done": run.result,
        },
    )


def execute(run_id: int) -> str:
    """Run one attempt of a run. Called by the Celery task only."""
    close_old_connections()
    try:
        run = _claim(run_id)
    except StillRunning as exc:
        # Look again once the heartbeat would have gone stale: then this run resumes
        # (a new attempt) if its worker died, or is found finished if it did not.
        run = exc.args[0]
        run.celery_task_id = task_id_for(run, run.attempt + 1)
        Run.objects.filter(pk=run.pk).update(celery_task_id=run.celery_task_id)
        enqueue(run, countdown=lost_after_s())
        return "rechecking"
    if run is None:
        return "skipped"
    spec = registry.get(run.name)
    token = f"run:{run.pk}"
    lock_name = spec.name if spec.exclusive else None
    if lock_name and (holder := locks.acquire(lock_name, token)) is not None:
        _end_attempt(run, "failed", f"lock held by {holder or 'another run'}", timezone.now())
        _finish(
            run,
            RunStatus.FAILED,
            f"Another run of {spec.name} holds its lock ({holder}).",
            timezone.now(),
        )
        return run.status

    ctx = RunContext(run, spec.soft_timeout)
    heartbeat = Heartbeat(ctx, lock_name, token)
    heartbeat.start()
    try:
        outcome = _call(spec, ctx)
    finally:
        heartbeat.stopped.set()
        heartbeat.join(timeout=heartbeat_s() * 2)
        if lock_name:
            locks.release(lock_name, token)
        close_old_connections()
    return outcome


def _call(spec: registry.JobSpec, ctx: RunContext) -> str:
    from celery.exceptions import SoftTimeLimitExceeded

    run = ctx.run
    try:
        result = spec.func(ctx, dict(run.params)) or {}
        ctx.flush(force=True)
        now = timezone.now()
        _end_attempt(run, "succeeded", "", now)
        _finish(run, RunStatus.SUCCEEDED, "", now, result=result)
    except JobCancelled:
        ctx.flush(force=True)
        now = timezone.now()
        _end_attempt(run, "cancelled", "", now)
        _finish(run, RunStatus.CANCELLED, "", now)
    except (JobTimedOut, SoftTimeLimitExceeded) as exc:
        ctx.flush(force=True)
        now = timezone.now()
        message = str(exc) or f"ran past its {spec.soft_timeout} s timeout"
        _end_attempt(run, "timed_out", message, now)
        _finish(run, RunStatus.TIMED_OUT, message, now)
    except Exception as exc:
        ctx.flush(force=True)
        now = timezone.now()
        message = f"{type(exc).__name__}: {exc}"
        _end_attempt(run, "failed", message, now)
        run.traceback = traceback.format_exc()[-20000:]
        retryable = not isinstance(exc, PermanentError) and not run.cancel_requested
        if retryable and run.attempt < run.max_attempts:
            delay = spec.backoff_delay(run.attempt)
            run.status = RunStatus.RETRYING
            run.celery_task_id = task_id_for(run, run.attempt + 1)
            run.error = message
            run.progress_message = f"attempt {run.attempt} failed; retrying in {delay:.1f} s"
            run.save()
            enqueue(run, countdown=delay)
        else:
            _finish(run, RunStatus.FAILED, message, now)
    return run.status


# --- reaping -----------------------------------------------------------------


def reap(now=None) -> list[int]:
    """Close runs whose worker is gone (no heartbeat for lost_after_s()): `timed_out`
    when they had outlived their timeout (the hard limit killed them), else `lost`.
    Frees their locks."""
    now = now or timezone.now()
    closed = []
    stale = Run.objects.filter(
        status=RunStatus.RUNNING, heartbeat_at__lt=now - timedelta(seconds=lost_after_s())
    )
    for candidate in stale:
        with transaction.atomic():
            run = Run.objects.select_for_update().get(pk=candidate.pk)
            if run.status != RunStatus.RUNNING:
                continue
            overran = (
                run.timeout_seconds
                and run.started_at
                and ((now - run.started_at).total_seconds() > run.timeout_seconds)
            )
            if overran:
                message = f"Killed past its {run.timeout_seconds} s timeout; no heartbeat since."
                _end_attempt(run, "timed_out", message, now)
                _finish(run, RunStatus.TIMED_OUT, message, now)
            else:
                message = "The worker stopped sending heartbeats; run marked lost."
                _end_attempt(run, "lost", message, now)
                _finish(run, RunStatus.LOST, message, now)
        spec = registry.JOBS.get(run.name)
        if spec and spec.exclusive:
            locks.release(spec.name, f"run:{run.pk}")
        closed.append(run.pk)
    return closed
