"""A pattern invalidation whose first attempt was killed midway: the next attempt's
outcome (on the run and in its audit event) counts the killed attempt's deletions."""

from datetime import timedelta

from django.utils import timezone

from cachemgr.services import invalidation
from jobs import runner
from jobs.models import Run
from opsconsole.models import AuditEvent


def test_each_attempts_deletions_are_recorded_on_the_run_and_in_the_outcome(
    transactional_db, scratch
):
    p = scratch.prefix
    scratch.load([f"{p}user:{i}" for i in range(700)])
    now = timezone.now()
    run = Run.objects.create(
        kind="cache",
        name=invalidation.JOB_NAME,
        params={"target": "main", "pattern": f"{p}user:*"},
        actor_name="cli:test",
        status="running",
        attempt=1,
        max_resumes=2,
        # The killed attempt had deleted 500 keys (each round is committed as it goes).
        attempts=[{"n": 1, "started_at": now.isoformat(), "effect": {"keys_deleted": 500}}],
        started_at=now,
        heartbeat_at=now - timedelta(minutes=5),
    )
    assert runner.execute(run.pk) == "succeeded"  # the attempt after the dead worker's
    run.refresh_from_db()
    assert [a["outcome"] for a in run.attempts] == ["lost", "succeeded"]
    assert run.attempts[1]["effect"] == {"keys_deleted": 700}
    assert run.effects == {"keys_deleted": 1200}
    assert run.result["effects"] == {"keys_deleted": 1200}
    event = AuditEvent.objects.get(action="cache.invalidate_pattern", run=run)
    assert event.params["deleted"] == 700 and event.params["deleted_by_earlier_attempts"] == 500
