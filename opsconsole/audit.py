"""The one way to write the audit log.

    with audit.record(request.user, "cache.invalidate_pattern", "main:user:*",
                      ip_address=client_ip(request), pattern="user:*") as event:
        deleted = invalidate(...)
        event.params["deleted"] = deleted

One event is written when the block ends: outcome "ok", or "failed" with the
error when the block raises (the exception still propagates).

Each event's hash is an HMAC (settings.AUDIT_KEY, from the environment) of the
previous hash and its content; the chain head (newest event id and hash) is signed
with the same key, and after each commit it is anchored outside the database:
written to Redis (monotonically) and to the log stream. `manage.py audit verify
[--anchor]` checks all three, so editing, deleting (also the newest events) or
rewriting the log with recomputed hashes is detected without the key.
"""

import hmac
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from .models import AuditChainHead, AuditEvent, Outcome

Actor = AbstractBaseUser | str | None
GENESIS = "0" * 64
log = logging.getLogger("opsconsole.audit")


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
    # A request made with an API token names the token (opsconsole.tokens.services).
    return getattr(actor, "audit_name", None) or actor.get_username() or "anonymous"


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    # The hash is computed over what the database will hand back, so normalise first.
    return json.loads(json.dumps(params, default=str))


def signing_keys() -> dict[str, bytes]:
    """Every key id the chain may use: the current key and the retired ones."""
    keys = {k: v.encode() for k, v in (getattr(settings, "AUDIT_KEYS", {}) or {}).items()}
    keys[settings.AUDIT_KEY_ID] = settings.AUDIT_KEY.encode()
    return keys


def current_key() -> tuple[str, bytes]:
    return settings.AUDIT_KEY_ID, settings.AUDIT_KEY.encode()


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
    """Append one event to the chain (serialised by a lock on the chain head) and
    re-sign the head; after commit the head is anchored. Never undone: the log is
    append-only."""
    user = actor if isinstance(actor, AbstractBaseUser) and actor.is_authenticated else None
    key_id, key = current_key()
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
            key_id=key_id,
        )
        event.hash = event.compute_hash(key)
        event.save()
        head.last_hash, head.last_event_id = event.hash, event.pk
        head.key_id = key_id
        head.signature = head.compute_signature(key)
        head.save(update_fields=["last_hash", "last_event_id", "key_id", "signature"])
        anchored = {"event_id": event.pk, "hash": event.hash, "signature": head.signature}
        transaction.on_commit(lambda: anchor_head(anchored))
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


# --- the anchor outside the database ------------------------------------------

# Only a newer head replaces the anchor: commits of concurrent writers may run
# their on-commit callbacks out of order.
_ANCHOR_SCRIPT = """
local current = tonumber(redis.call('HGET', KEYS[1], 'event_id') or '0')
if tonumber(ARGV[1]) > current then
  redis.call('HSET', KEYS[1], 'event_id', ARGV[1], 'hash', ARGV[2], 'signature', ARGV[3])
  return 1
end
return 0
"""


def anchor_key() -> str:
    return f"{settings.KEY_PREFIX}audit:head"


def _anchor_redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, decode_responses=True)


def anchor_head(head: dict[str, Any]) -> None:
    """Copy the committed head to the log stream and to Redis. A Redis failure is
    logged, not raised: the event is already committed, and `verify --anchor`
    will report the anchor as behind."""
    log.info(
        "audit head event=%s hash=%s signature=%s",
        head["event_id"],
        head["hash"],
        head["signature"],
    )
    try:
        with _anchor_redis() as conn:
            conn.eval(
                _ANCHOR_SCRIPT, 1, anchor_key(), head["event_id"], head["hash"], head["signature"]
            )
    except redis.RedisError as exc:
        log.warning("audit head not anchored in Redis: %s", exc)


def read_anchor() -> dict[str, str] | None:
    with _anchor_redis() as conn:
        return conn.hgetall(anchor_key()) or None


# --- verification ---------------------------------------------------------------


@dataclass
class ChainReport:
    """What `audit verify` found: events checked before the first problem, the
    first bad event's id (or the missing one's), and the problem in words."""

    checked: int = 0
    broken_id: int | None = None
    problem: str = ""
    broken: AuditEvent | None = None

    @property
    def intact(self) -> bool:
        return not self.problem


def _event_problem(event: AuditEvent, prev: str, legacy_until: int, keys) -> str:
    if event.prev_hash != prev:
        return "its link to the previous event does not match (an event before it was removed)"
    if not event.key_id and event.pk > legacy_until:
        return "it has an unkeyed hash after the keyed chain began (rewritten without the key)"
    if event.key_id and event.key_id not in keys:
        return f"it is signed with key id {event.key_id!r}, which is not configured (AUDIT_KEYS)"
    if not hmac.compare_digest(event.compute_hash(keys.get(event.key_id)), event.hash):
        return "its content does not match its keyed hash (edited, or re-hashed without the key)"
    return ""


def verify(*, against_anchor: bool = False) -> ChainReport:
    """Walk the chain oldest first, then check the signed head (and the anchor):
    the first problem found is reported. Reads only."""
    keys = signing_keys()
    head = AuditChainHead.objects.filter(pk=1).first() or AuditChainHead(pk=1)
    report, prev, last = ChainReport(), GENESIS, None
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=2000):
        if problem := _event_problem(event, prev, head.legacy_until, keys):
            report.broken_id, report.broken, report.problem = event.pk, event, problem
            return report
        prev, last = event.hash, event
        report.checked += 1
    if problem := _head_problem(head, last, keys):
        report.broken_id, report.problem = problem
        return report
    if against_anchor and (problem := _anchor_problem(last)):
        report.broken_id, report.problem = problem
    return report


def _head_problem(head: AuditChainHead, last: AuditEvent | None, keys) -> tuple | None:
    last_id, last_hash = (last.pk, last.hash) if last else (None, GENESIS)
    if head.last_event_id is None and last is None:
        return None
    key = keys.get(head.key_id)
    if key is None or not hmac.compare_digest(head.compute_signature(key), head.signature):
        return head.last_event_id, (
            "the chain head's signature does not match (the head was rewritten without the key)"
        )
    if (head.last_event_id, head.last_hash) != (last_id, last_hash):
        return head.last_event_id, (
            f"the signed head names event {head.last_event_id} as the newest, but the chain "
            f"ends at event {last_id}: the newest events were deleted"
        )
    return None


def _anchor_problem(last: AuditEvent | None) -> tuple | None:
    try:
        anchor = read_anchor()
    except redis.RedisError as exc:
        return None, f"the anchor could not be read from Redis: {exc}"
    if anchor is None:
        return None, f"no anchor in Redis ({anchor_key()})"
    anchored_id = int(anchor["event_id"])
    event = AuditEvent.objects.filter(pk=anchored_id).first()
    if event is None or not hmac.compare_digest(event.hash, anchor["hash"]):
        return anchored_id, (
            f"the anchor names event {anchored_id} with hash {anchor['hash'][:12]}…, "
            "which the database no longer holds: the log was truncated or rewritten"
        )
    if last is not None and last.pk != anchored_id:
        return last.pk, (
            f"the anchor is at event {anchored_id} but the database goes on to event {last.pk}: "
            "events after the anchor were not anchored (Redis unreachable?) or were forged"
        )
    return None


def verify_chain() -> tuple[int, AuditEvent | None]:
    """(events checked, first bad event or None) — see verify() for the details."""
    report = verify()
    if report.intact:
        return report.checked, None
    return report.checked, report.broken or AuditEvent(pk=report.broken_id)


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None
