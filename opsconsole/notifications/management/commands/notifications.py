"""The CLI twin of the notifications pages: channels, subscriptions, the delivery log."""

import getpass
import sys

from django.contrib.auth import get_user_model

from opsconsole.commands import ConsoleCommand, add_json_argument, bad_input
from opsconsole.notifications import services
from opsconsole.notifications.models import Channel, ChannelKind, Delivery, Event, Subscription


def channel_dict(channel: Channel) -> dict:
    return {"id": channel.pk, "name": channel.name, "kind": channel.kind, "hint": channel.hint,
            "muted": channel.muted}  # fmt: skip


def delivery_dict(d: Delivery) -> dict:
    return {
        "id": d.pk,
        "event": d.event,
        "target": d.target,
        "channel": d.channel.name,
        "recipient": d.recipient,
        "status": d.status,
        "attempts": d.attempts,
        "last_error": d.last_error,
        "created_at": d.created_at,
        "sent_at": d.sent_at,
    }


class Command(ConsoleCommand):
    stealth_options = ("stdin",)  # call_command(..., stdin=...) in tests and scripts
    help = "Notifications: channels, add-channel, mute, unmute, subscribe, unsubscribe, deliveries."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("channels", help="the channels (never their secrets)")
        add = sub.add_parser("add-channel", help="add a channel; secrets are asked, not argued")
        add.add_argument("name")
        add.add_argument("--kind", choices=ChannelKind.values, required=True)
        add.add_argument("--smtp-host", default="")
        add.add_argument("--smtp-port", type=int)
        add.add_argument("--smtp-user", default="")
        add.add_argument("--from-email", default="")
        add.add_argument(
            "--secrets-from-stdin",
            action="store_true",
            help="read the URL (webhook/Slack) or SMTP password from standard input "
            "instead of a prompt (it never appears in the shell history or ps)",
        )
        for verb in ("mute", "unmute"):
            sub.add_parser(verb, help=f"{verb} a channel").add_argument("name")
        subscribe = sub.add_parser("subscribe", help="subscribe a user to an event")
        subscribe.add_argument("--user", required=True)
        subscribe.add_argument("--channel", required=True)
        subscribe.add_argument("--event", choices=Event.values, required=True)
        subscribe.add_argument("--target", default="", help="a job or target; blank: every one")
        sub.add_parser("unsubscribe", help="remove a subscription").add_argument("id", type=int)
        log = sub.add_parser("deliveries", help="the delivery log, newest first")
        log.add_argument("--limit", type=int, default=50)
        for p in sub.choices.values():
            add_json_argument(p)

    def handle(self, *args, action, **options):
        try:
            getattr(self, action.replace("-", "_"))(options)
        except services.NotificationRefused as exc:
            raise bad_input(str(exc)) from None

    def channels(self, options):
        rows = [channel_dict(c) for c in Channel.objects.all()]
        lines = [f"{r['name']:<20} {r['kind']:<8} {'muted' if r['muted'] else 'active':<7} "
                 f"{r['hint']}" for r in rows]  # fmt: skip
        self.emit(rows, "\n".join(lines) or "No channels.")

    def add_channel(self, options):
        kind = options["kind"]
        secret = self._secret(options, "SMTP password" if kind == ChannelKind.EMAIL else "URL")
        if kind == ChannelKind.EMAIL:
            values = {"host": options["smtp_host"], "port": options["smtp_port"],
                      "username": options["smtp_user"], "password": secret,
                      "from_email": options["from_email"]}  # fmt: skip
        else:
            values = {"url": secret}
        created = services.create_channel(self.actor, options["name"], kind, values)
        data = channel_dict(created.channel) | {"signing_secret": created.signing_secret}
        text = f"Created {created.channel.name} ({created.channel.hint})."
        if created.signing_secret:
            text += f"\nSigning secret (shown once): {created.signing_secret}"
        self.emit(data, text)

    def _secret(self, options, what: str) -> str:
        if options["secrets_from_stdin"]:
            return (options.get("stdin") or sys.stdin).readline().strip()
        return getpass.getpass(f"{what} (not echoed, empty for none): ").strip()

    def mute(self, options, muted=True):
        channel = Channel.objects.filter(name=options["name"]).first()
        if channel is None:
            raise bad_input(f"No channel named {options['name']!r}.")
        services.set_muted(self.actor, channel, muted)
        self.emit(channel_dict(channel), f"{channel.name} {'muted' if muted else 'unmuted'}.")

    def unmute(self, options):
        self.mute(options, muted=False)

    def subscribe(self, options):
        user = get_user_model().objects.filter(username=options["user"]).first()
        channel = Channel.objects.filter(name=options["channel"]).first()
        if user is None or channel is None:
            raise bad_input("Unknown user or channel.")
        sub = services.subscribe(self.actor, user, channel, options["event"], options["target"])
        data = {"id": sub.pk, "user": user.get_username(), "channel": channel.name}
        self.emit(data | {"event": sub.event, "target": sub.target}, f"Subscription #{sub.pk}.")

    def unsubscribe(self, options):
        subscription = Subscription.objects.filter(pk=options["id"]).first()
        if subscription is None:
            raise bad_input(f"No subscription #{options['id']}.")
        services.unsubscribe(self.actor, subscription)
        self.emit({"id": options["id"], "deleted": True}, "Unsubscribed.")

    def deliveries(self, options):
        rows = [delivery_dict(d) for d in Delivery.objects.select_related("channel")
                [: max(1, options["limit"])]]  # fmt: skip
        lines = [f"#{r['id']} {r['event']:<20} {r['channel']:<16} {r['status']:<8} "
                 f"x{r['attempts']} {r['last_error'][:60]}" for r in rows]  # fmt: skip
        self.emit(rows, "\n".join(lines) or "Nothing sent yet.")
