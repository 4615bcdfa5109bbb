from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from jobs import locks, runner
from jobs.models import Run
from jobs.registry import UnknownJob
from opsconsole.models import AuditEvent

from . import testjobs
from .conftest import wait_for


def test_it_runs_a_job_and_records_the_result(celery_worker, make_user):
    user = make_user("operator")
    run = wait_for(runner.start("test_ok", {"x": "1"}, user))
    assert run.status == "succeeded"
    assert run.result == {"echo": {"x": "1"}}
    assert run.attempt == 1 and run.attempts[0]["outcome"] == "succeeded"
    assert "hello from the job" in run.log_tail
    assert run.duration_ms is not None and run.finished_at >= run.started_at
    event = AuditEvent.objects.get(action="job.start")
    assert event.run == run and event.actor == user and event.target == "test_ok"


def test_it_retries_with_backoff_and_shows_each_attempt(celery_worker):
    run = wait_for(runner.start("test_flaky", {"succeed_on": "3"}, "cli:test"))
    assert run.status == "succeeded"
    assert [a["outcome"] for a in run.attempts] == ["failed", "failed", "succeeded"]
    assert "attempt 1 failed on purpose" in run.attempts[0]["error"]
    # Backoff doubles: at least 0.3 s·(1-jitter) before attempt 2, 0.6 s·(1-jitter) before 3.
    gaps = [
        datetime.fromisoformat(later["started_at"]) - datetime.fromisoformat(earlier["ended_at"])
        for earlier, later in zip(run.attempts, run.attempts[1:], strict=False)
    ]
    assert gaps[0].total_seconds() >= testjobs.BACKOFF * 0.9
    assert gaps[1].total_seconds() >= 2 * testjobs.BACKOFF * 0.9


def test_it_fails_when_the_attempts_run_out(celery_worker):
    run = wait_for(runner.start("test_flaky", {}, "cli:test"))
    assert run.status == "failed"
    assert len(run.attempts) == 4
    assert "RuntimeError: attempt 4 failed on purpose" in run.error
    assert "Traceback" in run.traceback


def test_it_refuses_a_concurrent_launch_of_an_exclusive_job(celery_worker, release_slow_jobs):
    first = runner.start("test_slow", {}, "cli:test")
    wait_for(first, statuses=("running",))
    with pytest.raises(runner.LaunchRefused) as refused:
        runner.start("test_slow", {}, "cli:test")
    assert refused.value.run == first
    assert f"run #{first.pk}" in str(refused.value)
    assert locks.holder("test_slow") == f"run:{first.pk}"


@pytest.mark.parametrize(("params", "status"), [({}, "succeeded"), ({"fail": "1"}, "failed")])
def test_it_releases_the_lock_when_the_run_ends(celery_worker, release_slow_jobs, params, status):
    run = runner.start("test_slow", params, "cli:test")
    wait_for(run, statuses=("running",))
    release_slow_jobs.set()
    assert wait_for(run).status == status
    assert locks.holder("test_slow") is None


def test_it_cancels_a_running_run_and_frees_its_lock(celery_worker, release_slow_jobs):
    run = runner.start("test_slow", {}, "cli:test")
    wait_for(run, statuses=("running",))
    runner.cancel(run, "cli:test")
    assert wait_for(run).status == "cancelled"
    assert locks.holder("test_slow") is None
    assert AuditEvent.objects.filter(action="job.cancel", run=run).count() == 1


def test_it_cancels_a_queued_run_before_it_starts(transactional_db):
    run = Run.objects.create(name="test_ok", actor_name="x")  # queued, not sent to Celery
    runner.cancel(run, "cli:test")
    run.refresh_from_db()
    assert run.status == "cancelled" and run.attempt == 0
    assert runner.execute(run.pk) == "skipped"  # a late delivery does nothing
    run.refresh_from_db()
    assert run.status == "cancelled"


def test_it_marks_a_run_past_its_timeout_as_timed_out(celery_worker):
    run = wait_for(runner.start("test_timeout", {}, "cli:test"))
    assert run.status == "timed_out"
    assert "timeout" in run.error


def test_the_reaper_marks_a_dead_workers_run_lost_and_frees_its_lock(transactional_db):
    run = Run.objects.create(
        name="test_slow",
        actor_name="cli:test",
        status="running",
        attempt=1,
        attempts=[{"n": 1, "started_at": timezone.now().isoformat()}],
        started_at=timezone.now() - timedelta(minutes=5),
        heartbeat_at=timezone.now() - timedelta(minutes=3),
    )
    assert locks.acquire("test_slow", f"run:{run.pk}") is None
    assert runner.reap() == [run.pk]
    run.refresh_from_db()
    assert run.status == "lost"
    assert run.attempts[0]["outcome"] == "lost"
    assert locks.holder("test_slow") is None


def test_the_reaper_marks_a_killed_overrunning_run_timed_out(transactional_db):
    run = Run.objects.create(
        name="test_ok",
        actor_name="cli:test",
        status="running",
        attempt=1,
        timeout_seconds=60,
        started_at=timezone.now() - timedelta(minutes=10),
        heartbeat_at=timezone.now() - timedelta(minutes=8),
    )
    runner.reap()
    run.refresh_from_db()
    assert run.status == "timed_out" and "60 s timeout" in run.error


def test_a_redelivered_run_starts_a_new_attempt(transactional_db):
    run = Run.objects.create(
        name="test_ok",
        actor_name="cli:test",
        status="running",
        attempt=1,
        max_attempts=2,
        attempts=[{"n": 1, "started_at": timezone.now().isoformat()}],
        started_at=timezone.now() - timedelta(minutes=5),
        heartbeat_at=timezone.now() - timedelta(minutes=3),
    )
    assert runner.execute(run.pk) == "succeeded"
    run.refresh_from_db()
    assert [a["outcome"] for a in run.attempts] == ["lost", "succeeded"]


def test_a_duplicate_delivery_of_a_live_run_looks_again_later(transactional_db):
    run = Run.objects.create(
        name="test_ok",
        actor_name="cli:test",
        status="running",
        attempt=1,
        heartbeat_at=timezone.now(),
    )
    assert runner.execute(run.pk) == "rechecking"
    run.refresh_from_db()
    assert run.status == "running" and run.attempt == 1


def test_it_refuses_unknown_jobs_and_bad_parameters(transactional_db):
    with pytest.raises(UnknownJob):
        runner.start("no_such_job", {}, "cli:test")
    with pytest.raises(runner.LaunchRefused, match="batch_size"):
        runner.start("table_sync", {"batch_size": "lots"}, "cli:test")
    assert not Run.objects.exists()


def test_a_repeated_request_key_returns_the_first_run(transactional_db):
    first = runner.start("test_ok", {}, "cli:test", request_key="form-123")
    second = runner.start("test_ok", {}, "cli:test", request_key="form-123")
    assert first == second
    assert Run.objects.count() == 1


def test_it_refuses_to_retry_a_succeeded_run(celery_worker):
    run = wait_for(runner.start("test_ok", {}, "cli:test"))
    with pytest.raises(runner.LaunchRefused, match="only ended, unsuccessful runs"):
        runner.retry(run, "cli:test")


def test_a_retry_is_a_new_run_linked_to_the_failed_one(celery_worker):
    failed = wait_for(runner.start("test_flaky", {}, "cli:test"))
    again = runner.retry(failed, "cli:test")
    assert again.retry_of == failed and again.params == failed.params
    assert wait_for(again).status == "failed"


def drop_broker_connections(app):
    app._pool = None
    app.amqp._producer_pool = None


def test_a_broker_outage_fails_the_launch_with_the_reason(transactional_db):
    from opsconsole.celery import app

    saved = app.conf.broker_url, app.conf.task_publish_retry
    app.conf.broker_url, app.conf.task_publish_retry = "redis://127.0.0.1:1/0", False
    drop_broker_connections(app)
    try:
        run = runner.start("test_ok", {}, "cli:test")
    finally:
        app.conf.broker_url, app.conf.task_publish_retry = saved
        drop_broker_connections(app)
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error.startswith("Could not enqueue (is the broker up?)")
    # Accepted, then ended: the audit log does not say the launch simply went well.
    events = AuditEvent.objects.filter(run=run).order_by("id")
    assert [(e.action, e.outcome) for e in events] == [("job.start", "ok"), ("job.end", "failed")]
    assert events[1].params["status"] == "failed" and "Could not enqueue" in events[1].error


def test_it_refuses_a_user_below_the_jobs_role(transactional_db, make_user):
    with pytest.raises(runner.LaunchRefused, match="needs the operator role"):
        runner.start("test_ok", {}, make_user("viewer"))
    assert not Run.objects.exists()
