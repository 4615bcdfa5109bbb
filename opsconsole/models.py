"""The audit log: append-only and hash-chained, so tampering is detectable."""

import hashlib
import json

from django.conf import settings
from django.db import models


class AuditImmutable(Exception):
    """Raised on any attempt to change or remove an audit event."""


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AuditImmutable("Audit events are append-only.")

    def delete(self):
        raise AuditImmutable("Audit events are append-only.")


class Outcome(models.TextChoices):
    OK = "ok"
    FAILED = "failed"
    DENIED = "denied"


class AuditEvent(models.Model):
    created_at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    actor_name = models.CharField(max_length=150, db_index=True)
    action = models.CharField(max_length=80, db_index=True)
    target = models.CharField(max_length=300, blank=True)
    params = models.JSONField(default=dict, blank=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    error = models.TextField(blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    run = models.ForeignKey("jobs.Run", null=True, blank=True, on_delete=models.PROTECT)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.target}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AuditImmutable("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditImmutable("Audit events are append-only.")

    def canonical_content(self) -> str:
        """The fields the hash covers, as one stable JSON text."""
        return json.dumps(
            {
                "created_at": self.created_at.isoformat(),
                "actor_id": self.actor_id,
                "actor_name": self.actor_name,
                "action": self.action,
                "target": self.target,
                "params": self.params,
                "outcome": self.outcome,
                "error": self.error,
                "ip_address": self.ip_address,
                "run_id": self.run_id,
            },
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        )

    def compute_hash(self) -> str:
        return hashlib.sha256((self.prev_hash + self.canonical_content()).encode()).hexdigest()


class AuditChainHead(models.Model):
    """One row holding the newest hash; locking it serialises appends."""

    last_hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return self.last_hash


class RunbookRequest(models.Model):
    """A launch of a runbook that needs a second person's approval (four eyes)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"

    runbook = models.CharField(max_length=100)
    params = models.JSONField(default=dict, blank=True)
    reason = models.CharField(max_length=300)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    run = models.ForeignKey("jobs.Run", null=True, blank=True, on_delete=models.PROTECT)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.runbook} requested by {self.requested_by_id} ({self.status})"
