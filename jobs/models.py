"""Run: one row per launch of anything long (sync jobs, warming, invalidation,
migrations, index builds, runbooks). History, progress and faults all live here,
so they survive worker and broker restarts."""

from django.conf import settings
from django.db import models

from . import progress


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    LOST = "lost"


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.RETRYING)
FINISHED_STATUSES = tuple(s for s in RunStatus if s not in ACTIVE_STATUSES)


class Run(models.Model):
    kind = models.CharField(max_length=32, default="job")
    name = models.CharField(max_length=100)
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)

    attempt = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=1)
    # How many times a run whose worker died starts again from its checkpoints by itself.
    max_resumes = models.PositiveIntegerField(default=0)
    # [{"n": 1, "started_at": iso, "ended_at": iso, "outcome": "failed", "error": "…",
    #   "worker": "celery@host", "effect": {"keys_deleted": 162070}}, …]
    attempts = models.JSONField(default=list, blank=True)
    # Copied from the job's policy: at most one active run of an exclusive job
    # (a database constraint, so two launches racing each other cannot both win).
    exclusive = models.BooleanField(default=False)

    progress_done = models.BigIntegerField(default=0)
    progress_total = models.BigIntegerField(null=True, blank=True)
    progress_message = models.CharField(max_length=300, blank=True)

    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    log_tail = models.TextField(blank=True)

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    actor_name = models.CharField(max_length=150)
    # The current attempt's message: a delivery under any other id is a stale duplicate.
    celery_task_id = models.CharField(max_length=64, blank=True)
    # When that message should reach a worker; the reaper re-publishes it when it has not.
    due_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)  # who runs the current attempt
    # A form's one-time token: a double-submitted form finds the run it already started.
    request_key = models.CharField(max_length=64, null=True, blank=True, unique=True)
    retry_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL)

    timeout_seconds = models.PositiveIntegerField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["name", "-id"], name="run_name_id"),
            models.Index(fields=["status", "-id"], name="run_status_id"),
            models.Index(fields=["kind", "-id"], name="run_kind_id"),
            models.Index(fields=["actor_name", "-id"], name="run_actor_id"),
            models.Index(fields=["name", "status", "-id"], name="run_name_status_id"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["name"],
                condition=models.Q(exclusive=True, status__in=ACTIVE_STATUSES),
                name="run_one_active_exclusive",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.name} #{self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def effects(self) -> dict[str, int]:
        """What every attempt did, added up (a killed attempt's work included)."""
        total: dict[str, int] = {}
        for attempt in self.attempts:
            for name, amount in (attempt.get("effect") or {}).items():
                total[name] = total.get(name, 0) + amount
        return total

    @property
    def progress(self):
        """Percent, rate, ETA and step (jobs.progress): what every page and the CLI show."""
        return progress.of(self)

    @property
    def progress_percent(self) -> int | None:
        if not self.progress_total:
            return None
        return min(100, int(100 * self.progress_done / self.progress_total))
