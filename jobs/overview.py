"""What the jobs overview shows: schedules, workers, queue depth, stuck runs, the day.

Every operator sees the same facts and the page polls them, so they are read once per
web process per SHARED_READ_S (opsconsole/shared.py): from the workers' snapshots and
the broker's list lengths, never a broadcast to the workers.
"""

from django_celery_beat.models import PeriodicTask

from opsconsole.shared import SharedAnswer

from . import runner, schedules, workers
from . import stats as stats_service


def _read() -> dict:
    tasks = PeriodicTask.objects.select_related("crontab", "interval").order_by("name")
    found, workers_error = workers.workers()
    depths, queue_error = workers.queue_depths()
    return {
        "schedules": [(task, schedules.describe(task)) for task in tasks],
        "workers": found,
        "workers_error": workers_error,
        "snapshot_s": workers.snapshot_s(),
        "gone_after_s": workers.GONE_AFTER_SNAPSHOTS * workers.snapshot_s(),
        "lost_after_s": runner.lost_after_s(),
        "depths": depths,
        "queue_error": queue_error,
        "stuck": list(workers.stuck_runs()),
        "summary": stats_service.recent_summary(hours=24),
    }


_facts = SharedAnswer(_read)


def facts() -> dict:
    return _facts.get()


def forget() -> None:
    """After a change made here (a schedule toggled), the next look reads afresh."""
    _facts.forget()
