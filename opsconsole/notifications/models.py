"""Channels, subscriptions and the delivery log.

A channel's secrets (webhook URL, signing secret, SMTP password) are kept encrypted
(Fernet, with NOTIFICATIONS_KEY from the environment: a copy of the database alone
does not reveal them) and are never shown again after entry: the pages show `hint`.
"""

from django.conf import settings
from django.db import models


class ChannelKind(models.TextChoices):
    EMAIL = "email", "E-mail (SMTP)"
    WEBHOOK = "webhook", "Webhook (JSON, HMAC-SHA256 signed)"
    SLACK = "slack", "Slack-compatible incoming webhook"


class Event(models.TextChoices):
    RUN_FAILED = "run.failed", "A run failed or timed out"
    RUN_LOST = "run.lost", "A run was lost (its worker died)"
    MIGRATION_WAITING = "migration.waiting", "A migration is planned, waiting for confirmation"
    MIGRATION_SWAPPED = "migration.swapped", "A migration swapped the tables"
    MIGRATION_FINISHED = "migration.finished", "A migration finished"
    MIGRATION_ROLLED_BACK = "migration.rolled_back", "A migration was rolled back"
    APPROVAL_REQUESTED = "approval.requested", "An approval was requested"
    APPROVAL_DECIDED = "approval.decided", "An approval was decided"
    READINESS_FAILING = "readiness.failing", "Readiness has been failing for a while"
    INDEX_BUILT = "index.built", "An index build finished"


class Channel(models.Model):
    name = models.SlugField(max_length=80, unique=True)
    kind = models.CharField(max_length=8, choices=ChannelKind.choices)
    secrets = models.TextField()  # Fernet token of a JSON object (notifications.secrets)
    hint = models.CharField(max_length=200, blank=True)  # what the pages show instead
    muted = models.BooleanField(default=False)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Subscription(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="subscriptions"
    )
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="subscriptions")
    event = models.CharField(max_length=32, choices=Event.choices)
    # A job name or a target (`main:public.payments`, a runbook); blank: every one.
    target = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["event", "target"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "channel", "event", "target"], name="notifications_one_sub"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.event} {self.target or '*'} -> {self.channel}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    RETRYING = "retrying"
    SENT = "sent"
    FAILED = "failed"


class Delivery(models.Model):
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    subscription = models.ForeignKey(
        Subscription, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    recipient = models.CharField(max_length=254, blank=True)  # e-mail channels
    event = models.CharField(max_length=32, choices=Event.choices)
    target = models.CharField(max_length=300, blank=True)
    payload = models.JSONField(default=dict)
    status = models.CharField(
        max_length=8, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.event} -> {self.channel} ({self.status})"
