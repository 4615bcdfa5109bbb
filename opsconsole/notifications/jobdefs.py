"""The notifications' beat task: the readiness watch (deliveries are not jobs: each is a
Delivery row and one Celery task per attempt, see dispatch)."""

from jobs.schedules import periodic

from .readiness import WATCH_TASK

periodic(
    "notifications: readiness watch",
    WATCH_TASK,
    60,
    "Tells the readiness.failing subscribers once /readyz has failed for "
    "NOTIFY_READINESS_AFTER_S, and again only after it recovered.",
)
