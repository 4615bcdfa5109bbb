"""A partition migration and its steps. Each step's status and checkpoint are
committed rows, so a migration survives a worker's death and resumes where it
stopped; the copy's own per-batch checkpoints live in the warehouse, committed
in the same transaction as each batch (see backends/postgres/run.py)."""

import hashlib
import json

from django.db import models


class MigrationState(models.TextChoices):
    PLANNED = "planned"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # failed and rolled back: the original serves, untouched
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    CANCELLED = "cancelled"  # a plan that was never run


# A table has at most one migration in one of these states.
ACTIVE_STATES = (
    MigrationState.PLANNED,
    MigrationState.RUNNING,
    MigrationState.SUCCEEDED,
    MigrationState.ROLLING_BACK,
)


class Migration(models.Model):
    warehouse = models.CharField(max_length=100)
    backend = models.CharField(max_length=16)  # postgres | bigquery
    schema = models.CharField(max_length=1024)  # PostgreSQL schema or BigQuery dataset
    table = models.CharField(max_length=1024)
    options = models.JSONField(default=dict)  # column, granularity, clustering, retention, …
    plan = models.JSONField(default=dict)
    plan_hash = models.CharField(max_length=64)
    schema_fingerprint = models.CharField(max_length=64)
    state = models.CharField(
        max_length=16, choices=MigrationState.choices, default=MigrationState.PLANNED
    )
    reason = models.TextField(blank=True)
    planned_by = models.CharField(max_length=150)
    run = models.ForeignKey(
        "jobs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rollback_run = models.ForeignKey(
        "jobs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["warehouse", "schema", "table"],
                condition=models.Q(state__in=ACTIVE_STATES),
                name="one_active_migration_per_table",
            )
        ]

    def __str__(self) -> str:
        return f"migration #{self.pk} {self.target}"

    @property
    def target(self) -> str:
        return f"{self.warehouse}:{self.schema}.{self.table}"

    @property
    def confirmation_words(self) -> list[str]:
        """What the typed confirmation accepts: the table as the pages name it,
        bare, schema-qualified, or with its warehouse."""
        return [self.table, f"{self.schema}.{self.table}", self.target]

    @staticmethod
    def hash_plan(plan: dict) -> str:
        return hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()

    @property
    def plan_intact(self) -> bool:
        return self.hash_plan(self.plan) == self.plan_hash

    @property
    def lock_holds_ms(self) -> dict[str, float]:
        """How long the swap and the swap back held the table's exclusive lock."""
        holds = {}
        swap = self.steps.filter(name="swap").first()
        if swap is not None:
            hold = swap.detail.get("lock_hold_ms") or swap.checkpoint.get("lock_hold_ms")
            if hold is not None:
                holds["swap"] = hold
        rollback = (self.result or {}).get("rollback") or {}
        if rollback.get("lock_hold_ms") is not None:
            holds["rollback"] = rollback["lock_hold_ms"]
        return holds

    @property
    def eta(self) -> dict[str, dict]:
        """The copy's and the catch-up's rate and ETA while they run, read from the
        checkpoints the steps (or the rollback) commit as they go."""
        found = {}
        for step in self.steps.filter(status=StepStatus.RUNNING):
            if step.name == "copy" and "eta_s" in step.checkpoint:
                found["copy"] = {
                    k: step.checkpoint.get(k) for k in ("batches_done", "rows_per_s", "eta_s")
                }
            if "catch_up" in step.checkpoint:
                found["catch_up"] = step.checkpoint["catch_up"]
        if self.state == MigrationState.ROLLING_BACK:
            progress = (self.result or {}).get("rollback_progress") or {}
            if "catch_up" in progress:
                found["catch_up"] = progress["catch_up"]
        return found


class StepStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    UNDONE = "undone"


class MigrationStep(models.Model):
    migration = models.ForeignKey(Migration, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=StepStatus.choices, default=StepStatus.PENDING)
    checkpoint = models.JSONField(default=dict, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["migration", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["migration", "name"], name="one_step_name_per_migration"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"
