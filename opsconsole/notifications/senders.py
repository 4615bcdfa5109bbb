"""How one message leaves: SMTP (Django's backend), a signed JSON webhook, Slack.

Each sender raises DeliveryFailed with a reason an operator can act on; the caller
records it and decides whether to retry.

The webhook signature: `X-OpsConsole-Signature: sha256=<hex>` is HMAC-SHA256, keyed
with the channel's signing secret, of `<X-OpsConsole-Timestamp>.<raw body>`; receivers
recompute it and may refuse old timestamps (replays).
"""

import hashlib
import hmac
import json
import smtplib
import time

import requests
from django.conf import settings
from django.core.mail import EmailMessage, get_connection

TIMEOUT_S = 10
SIGNATURE_HEADER = "X-OpsConsole-Signature"
TIMESTAMP_HEADER = "X-OpsConsole-Timestamp"


class DeliveryFailed(Exception):
    """The receiver did not take the message; the message says why."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def send_webhook(url: str, signing_secret: str, payload: dict) -> None:
    body = json.dumps(payload, sort_keys=True, default=str).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(signing_secret, timestamp, body),
        "User-Agent": "OpsConsole-Notifications/1",
    }
    _post(url, body, headers)


def send_slack(url: str, payload: dict) -> None:
    body = json.dumps({"text": text_of(payload)}).encode()
    _post(url, body, {"Content-Type": "application/json"})


def _post(url: str, body: bytes, headers: dict) -> None:
    try:
        response = requests.post(url, data=body, headers=headers, timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"HTTP {response.status_code}: {response.text[:200]}")


def send_email(smtp: dict, recipient: str, payload: dict) -> None:
    """Through Django's SMTP backend; the channel's server settings, or EMAIL_* when unset."""
    connection = get_connection(
        "django.core.mail.backends.smtp.EmailBackend",
        host=smtp.get("host") or settings.EMAIL_HOST,
        port=int(smtp.get("port") or settings.EMAIL_PORT),
        username=smtp.get("username") or settings.EMAIL_HOST_USER,
        password=smtp.get("password") or settings.EMAIL_HOST_PASSWORD,
        use_tls=bool(smtp.get("use_tls", settings.EMAIL_USE_TLS)),
        timeout=TIMEOUT_S,
        fail_silently=False,
    )
    message = EmailMessage(
        subject=f"[OpsConsole] {payload['summary']}"[:200],
        body=text_of(payload),
        from_email=smtp.get("from_email") or settings.DEFAULT_FROM_EMAIL,
        to=[recipient],
        connection=connection,
    )
    try:
        message.send()
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None


def text_of(payload: dict) -> str:
    lines = [payload["summary"]]
    if payload.get("link"):
        lines.append(payload["link"])
    lines.append(f"event: {payload['event']}  target: {payload.get('target') or '-'}")
    return "\n".join(lines)
