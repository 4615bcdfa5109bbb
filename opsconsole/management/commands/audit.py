import json

from django.core.management.base import BaseCommand, CommandError

from opsconsole import audit
from opsconsole.models import AuditEvent


class Command(BaseCommand):
    help = (
        "Audit log: `verify` walks the keyed hash chain and checks the signed head "
        "(--anchor: and the copy of the head in Redis); `list` prints recent events."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        verify = sub.add_parser("verify", help="check every event's hash and link")
        verify.add_argument("--json", action="store_true")
        verify.add_argument(
            "--anchor", action="store_true", help="also compare the head with its Redis anchor"
        )
        recent = sub.add_parser("list", help="the newest events")
        recent.add_argument("--limit", type=int, default=20)
        recent.add_argument("--json", action="store_true")

    def handle(self, *args, action, **options):
        if action == "verify":
            return self.verify(options["json"], options["anchor"])
        return self.list(options["limit"], options["json"])

    def verify(self, as_json: bool, against_anchor: bool):
        report = audit.verify(against_anchor=against_anchor)
        if as_json:
            self.stdout.write(
                json.dumps(
                    {
                        "checked": report.checked,
                        "broken_id": report.broken_id,
                        "problem": report.problem,
                    }
                )
            )
        if report.intact:
            if not as_json:
                anchored = " and matches its anchor" if against_anchor else ""
                self.stdout.write(
                    self.style.SUCCESS(f"{report.checked} events, chain intact{anchored}.")
                )
            return
        self.stderr.write(
            f"Chain broken at {_describe(report)}: {report.problem}. "
            f"{report.checked} events before it are intact."
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


def _describe(report: audit.ChainReport) -> str:
    event = report.broken
    if event is None:
        return f"event {report.broken_id}" if report.broken_id else "the chain head"
    return (
        f"event {event.pk} ({event.created_at:%Y-%m-%d %H:%M:%S}, "
        f"{event.action} by {event.actor_name})"
    )
