import json

from django.core.management.base import BaseCommand, CommandError

from opsconsole import audit
from opsconsole.models import AuditEvent


class Command(BaseCommand):
    help = "Audit log: `verify` walks the hash chain; `list` prints recent events."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        verify = sub.add_parser("verify", help="check every event's hash and link")
        verify.add_argument("--json", action="store_true")
        recent = sub.add_parser("list", help="the newest events")
        recent.add_argument("--limit", type=int, default=20)
        recent.add_argument("--json", action="store_true")

    def handle(self, *args, action, **options):
        if action == "verify":
            return self.verify(options["json"])
        return self.list(options["limit"], options["json"])

    def verify(self, as_json: bool):
        checked, broken = audit.verify_chain()
        if as_json:
            self.stdout.write(json.dumps({"checked": checked, "broken_id": broken and broken.pk}))
        if broken is None:
            if not as_json:
                self.stdout.write(self.style.SUCCESS(f"{checked} events, chain intact."))
            return
        self.stderr.write(
            f"Chain broken at event {broken.pk} ({broken.created_at:%Y-%m-%d %H:%M:%S}, "
            f"{broken.action} by {broken.actor_name}): its content or link does not match "
            f"its hash. {checked} events before it are intact."
        )
        raise SystemExit(1)

    def list(self, limit: int, as_json: bool):
        if limit < 1:
            raise CommandError("--limit must be at least 1")
        events = AuditEvent.objects.order_by("-id")[:limit]
        if as_json:
            rows = [
                {
                    "id": e.pk,
                    "created_at": e.created_at.isoformat(),
                    "actor": e.actor_name,
                    "action": e.action,
                    "target": e.target,
                    "outcome": e.outcome,
                    "error": e.error,
                    "params": e.params,
                    "run_id": e.run_id,
                }
                for e in events
            ]
            self.stdout.write(json.dumps(rows, indent=2))
            return
        for e in events:
            self.stdout.write(
                f"{e.pk:>7} {e.created_at:%Y-%m-%d %H:%M:%S} {e.outcome:<6} "
                f"{e.actor_name:<16} {e.action:<28} {e.target}"
            )
