"""The one way to write the audit log.

    with audit.record(request.user, "cache.invalidate_pattern", "main:user:*",
                      ip_address=client_ip(request), pattern="user:*") as event:
        deleted = invalidate(...)
        event.params["deleted"] = deleted

One event is written when the block ends: outcome "ok", or "failed" with the
error when the block raises (the exception still propagates).
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from .models import AuditChainHead, AuditEvent, Outcome

Actor = AbstractBaseUser | str | None


@dataclass
class PendingEvent:
    params: dict[str, Any]
    run: Any = None
    target: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def actor_label(actor: Actor) -> str:
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor
    return actor.get_username() or "anonymous"


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    # The hash is computed over what the database will hand back, so normalise first.
    return json.loads(json.dumps(params, default=str))


def write(
    actor: Actor,
    action: str,
    target: str = "",
    *,
    outcome: str = Outcome.OK,
    error: str = "",
    ip_address: str | None = None,
    run=None,
    params: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain (serialised by a lock on the chain head)."""
    user = actor if isinstance(actor, AbstractBaseUser) and actor.is_authenticated else None
    with transaction.atomic():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
        event = AuditEvent(
            created_at=timezone.now(),
            actor=user,
            actor_name=actor_label(actor)[:150],
            action=action,
            target=str(target)[:300],
            params=_jsonable(params or {}),
            outcome=outcome,
            error=error,
            ip_address=ip_address,
            run=run,
            prev_hash=head.last_hash,
        )
        event.hash = event.compute_hash()
        event.save()
        head.last_hash = event.hash
        head.save(update_fields=["last_hash"])
    return event


@contextmanager
def record(
    actor: Actor, action: str, target: str = "", *, ip_address=None, run=None, **params
) -> Iterator[PendingEvent]:
    """Audit the block: one event with its outcome, even when the block raises."""
    pending = PendingEvent(params=dict(params), run=run, target=target)
    try:
        yield pending
    except Exception as exc:
        write(
            actor,
            action,
            pending.target,
            outcome=Outcome.FAILED,
            error=f"{type(exc).__name__}: {exc}",
            ip_address=ip_address,
            run=pending.run,
            params=pending.params,
        )
        raise
    write(
        actor, action, pending.target, ip_address=ip_address, run=pending.run, params=pending.params
    )


def denied(actor: Actor, action: str, target: str = "", *, ip_address=None, **params) -> None:
    write(actor, action, target, outcome=Outcome.DENIED, ip_address=ip_address, params=params)


def verify_chain() -> tuple[int, AuditEvent | None]:
    """Walk the chain oldest first; return (events checked, first broken event or None)."""
    prev = "0" * 64
    checked = 0
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=2000):
        if event.prev_hash != prev or event.compute_hash() != event.hash:
            return checked, event
        prev = event.hash
        checked += 1
    return checked, None


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None
