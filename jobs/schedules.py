"""Default beat schedules, copied into django-celery-beat's tables once.

After that the rows belong to the operators: editing or disabling a schedule
in the console is never overwritten by a deploy.
"""

import json

from celery.schedules import crontab
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from opsconsole import audit
from opsconsole.actions import audited_action

from . import registry

REAPER_EVERY_S = 60

# Plain periodic Celery tasks (no Run row each tick): (name, task, schedule, description).
PERIODIC_TASKS: list[tuple[str, str, object, str]] = [
    (
        "jobs: reap lost runs",
        "jobs.reap_runs",
        REAPER_EVERY_S,
        "Resumes or ends runs whose worker stopped, re-sends messages that never arrived "
        "(the workers also run it every few seconds; this entry is the backstop).",
    ),
]


def periodic(name: str, task: str, schedule, description: str = "") -> None:
    """Declare a default beat entry for a plain Celery task (call from a jobdefs module)."""
    PERIODIC_TASKS.append((name, task, schedule, description))


def ensure_periodic_task(
    name: str, task: str, schedule, args=(), kwargs=None, description: str = ""
) -> bool:
    """Create the beat entry `name` unless it exists (then it is the operators')."""
    if PeriodicTask.objects.filter(name=name).exists():
        return False
    fields = {"task": task, "args": json.dumps(list(args)), "kwargs": json.dumps(kwargs or {})}
    if isinstance(schedule, crontab):
        # django-celery-beat's own translation (it finds an equal row or builds one).
        fields["crontab"] = CrontabSchedule.from_schedule(schedule)
        if fields["crontab"].pk is None:
            fields["crontab"].save()
    else:
        fields["interval"], _ = IntervalSchedule.objects.get_or_create(
            every=int(schedule), period=IntervalSchedule.SECONDS
        )
    PeriodicTask.objects.create(name=name, description=description, **fields)
    return True


def install_default_schedules() -> list[str]:
    created = [
        name
        for name, task, schedule, description in PERIODIC_TASKS
        if ensure_periodic_task(name, task, schedule, description=description)
    ]
    for spec in registry.JOBS.values():
        if spec.schedule is not None:
            name = f"job: {spec.name}"
            if ensure_periodic_task(
                name,
                "jobs.launch_scheduled",
                spec.schedule,
                args=[spec.name],
                kwargs=spec.schedule_params,
                description=spec.description,
            ):
                created.append(name)
    return created


def describe(task) -> str:
    """A schedule in operator words: the crontab fields, or "every N s"."""
    if task.crontab_id:
        c = task.crontab
        return f"{c.minute} {c.hour} {c.day_of_month} {c.month_of_year} {c.day_of_week}"
    if task.interval_id:
        return f"every {task.interval.every} {task.interval.period}"
    return "one-off" if task.one_off else "—"


@audited_action("schedule.enable")
def set_enabled(task, enabled: bool, actor, ip_address=None) -> None:
    """Enable or disable a beat entry. Undo: the opposite call."""
    with audit.record(
        actor,
        "schedule.enable" if enabled else "schedule.disable",
        task.name,
        ip_address=ip_address,
        previous=task.enabled,
    ):
        task.enabled = enabled
        task.save(update_fields=["enabled"])


@audited_action("schedule.edit")
def set_crontab(task, fields: dict, actor, ip_address=None) -> None:
    """Point a beat entry at the crontab `fields` (minute, hour, …).

    Undo: call again with the previous fields (kept in the audit event).
    """
    with audit.record(
        actor,
        "schedule.edit",
        task.name,
        ip_address=ip_address,
        previous=describe(task),
        crontab=fields,
    ):
        schedule, _ = CrontabSchedule.objects.get_or_create(**fields)
        task.crontab, task.interval = schedule, None
        task.save(update_fields=["crontab", "interval"])
