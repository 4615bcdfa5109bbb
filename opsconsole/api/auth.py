"""Who calls the API: a bearer token (opsconsole.tokens), its role, its rate limit.

The rate limit is a fixed one-minute window per token in Redis (INCR + EXPIRE in one
round trip), plugged into ninja's throttling so that a refusal is its standard 429
with Retry-After. Every web and worker process shares the count, unlike ninja's
default throttles, which count in the per-process Django cache.
"""

import logging
import time

import redis
from django.conf import settings
from django.http import HttpRequest
from ninja.security import HttpBearer
from ninja.throttling import BaseThrottle

from opsconsole import audit
from opsconsole.roles import has_role
from opsconsole.tokens import services as tokens

WINDOW_S = 60
log = logging.getLogger("opsconsole.api")


class Forbidden(Exception):
    """The token's role is below what the operation needs (403)."""


class TokenAuth(HttpBearer):
    """`Authorization: Bearer oct_…`: the request acts as the token's owner, capped
    at the token's scope; an unknown, expired or revoked token is a 401."""

    def authenticate(self, request: HttpRequest, token: str):
        found = tokens.authenticate(token, ip_address=audit.client_ip(request))
        request.user = found.owner
        return found


def require(request: HttpRequest, role: str) -> None:
    """Refuse (403, audited like the pages' role guard) unless the token's role is `role`
    or higher."""
    if has_role(request.user, role):
        return
    audit.denied(
        request.user,
        "access.denied",
        request.path,
        ip_address=audit.client_ip(request),
        method=request.method,
        needs=role,
    )
    raise Forbidden(f"This needs the {role} role; the token acts as a lower one.")


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)


class PerTokenRate(BaseThrottle):
    """API_RATE_PER_MINUTE requests per token and minute, counted in Redis. When Redis
    does not answer, requests pass (logged): the limit protects the console, and a
    console without its Redis has bigger problems than a busy script."""

    def allow_request(self, request: HttpRequest) -> bool:
        token = getattr(request, "auth", None)
        if token is None:
            return True
        key = f"{settings.KEY_PREFIX}api:rate:{token.key_id}:{int(time.time() // WINDOW_S)}"
        try:
            with _redis() as conn:
                pipe = conn.pipeline(transaction=False)
                pipe.incr(key)
                pipe.expire(key, WINDOW_S * 2)
                count, _ = pipe.execute()
        except redis.RedisError as exc:
            log.warning("API rate limit not counted (Redis): %s", exc)
            return True
        return count <= settings.API_RATE_PER_MINUTE

    def wait(self) -> float:
        """Seconds until the next window opens (the 429's Retry-After)."""
        return WINDOW_S - time.time() % WINDOW_S
