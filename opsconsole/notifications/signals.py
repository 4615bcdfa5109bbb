"""The one hook: every committed audit event is offered to the notifications."""

import logging

from django.db.models.signals import post_save
from django.dispatch import receiver

from opsconsole.models import AuditEvent

from . import dispatch

log = logging.getLogger("opsconsole.notifications")


@receiver(post_save, sender=AuditEvent, dispatch_uid="notifications.audit_event")
def offer_to_notifications(sender, instance: AuditEvent, created: bool, **kwargs) -> None:
    if not created:
        return
    try:
        dispatch.fan_out_after_commit(instance)
    except Exception:  # the audit write (and the run ending with it) must go on
        log.exception("notifications: could not read audit event #%s", instance.pk)
