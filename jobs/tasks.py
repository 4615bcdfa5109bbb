"""Celery entry points: a few lines each; the work lives in jobs.runner."""

from celery import shared_task

from . import runner


@shared_task(bind=True, name=runner.EXECUTE_TASK)
def execute_run(self, run_id: int) -> str:
    return runner.execute(run_id, task_id=self.request.id, worker=self.request.hostname or "")


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
