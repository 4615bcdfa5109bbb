"""From what the runtime already records to messages delivered.

The hook is the audit log: every outcome the issue names is an audit event written by
the services or the runner (`job.end` with the run's status, `partitions.plan`,
`partitions.swapped`, `partitions.auto_rollback`, `runbook.request`/`approve`/`reject`),
so `events_for` maps one committed event to notification events and nothing is
sprinkled across the apps. Readiness is the exception (nobody acts, so nothing is
audited): the readiness watch calls `fan_out` itself.

Delivery runs on the worker (task `notifications.deliver`), one attempt per message,
re-published with exponential backoff until NOTIFY_MAX_ATTEMPTS; every attempt is on
the Delivery row (the log page). Nothing here can fail the run that caused it: fanning
out happens after the run's transaction committed, and its errors are logged.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs.models import Run
from opsconsole.celery import app as celery_app
from opsconsole.models import AuditEvent
from partitions.models import Migration

from . import secrets, senders
from .models import Channel, ChannelKind, Delivery, DeliveryStatus, Event, Subscription

log = logging.getLogger("opsconsole.notifications")
DELIVER_TASK = "notifications.deliver"
FAILED_RUN = {"failed": Event.RUN_FAILED, "timed_out": Event.RUN_FAILED, "lost": Event.RUN_LOST}
INDEX_JOBS = ("queries.apply_index", "queries.rollback_index")
# The audit actions that can mean a notification (notices_for says which and when).
WATCHED_ACTIONS = frozenset(
    {
        "job.end",
        "partitions.plan",
        "partitions.swapped",
        "partitions.auto_rollback",
        "runbook.request",
        "runbook.approve",
        "runbook.reject",
    }
)


@dataclass(frozen=True)
class Notice:
    event: str
    target: str
    summary: str
    link: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "target": self.target,
            "summary": self.summary,
            "link": f"{settings.CONSOLE_URL.rstrip('/')}{self.link}" if self.link else "",
            "details": self.details,
            "occurred_at": timezone.now().isoformat(),
        }


# --- what an audit event means ----------------------------------------------------


def notices_for(event: AuditEvent) -> list[Notice]:
    """The notifications one committed audit event gives (most give none)."""
    if event.action == "job.end":  # its outcome is the run's: failed runs are news
        return _run_ended(event)
    if event.outcome != "ok":  # a refused or failed action changed nothing
        return []
    migration_id = event.params.get("migration_id")
    link = f"/partitions/migrations/{migration_id}/" if migration_id else ""
    if event.action == "partitions.plan":
        summary = f"Migration of {event.target} planned by {event.actor_name}: waiting for start"
        return [Notice(Event.MIGRATION_WAITING, event.target, summary, link)]
    if event.action == "partitions.swapped":
        summary = f"Migration of {event.target} swapped: the partitioned table serves"
        return [Notice(Event.MIGRATION_SWAPPED, event.target, summary, link)]
    if event.action == "partitions.auto_rollback":
        summary = f"Migration of {event.target} failed and was rolled back"
        return [Notice(Event.MIGRATION_ROLLED_BACK, event.target, summary, link)]
    if event.action == "runbook.request":
        summary = f"{event.actor_name} asks for approval to run {event.target}"
        return [Notice(Event.APPROVAL_REQUESTED, event.target, summary, "/runbooks/")]
    if event.action in ("runbook.approve", "runbook.reject"):
        verb = "approved" if event.action == "runbook.approve" else "rejected"
        summary = f"{event.actor_name} {verb} the request to run {event.target}"
        return [Notice(Event.APPROVAL_DECIDED, event.target, summary, "/runbooks/")]
    return []


def _run_ended(event: AuditEvent) -> list[Notice]:
    run: Run | None = event.run
    if run is None:
        return []
    status, link = event.params.get("status", run.status), f"/jobs/runs/{run.pk}/"
    notices = []
    if status in FAILED_RUN:
        summary = f"Run #{run.pk} of {run.name} {status}: {run.error[:200]}".rstrip(": ")
        notices.append(Notice(FAILED_RUN[status], run.name, summary, link, {"run_id": run.pk}))
    if run.name in INDEX_JOBS:
        index = run.result.get("index") or run.params.get("name", "")
        target = f"{run.params.get('warehouse', '')}:{run.params.get('schema', '')}.{index}"
        summary = f"Index build {target} {status} (run #{run.pk})"
        notices.append(Notice(Event.INDEX_BUILT, target, summary, link, {"run_id": run.pk}))
    if status == "succeeded" and run.name in ("partition_migration", "partition_rollback"):
        migration = Migration.objects.filter(pk=run.params.get("migration_id")).first()
        if migration is not None:
            finished = run.name == "partition_migration"
            kind = Event.MIGRATION_FINISHED if finished else Event.MIGRATION_ROLLED_BACK
            summary = f"Migration of {migration.target} {'finished' if finished else 'rolled back'}"
            notices.append(
                Notice(kind, migration.target, summary, f"/partitions/migrations/{migration.pk}/")
            )
    return notices


# --- who gets it ------------------------------------------------------------------


def fan_out(notice: Notice) -> list[Delivery]:
    """One Delivery per matching subscription on an unmuted channel (an e-mail per
    subscriber, one post per webhook channel), each handed to the worker."""
    subscriptions = (
        Subscription.objects.filter(event=notice.event, channel__muted=False, user__is_active=True)
        .filter(Q(target="") | Q(target=notice.target))
        .select_related("channel", "user")
    )
    payload, deliveries, posted = notice.payload(), [], set()
    for subscription in subscriptions:
        channel = subscription.channel
        recipient = subscription.user.email if channel.kind == ChannelKind.EMAIL else ""
        if (channel.pk, recipient) in posted:
            continue  # two users subscribed to one webhook: it gets one post
        posted.add((channel.pk, recipient))
        deliveries.append(
            Delivery.objects.create(
                channel=channel,
                subscription=subscription,
                recipient=recipient,
                event=notice.event,
                target=notice.target,
                payload=payload,
            )
        )
    for delivery in deliveries:
        publish(delivery.pk)
    return deliveries


def fan_out_after_commit(event: AuditEvent) -> None:
    """Called for every new audit event, inside the transaction that writes it: only a
    look at its action here (no query, nothing that could fail that transaction); the
    notices are worked out and queued once it has committed."""
    if event.action in WATCHED_ACTIONS:
        transaction.on_commit(lambda: _fan_out_safely(event))


def _fan_out_safely(event: AuditEvent) -> None:
    try:
        for notice in notices_for(event):
            fan_out(notice)
    except Exception:  # never let a notification break what caused it
        log.exception("could not queue notifications for audit event #%s", event.pk)


def publish(delivery_id: int, countdown: float | None = None) -> None:
    """Hand a delivery to the worker (by task name); a broker failure leaves it pending."""
    try:
        celery_app.send_task(DELIVER_TASK, args=[delivery_id], countdown=countdown)
    except Exception as exc:
        log.warning("delivery #%s not queued (broker?): %s", delivery_id, exc)
        Delivery.objects.filter(pk=delivery_id).update(last_error=f"not queued: {exc}"[:2000])


# --- sending ----------------------------------------------------------------------


def backoff_s(attempts: int) -> float:
    base = settings.NOTIFY_RETRY_BACKOFF_S
    return min(base * 2 ** (attempts - 1), settings.NOTIFY_RETRY_BACKOFF_MAX_S)


def deliver(delivery_id: int) -> str:
    """One attempt (the worker's task). Sent: done. Failed: retried after a backoff,
    until NOTIFY_MAX_ATTEMPTS, then marked failed with the reason. Returns the status."""
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update().select_related("channel").get(pk=delivery_id)
        )
        if delivery.status in (DeliveryStatus.SENT, DeliveryStatus.FAILED):
            return delivery.status  # a duplicate message: already settled
        delivery.attempts += 1
        delivery.save(update_fields=["attempts"])
    try:
        send(delivery.channel, delivery.recipient, delivery.payload)
    except (senders.DeliveryFailed, secrets.SecretUnreadable) as exc:
        return _failed_attempt(delivery, str(exc))
    delivery.status, delivery.sent_at = DeliveryStatus.SENT, timezone.now()
    delivery.next_attempt_at = None
    delivery.save(update_fields=["status", "sent_at", "next_attempt_at"])
    return delivery.status


def _failed_attempt(delivery: Delivery, reason: str) -> str:
    delivery.last_error = f"attempt {delivery.attempts}: {reason}"[:2000]
    if delivery.attempts >= settings.NOTIFY_MAX_ATTEMPTS:
        delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
        delivery.save(update_fields=["status", "last_error", "next_attempt_at"])
        log.warning("delivery #%s failed for good: %s", delivery.pk, reason)
        return delivery.status
    wait = backoff_s(delivery.attempts)
    delivery.status = DeliveryStatus.RETRYING
    delivery.next_attempt_at = timezone.now() + timedelta(seconds=wait)
    delivery.save(update_fields=["status", "last_error", "next_attempt_at"])
    publish(delivery.pk, countdown=wait)
    return delivery.status


def send(channel: Channel, recipient: str, payload: dict) -> None:
    values = secrets.unseal(channel.secrets)
    if channel.kind == ChannelKind.WEBHOOK:
        senders.send_webhook(values["url"], values["signing_secret"], payload)
    elif channel.kind == ChannelKind.SLACK:
        senders.send_slack(values["url"], payload)
    else:
        senders.send_email(values, recipient, payload)
