"""The origin of an account. A user without a row is a local account (created on the
users page, by `createsuperuser` or the demo setup): the row is written only by the
paths that create the other kinds."""

from django.conf import settings
from django.db import models


class Origin(models.TextChoices):
    LOCAL = "local"
    OIDC = "oidc"
    SERVICE = "service"


class AccountOrigin(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="account_origin"
    )
    origin = models.CharField(max_length=8, choices=Origin.choices)
    # For OIDC accounts: the provider and the subject it gave the user (stable across
    # renames of the e-mail or username).
    issuer = models.CharField(max_length=300, blank=True)
    subject = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["issuer", "subject"],
                condition=~models.Q(subject=""),
                name="accounts_one_user_per_oidc_subject",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.origin})"


def origin_of(user) -> str:
    """local, oidc or service (no row: a local account)."""
    try:
        return user.account_origin.origin
    except AccountOrigin.DoesNotExist:
        return Origin.LOCAL
