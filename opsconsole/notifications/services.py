"""Channels and subscriptions: the changes admins and users make (audited).

A channel's secrets go in once: they are sealed (secrets.py) and only a hint (the
host of a URL, the SMTP server) is shown afterwards. A webhook's signing secret is
generated when none is given and returned once, like an API token.
"""

import secrets as random
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.contrib.auth.base_user import AbstractBaseUser

from opsconsole import audit
from opsconsole.actions import audited_action
from opsconsole.roles import has_role

from . import secrets
from .models import Channel, ChannelKind, Event, Subscription


class NotificationRefused(Exception):
    """A change that must not happen; the message says why."""


@dataclass(frozen=True)
class NewChannel:
    channel: Channel
    signing_secret: str | None  # generated for a webhook: shown once


def _url_hint(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NotificationRefused("The URL must be an http:// or https:// address.")
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/… (hidden)"


def _sealed(kind: str, values: dict) -> tuple[dict, str, str | None]:
    """The secrets to seal, the hint to show, and a generated signing secret."""
    generated = None
    if kind == ChannelKind.EMAIL:
        smtp = {k: v for k, v in values.items() if v not in (None, "")}
        host = smtp.get("host") or "the default SMTP server (EMAIL_HOST)"
        return smtp, f"SMTP {host}" + (f":{smtp['port']}" if smtp.get("port") else ""), None
    url = values.get("url") or ""
    hint = _url_hint(url)
    if kind == ChannelKind.SLACK:
        return {"url": url}, hint, None
    signing = values.get("signing_secret") or ""
    if not signing:
        signing = generated = random.token_urlsafe(32)
    return {"url": url, "signing_secret": signing}, hint, generated


def _admin_only(actor) -> None:
    if not isinstance(actor, str) and not has_role(actor, "admin"):
        raise NotificationRefused("Only an admin can change notification channels.")


@audited_action("notify.channel_create")
def create_channel(
    actor: AbstractBaseUser | str,
    name: str,
    kind: str,
    values: dict,
    *,
    ip_address: str | None = None,
) -> NewChannel:
    """Add a channel (its secrets sealed). Undo: mute it (deliveries stop at once)."""
    with audit.record(
        actor, "notify.channel_create", name, ip_address=ip_address, kind=kind
    ) as event:
        _admin_only(actor)
        if kind not in ChannelKind.values:
            raise NotificationRefused(f"Unknown channel kind {kind!r}.")
        if Channel.objects.filter(name=name).exists():
            raise NotificationRefused(f"A channel named {name!r} exists.")
        sealed, hint, generated = _sealed(kind, values)
        channel = Channel.objects.create(
            name=name,
            kind=kind,
            secrets=secrets.seal(sealed),
            hint=hint,
            created_by=audit.actor_label(actor),
        )
        event.params["hint"] = hint  # never the secrets
    return NewChannel(channel, generated)


@audited_action("notify.channel_mute")
def set_muted(
    actor: AbstractBaseUser | str, channel: Channel, muted: bool, *, ip_address: str | None = None
) -> Channel:
    """Mute (nothing is sent, nothing queued) or unmute a channel. Undo: the opposite."""
    with audit.record(
        actor, "notify.channel_mute", channel.name, ip_address=ip_address, muted=muted
    ):
        _admin_only(actor)
        channel.muted = muted
        channel.save(update_fields=["muted"])
    return channel


@audited_action("notify.subscribe")
def subscribe(
    actor: AbstractBaseUser | str,
    user: AbstractBaseUser,
    channel: Channel,
    event: str,
    target: str = "",
    *,
    ip_address: str | None = None,
) -> Subscription:
    """Send `event` (for `target`, or every target when blank) to `user` on `channel`.
    Undo: unsubscribe."""
    with audit.record(
        actor,
        "notify.subscribe",
        f"{user.get_username()}:{event}:{target or '*'}",
        ip_address=ip_address,
        channel=channel.name,
    ):
        if not isinstance(actor, str) and actor != user and not has_role(actor, "admin"):
            raise NotificationRefused("Only an admin can subscribe someone else.")
        if event not in Event.values:
            raise NotificationRefused(f"Unknown event {event!r}.")
        if channel.kind == ChannelKind.EMAIL and not user.email:
            raise NotificationRefused(f"{user.get_username()} has no e-mail address.")
        subscription, _ = Subscription.objects.get_or_create(
            user=user, channel=channel, event=event, target=target
        )
    return subscription


@audited_action("notify.unsubscribe")
def unsubscribe(
    actor: AbstractBaseUser | str, subscription: Subscription, *, ip_address: str | None = None
) -> None:
    """Stop a subscription. Undo: subscribe again."""
    user = subscription.user
    with audit.record(
        actor,
        "notify.unsubscribe",
        f"{user.get_username()}:{subscription.event}:{subscription.target or '*'}",
        ip_address=ip_address,
        channel=subscription.channel.name,
    ):
        if not isinstance(actor, str) and actor != user and not has_role(actor, "admin"):
            raise NotificationRefused("Only an admin can change someone else's subscriptions.")
        subscription.delete()
