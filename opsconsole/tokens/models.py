"""An API token: the secret is shown once and only its SHA-256 is kept.

The token text is `oct_<key_id>_<secret>`: `key_id` finds the row without scanning,
the secret (256 random bits) is what is checked. A fast hash is right here: the
secret is random, not a password a dictionary could guess.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiToken(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=80)
    key_id = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    # The widest role the token may act with; the owner's current role caps it at use.
    scope = models.CharField(max_length=16)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="tokens_unique_name_per_owner")
        ]

    def __str__(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def label(self) -> str:
        """How the token is named in the audit log and refusals."""
        return f"{self.owner.get_username()}/{self.name}"

    @property
    def state(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "active"
