"""Celery entry points: a few lines each; the work lives in jobs.runner."""

from celery import shared_task
from celery.signals import worker_ready, worker_shutdown

from . import runner, workers

_snapshots: list[workers.Snapshots] = []


@shared_task(bind=True, name=runner.EXECUTE_TASK)
def execute_run(self, run_id: int) -> str:
    outcome = runner.execute(run_id, task_id=self.request.id, worker=self.request.hostname or "")
    workers.count_outcome(self.request.hostname or "", outcome)
    return outcome


@shared_task(name="jobs.launch_scheduled")
def launch_scheduled(job_name: str, **params) -> int | None:
    """What beat calls: a scheduled launch is an ordinary run, actor "schedule"."""
    try:
        return runner.start(job_name, params, actor=f"schedule:{job_name}").pk
    except runner.LaunchRefused:
        return None  # the previous scheduled run is still going; skip this tick


@shared_task(name="jobs.reap_runs")
def reap_runs() -> list[int]:
    return runner.reap()


@worker_ready.connect
def start_snapshots(sender, **kwargs) -> None:
    """A worker (its main process) reports itself and reaps until it stops."""
    concurrency = getattr(sender.controller, "concurrency", 0) or 0
    reporter = workers.Snapshots(sender.hostname, int(concurrency))
    reporter.start()
    _snapshots.append(reporter)


@worker_shutdown.connect
def stop_snapshots(**kwargs) -> None:
    for reporter in _snapshots:
        reporter.stopped.set()
        reporter.join(timeout=5)
