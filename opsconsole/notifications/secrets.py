"""Channel secrets, encrypted with a key that is not in the database.

NOTIFICATIONS_KEY (environment; required outside DEBUG) is stretched to a Fernet key;
Fernet (cryptography) authenticates as well as encrypts, so a tampered row is refused
rather than used.
"""

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


class SecretUnreadable(Exception):
    """The stored secret was encrypted with another key, or changed."""


def _fernet() -> Fernet:
    digest = hashlib.sha256(f"opsconsole.notifications:{settings.NOTIFICATIONS_KEY}".encode())
    return Fernet(base64.urlsafe_b64encode(digest.digest()))


def seal(values: dict) -> str:
    return _fernet().encrypt(json.dumps(values).encode()).decode()


def unseal(sealed: str) -> dict:
    try:
        return json.loads(_fernet().decrypt(sealed.encode()))
    except InvalidToken:
        raise SecretUnreadable(
            "the channel's secrets cannot be decrypted (NOTIFICATIONS_KEY changed?): "
            "enter them again"
        ) from None
