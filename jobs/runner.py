"""The runner: every long action in the console goes through here.

`start()` records a Run and hands it to Celery; the Celery task (jobs.tasks)
calls `execute()`, which runs the registered function with a RunContext,
applies the job's policy (exclusive lock, retries with backoff, timeouts,
cancellation) and stores every attempt. `reap()` owns every run that is not
final: it re-publishes a message that never arrived, resumes a run whose worker
died, or ends the run with the reason (docs/jobs.md: run states and who moves them).

Every decision about a run happens under its row lock (SELECT … FOR UPDATE), and a
delivery counts only when it carries the run's current task id, so the reaper and
a late or duplicate delivery never both act on one attempt.
"""

import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django import forms
from django.conf import settings
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.models import Q
from django.utils import timezone

from opsconsole import audit
from opsconsole.actions import audited_action
from opsconsole.celery import app as celery_app
from opsconsole.roles import has_role

from . import locks, registry
from .models import ACTIVE_STATUSES, FINISHED_STATUSES, Run, RunStatus

log = logging.getLogger(__name__)


def heartbeat_s() -> float:
    return float(getattr(settings, "RUN_HEARTBEAT_S", 5.0))


def lost_after_s() -> float:
    """No heartbeat for this long: the worker is gone. Also how late a message may be."""
    return float(getattr(settings, "RUN_LOST_AFTER_S", 60.0))


def queue_timeout_s() -> float:
    """A run no worker has picked up for this long ends `lost` (no worker consumes it)."""
    return float(getattr(settings, "RUN_QUEUE_TIMEOUT_S", 3600.0))


EXECUTE_TASK = "jobs.execute_run"


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


class JobSuperseded(Exception):
    """The reaper gave this attempt up (its heartbeats stopped for too long) and
    another attempt owns the run now: this one stops without writing its outcome."""


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
        raise LaunchRefused(already_running(name, running), running)

    # One transaction (one commit) for the run and its audit event; Celery gets
    # the run only once both are committed.
    try:
        with transaction.atomic():
            run = Run.objects.create(
                kind=spec.kind,
                name=name,
                params=params,
                max_attempts=spec.max_attempts,
                max_resumes=spec.resumes,
                exclusive=spec.exclusive,
                due_at=timezone.now(),
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
        # Two launches of an exclusive job (two tabs, two forms) raced past it: the
        # database let one in; the other is refused before any run is recorded.
        if spec.exclusive and (running := active_run(name)):
            raise LaunchRefused(already_running(name, running), running) from None
        raise
    return run


def already_running(name: str, running: Run) -> str:
    return f"{name} is already running (run #{running.pk})."


def task_id_for(run: Run, attempt: int) -> str:
    """A new Celery task id for `attempt` of `run`: readable, and never reused (workers
    remember revoked ids, and run ids restart in a new database)."""
    return f"run-{run.pk}-{attempt}-{uuid.uuid4().hex[:8]}"


def enqueue(run: Run, countdown: float | None = None) -> None:
    """Hand the run to Celery under `run.celery_task_id`, which the caller has committed;
    a broker failure fails the run with the reason."""
    try:
        publish(run, countdown)
    except Exception as exc:
        # The launch was accepted (and audited) but never reached a worker: end it.
        run.refresh_from_db()
        message = f"Could not enqueue (is the broker up?): {type(exc).__name__}: {exc}"
        _finish(run, RunStatus.FAILED, message, timezone.now())


def publish(run: Run, countdown: float | None = None) -> None:
    """Send the message for the run's current task id (raises when the broker is away)."""
    spec = registry.get(run.name)
    # By name: the runner does not import its own Celery entry points (jobs.tasks).
    celery_app.send_task(
        EXECUTE_TASK,
        args=[run.pk],
        task_id=run.celery_task_id,
        countdown=countdown,
        soft_time_limit=spec.soft_timeout,
        time_limit=spec.hard_timeout,
        headers={"published_at": time.time()},  # the overview's oldest-message age
    )


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
            try:
                celery_app.control.revoke(run.celery_task_id)
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
        self.superseded = threading.Event()
        self._log: list[str] = run.log_tail.splitlines()[-LOG_TAIL_LINES:]
        self._last_flush = 0.0
        self._dirty = False

    @property
    def params(self) -> dict[str, Any]:
        return self.run.params

    def check(self) -> None:
        """Raise if the run was cancelled, given up, or ran past its soft timeout."""
        if self.superseded.is_set():
            raise JobSuperseded(f"attempt {self.run.attempt} was given up by the reaper")
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

    def record_effect(self, **amounts: int) -> None:
        """Add to what this attempt has changed (e.g. keys_deleted=500), committed now,
        so that the work of an attempt killed midway still counts on the run and in
        its outcome (Run.effects adds up every attempt)."""
        effect = self.run.attempts[-1].setdefault("effect", {})
        for name, amount in amounts.items():
            effect[name] = effect.get(name, 0) + int(amount)
        Run.objects.filter(pk=self.run.pk).update(attempts=self.run.attempts)

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
        self._let_go = threading.Lock()

    def let_go(self) -> None:
        """Stop beating and free the lock, once. Called before the attempt's outcome is
        written, so whoever sees the run ended also finds its job free to launch."""
        with self._let_go:
            if self.stopped.is_set():
                return
            self.stopped.set()
            if self.is_alive() and threading.current_thread() is not self:
                self.join(timeout=heartbeat_s() * 2)
            if self.lock_name:
                locks.release(self.lock_name, self.token)

    def run(self) -> None:
        try:
            while not self.stopped.wait(heartbeat_s()):
                self.beat()
        finally:
            connection.close()

    def beat(self) -> None:
        try:
            alive = Run.objects.filter(
                pk=self.ctx.run.pk, status=RunStatus.RUNNING, attempt=self.ctx.run.attempt
            ).update(heartbeat_at=timezone.now())
            if not alive:  # the reaper moved the run on: this attempt must stop
                self.ctx.superseded.set()
            if Run.objects.filter(pk=self.ctx.run.pk, cancel_requested=True).exists():
                self.ctx.cancelled.set()
            if self.lock_name:
                locks.renew(self.lock_name, self.token)
        except Exception:
            log.warning("heartbeat of run %s failed", self.ctx.run.pk, exc_info=True)


class StillRunning(Exception):
    """A delivery of a run whose heartbeat is fresh: its worker may still be alive."""


def _claim(run_id: int, task_id: str | None = None, worker: str = "") -> Run | None:
    """Move the run to `running` for a new attempt; None when it must not run.

    A delivery under another task id than the run's current one is a stale duplicate
    (the reaper re-published the attempt since). Raises StillRunning when the run's
    heartbeat is fresh: a duplicate delivery of the attempt that is running now.
    """
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status in FINISHED_STATUSES:
            return None  # gone, or a duplicate delivery of a finished run
        if task_id and run.celery_task_id and task_id != run.celery_task_id:
            return None
        now = timezone.now()
        if run.status == RunStatus.RUNNING:
            if not _heartbeat_stale(run, now):
                raise StillRunning(run)
            if not _after_worker_lost(run, now):
                return None
        if run.cancel_requested:
            _finish(run, RunStatus.CANCELLED, "", now)
            return None
        run.attempt += 1
        run.status = RunStatus.RUNNING
        run.started_at = run.started_at or now
        run.heartbeat_at = now
        run.due_at = None
        run.worker = worker[:200]
        attempt = {"n": run.attempt, "started_at": now.isoformat()}
        if worker:
            attempt["worker"] = worker
        run.attempts = [*run.attempts, attempt]
        run.save()
    return run


def _heartbeat_stale(run: Run, now) -> bool:
    silent_s = (now - run.heartbeat_at).total_seconds() if run.heartbeat_at else 1e9
    return silent_s >= lost_after_s()


def _where(run: Run) -> str:
    """Where a run got to, in its own progress words (e.g. "copy: batch 20")."""
    if run.progress_message:
        return run.progress_message.split(" — ")[0]
    return f"{run.progress_done} done" if run.progress_done else "its start"


def _after_worker_lost(run: Run, now) -> bool:
    """Close the attempt of a run whose worker died (the caller holds its row lock).

    True when the run may start again from its checkpoints (attempts or resumes left);
    otherwise the run ends `timed_out` (it had outlived its timeout: the hard limit
    killed it) or `lost`, and False.
    """
    overran = (
        run.timeout_seconds
        and run.started_at
        and ((now - run.started_at).total_seconds() > run.timeout_seconds)
    )
    if overran:
        message = f"Killed past its {run.timeout_seconds} s timeout; no heartbeat since."
        _end_attempt(run, "timed_out", message, now)
        _finish(run, RunStatus.TIMED_OUT, message, now)
        return False
    worker = f"worker {run.worker}" if run.worker else "worker"
    _end_attempt(run, "lost", f"{worker} lost at {_where(run)}", now)
    lost = sum(1 for a in run.attempts if a.get("outcome") == "lost")
    if run.attempt < run.max_attempts or lost <= run.max_resumes:
        return True
    message = "The worker stopped sending heartbeats; run marked lost."
    _finish(run, RunStatus.LOST, message, now)
    return False


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


def execute(run_id: int, task_id: str | None = None, worker: str = "") -> str:
    """Run one attempt of a run. Called by the Celery task only.

    `task_id` is the delivered message's id: only the run's current one may start
    an attempt. Nothing to undo: the run row records every attempt.
    """
    close_old_connections()
    try:
        run = _claim(run_id, task_id, worker)
    except StillRunning:
        # A duplicate of the attempt running now. If that attempt's worker has died,
        # the reaper sees its heartbeat go stale and resumes the run: it alone decides.
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
        outcome = _call(spec, ctx, heartbeat.let_go)
    finally:
        heartbeat.let_go()
        close_old_connections()
    return outcome


def _call(spec: registry.JobSpec, ctx: RunContext, let_go: Callable[[], None]) -> str:
    """Run the job function once and record the attempt's outcome; `let_go` (stop the
    heartbeat, free the lock) runs before the outcome is written."""
    run = ctx.run
    try:
        result = spec.func(ctx, dict(run.params)) or {}
        if run.effects:  # what every attempt changed, a killed one's work included
            result = {**result, "effects": run.effects}
        let_go()
        ctx.flush(force=True)
        now = timezone.now()
        _end_attempt(run, "succeeded", "", now)
        _finish(run, RunStatus.SUCCEEDED, "", now, result=result)
    except JobSuperseded:
        return "superseded"  # the attempt that replaced this one writes the outcome
    except JobCancelled:
        let_go()
        ctx.flush(force=True)
        now = timezone.now()
        _end_attempt(run, "cancelled", "", now)
        _finish(run, RunStatus.CANCELLED, "", now)
    except (JobTimedOut, SoftTimeLimitExceeded) as exc:
        let_go()
        ctx.flush(force=True)
        now = timezone.now()
        message = str(exc) or f"ran past its {spec.soft_timeout} s timeout"
        _end_attempt(run, "timed_out", message, now)
        _finish(run, RunStatus.TIMED_OUT, message, now)
    except Exception as exc:
        let_go()
        ctx.flush(force=True)
        now = timezone.now()
        message = f"{type(exc).__name__}: {exc}"
        _end_attempt(run, "failed", message, now)
        run.traceback = traceback.format_exc()[-20000:]
        retryable = not isinstance(exc, PermanentError) and not run.cancel_requested
        if retryable and _tries_used(run) < run.max_attempts:
            delay = spec.backoff_delay(run.attempt)
            run.status = RunStatus.RETRYING
            run.celery_task_id = task_id_for(run, run.attempt + 1)
            run.due_at = now + timedelta(seconds=delay)
            run.error = message
            run.progress_message = f"attempt {run.attempt} failed; retrying in {delay:.1f} s"
            run.save()
            enqueue(run, countdown=delay)
        else:
            _finish(run, RunStatus.FAILED, message, now)
    return run.status


# --- reaping -----------------------------------------------------------------


def _tries_used(run: Run) -> int:
    """Attempts that count against retries: a worker lost midway is not the job failing."""
    return sum(1 for a in run.attempts if a.get("outcome") != "lost")


def reap(now=None) -> list[int]:
    """Own every run that is not final; returns the ids it acted on.

    - `running` with no heartbeat for lost_after_s(): its worker died. The run resumes
      from its checkpoints (a new attempt, re-published) when its policy allows, else
      ends `timed_out` or `lost`, and its lock is freed.
    - `queued` or `retrying` whose message is more than lost_after_s() overdue: the
      message was lost (a broker restarted without persistence, a worker died holding
      it). It is re-published under a new task id, so the old one, should it turn up,
      is a no-op; a run no worker picked up for queue_timeout_s() ends `lost`.
    Each decision is taken under the run's row lock against its current state, so a
    worker's delivery and the reaper (or two reapers) never both act on one attempt.
    """
    now = now or timezone.now()
    late = now - timedelta(seconds=lost_after_s())
    silent = Run.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=late)
    overdue = Run.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RETRYING]).filter(
        Q(due_at__lt=late) | Q(due_at__isnull=True, created_at__lt=late)
    )
    acted = [pk for pk in silent.values_list("pk", flat=True) if _reap_silent(pk, now)]
    acted += [pk for pk in overdue.values_list("pk", flat=True) if _redeliver(pk, now)]
    return acted


def _reap_silent(run_id: int, now) -> bool:
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        if run.status != RunStatus.RUNNING or not _heartbeat_stale(run, now):
            return False  # someone moved it on since the query
        if run.cancel_requested:
            _end_attempt(run, "cancelled", "worker lost while cancelling", now)
            _finish(run, RunStatus.CANCELLED, "", now)
            resumes = False
        else:
            resumes = _after_worker_lost(run, now)
        if resumes:
            run.status = RunStatus.RETRYING
            run.progress_message = f"worker lost at {_where(run)} — resuming"[:300]
            _republish(run, now)
    if not resumes:
        spec = registry.JOBS.get(run.name)
        if spec and spec.exclusive:
            locks.release(spec.name, f"run:{run.pk}")
    return True


def _redeliver(run_id: int, now) -> bool:
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        due = run.due_at or run.created_at
        if run.status not in (RunStatus.QUEUED, RunStatus.RETRYING):
            return False
        if (now - due).total_seconds() < lost_after_s():
            return False
        if run.cancel_requested:
            _finish(run, RunStatus.CANCELLED, "", now)
            return True
        waiting = (now - _waiting_since(run)).total_seconds()
        if waiting > queue_timeout_s():
            message = f"No worker picked it up in {waiting:.0f} s (is a worker running?)."
            _finish(run, RunStatus.LOST, message, now)
            return True
        lines = run.log_tail.splitlines()[-LOG_TAIL_LINES + 1 :]
        run.log_tail = "\n".join([*lines, _stamp(now, "its message was lost; sent again")])
        _republish(run, now)
    return True


def _waiting_since(run: Run):
    ended = run.attempts[-1].get("ended_at") if run.attempts else None
    return datetime.fromisoformat(ended) if ended else run.created_at


def _stamp(now, line: str) -> str:
    return f"{timezone.localtime(now):%H:%M:%S} {line}"


def _republish(run: Run, now) -> None:
    """Give the run's next attempt a new task id and send it once the row is committed."""
    run.celery_task_id = task_id_for(run, run.attempt + 1)
    run.due_at = now
    run.save()
    transaction.on_commit(lambda: _send_again(run))


def _send_again(run: Run) -> None:
    """The reaper's send: with the broker away, the run keeps its state and the next
    pass (one lost-after window later) sends again; only a launch fails on it."""
    try:
        publish(run)
    except Exception:
        log.warning("could not re-send run %s; the reaper tries again", run.pk, exc_info=True)
