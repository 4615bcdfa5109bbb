import time

from django.conf import settings

from .health import ping_redis
from .roles import has_role, role_of

_BROKER_STATE = {"checked_at": 0.0, "error": ""}
BROKER_RECHECK_S = 5.0


def broker_error() -> str:
    """The broker's last connection error ('' when up), re-checked every few seconds."""
    now = time.monotonic()
    if now - _BROKER_STATE["checked_at"] > BROKER_RECHECK_S:
        try:
            ping_redis(settings.CELERY_BROKER_URL)
            _BROKER_STATE["error"] = ""
        except Exception as exc:
            _BROKER_STATE["error"] = f"{type(exc).__name__}: {exc}"
        _BROKER_STATE["checked_at"] = now
    return _BROKER_STATE["error"]


def console(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "console_role": role_of(user),
        "can_operate": has_role(user, "operator"),
        "is_console_admin": has_role(user, "admin"),
        "redis_error": broker_error(),
    }
