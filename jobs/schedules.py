"""Default beat schedules, copied into django-celery-beat's tables once.

After that the rows belong to the operators: editing or disabling a schedule
in the console is never overwritten by a deploy.
"""

import json

from celery.schedules import crontab

from . import registry

REAPER_EVERY_S = 60

# Plain periodic Celery tasks (no Run row each tick): (name, task, schedule, description).
PERIODIC_TASKS: list[tuple[str, str, object, str]] = [
    (
        "jobs: reap lost runs",
        "jobs.reap_runs",
        REAPER_EVERY_S,
        "Marks runs whose worker stopped as lost and frees their locks.",
    ),
]


def periodic(name: str, task: str, schedule, description: str = "") -> None:
    """Declare a default beat entry for a plain Celery task (call from a jobdefs module)."""
    PERIODIC_TASKS.append((name, task, schedule, description))


def install_default_schedules() -> list[str]:
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    created = []

    def ensure(name: str, task: str, schedule, args=(), kwargs=None, description=""):
        if PeriodicTask.objects.filter(name=name).exists():
            return
        fields = {"task": task, "args": json.dumps(list(args)), "kwargs": json.dumps(kwargs or {})}
        if isinstance(schedule, crontab):
            fields["crontab"], _ = CrontabSchedule.objects.get_or_create(
                minute=schedule._orig_minute,
                hour=schedule._orig_hour,
                day_of_week=schedule._orig_day_of_week,
                day_of_month=schedule._orig_day_of_month,
                month_of_year=schedule._orig_month_of_year,
            )
        else:
            fields["interval"], _ = IntervalSchedule.objects.get_or_create(
                every=int(schedule), period=IntervalSchedule.SECONDS
            )
        PeriodicTask.objects.create(name=name, description=description, **fields)
        created.append(name)

    ensure(
        "jobs: reap lost runs",
        "jobs.reap_runs",
        REAPER_EVERY_S,
        description="Marks runs whose worker stopped as lost and frees their locks.",
    )
    for spec in registry.JOBS.values():
        if spec.schedule is not None:
            ensure(
                f"job: {spec.name}",
                "jobs.launch_scheduled",
                spec.schedule,
                args=[spec.name],
                kwargs=spec.schedule_params,
                description=spec.description,
            )
    return created
