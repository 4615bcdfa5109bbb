"""The audit log: append-only and chained by keyed hashes (HMAC-SHA256 with a key
that lives in the environment, never in this database), so that tampering is
detectable even by someone who can write to the database."""

import hashlib
import hmac
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
    # Which AUDIT_KEY signed it; "" marks the legacy prefix written before keyed
    # hashes (plain SHA-256), accepted only up to the head's legacy_until.
    key_id = models.CharField(max_length=16, blank=True, default="")

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
        content = {
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
        }
        if self.key_id:
            content["key_id"] = self.key_id
        return json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)

    def compute_hash(self, key: bytes | None = None) -> str:
        """HMAC-SHA256 under `key` of the previous hash and this event's content;
        plain SHA-256 for a legacy (unkeyed) event."""
        message = (self.prev_hash + self.canonical_content()).encode()
        if not self.key_id:
            return hashlib.sha256(message).hexdigest()
        if key is None:
            raise ValueError(f"audit event {self.pk}: no key for key id {self.key_id!r}")
        return hmac.new(key, message, hashlib.sha256).hexdigest()


class AuditChainHead(models.Model):
    """One row: the newest event and its hash, signed with the audit key so that
    deleting the newest events (or rewinding the head) is detectable. Locking it
    serialises appends."""

    last_hash = models.CharField(max_length=64, default="0" * 64)
    last_event_id = models.BigIntegerField(null=True, blank=True)
    legacy_until = models.BigIntegerField(default=0)
    key_id = models.CharField(max_length=16, blank=True, default="")
    signature = models.CharField(max_length=64, blank=True, default="")

    def __str__(self) -> str:
        return self.last_hash

    def signed_text(self) -> str:
        return f"head:{self.last_event_id or 0}:{self.last_hash}:{self.legacy_until}"

    def compute_signature(self, key: bytes) -> str:
        return hmac.new(key, self.signed_text().encode(), hashlib.sha256).hexdigest()


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
