"""Celery entry points: a few lines each; the work lives in jobs.runner."""

from celery import shared_task

from . import runner


@shared_task(name="jobs.execute_run", acks_late=True, reject_on_worker_lost=True)
def execute_run(run_id: int) -> str:
    return runner.execute(run_id)


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
