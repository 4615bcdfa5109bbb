"""Sign-ins and sign-outs go to the audit log like every other action."""

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from . import audit


def _ip(request) -> str | None:
    return audit.client_ip(request) if request is not None else None


@receiver(user_logged_in)
def audit_login(sender, request, user, **kwargs):
    audit.write(user, "auth.login", user.get_username(), ip_address=_ip(request))


@receiver(user_logged_out)
def audit_logout(sender, request, user, **kwargs):
    if user is not None:
        audit.write(user, "auth.logout", user.get_username(), ip_address=_ip(request))


@receiver(user_login_failed)
def audit_login_failed(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username", ""))[:150]
    audit.write(
        f"anonymous:{username}",
        "auth.login",
        username,
        outcome="failed",
        error="wrong username or password",
        ip_address=_ip(request),
    )
