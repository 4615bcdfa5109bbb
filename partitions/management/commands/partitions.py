"""The CLI twin of the partitions pages.

manage.py partitions list [--warehouse main] [--json]
manage.py partitions plan SCHEMA TABLE --column created_at --granularity month
    [--scheme range|hash|list] [--width N] [--keep-ranges N] (integer ranges)
    [--modulus N] (hash)
    [--null-keys lose_uniqueness --consent "lose uniqueness"] [--json]
manage.py partitions migrate MIGRATION_ID --yes --reason "why" [--wait [--timeout S]]
manage.py partitions status [MIGRATION_ID] [--json]
manage.py partitions rollback MIGRATION_ID --yes --reason "why" [--wait [--timeout S]]
"""

from dataclasses import asdict

from jobs.models import Run
from opsconsole.commands import (
    ConsoleCommand,
    add_json_argument,
    add_wait_arguments,
    bad_input,
    failed,
)
from partitions import services, warehouses
from partitions.backends.base import PlanRefused
from partitions.models import Migration


class Command(ConsoleCommand):
    help = "List tables, plan, run, watch and roll back partition migrations."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="tables of a warehouse with their partitioning")
        plan = sub.add_parser("plan", help="store and print a migration plan (changes nothing)")
        plan.add_argument("schema")
        plan.add_argument("table")
        plan.add_argument("--column", required=True)
        plan.add_argument(
            "--scheme",
            choices=["range", "hash", "list"],
            default="range",
            help="range (a time, integer or UUIDv7 column), hash or list partitioning",
        )
        plan.add_argument(
            "--granularity",
            default="month",
            help="ranges of a time or UUIDv7 column: day, week or month",
        )
        plan.add_argument(
            "--width",
            type=int,
            help="ranges of an integer column: ids per range (default: a round width)",
        )
        plan.add_argument(
            "--keep-ranges",
            type=int,
            help="integer ranges: retention keeps the newest N ranges holding ids and drops"
            " those below (default: none dropped, ids carry no age)",
        )
        plan.add_argument("--modulus", type=int, default=8, help="hash: how many partitions")
        plan.add_argument("--clustering", default="")
        plan.add_argument("--retention-days", type=int)
        plan.add_argument("--require-partition-filter", action="store_true")
        plan.add_argument("--batch-rows", type=int, default=50_000)
        plan.add_argument("--throttle-ms", type=int, default=0)
        plan.add_argument(
            "--null-keys",
            choices=["refuse", "lose_uniqueness", "backfill"],
            help="rows without a partition key on a table with a primary key: refuse"
            " (default), accept losing the key's uniqueness (with --consent), or give"
            " them a value (with --null-backfill)",
        )
        plan.add_argument("--null-backfill", help="the value for NULL keys, e.g. 2024-01-01")
        plan.add_argument("--consent", help='type "lose uniqueness" to accept NULL keys')
        migrate = sub.add_parser("migrate", help="run a stored plan (needs --yes and --reason)")
        rollback = sub.add_parser("rollback", help="swap a migrated table's original back")
        for p in (migrate, rollback):
            p.add_argument("migration_id", type=int)
            p.add_argument(
                "--yes", action="store_true", help="confirm (instead of typing the name)"
            )
            p.add_argument("--reason", default="")
            add_wait_arguments(p)
        status = sub.add_parser("status", help="migrations and their steps")
        status.add_argument("migration_id", type=int, nargs="?")
        for p in (listing, plan, migrate, rollback, status):
            p.add_argument("--warehouse", default=None)
            add_json_argument(p)

    def handle(self, *args, **opts):
        warehouse = opts["warehouse"] or (warehouses.names() or ["main"])[0]
        try:
            getattr(self, f"do_{opts['action']}")(warehouse, opts)
        except (services.MigrationRefused, PlanRefused, warehouses.UnknownWarehouse) as exc:
            raise bad_input(str(exc)) from None

    def do_list(self, warehouse: str, opts) -> None:
        tables = services.inventory(warehouse)
        lines = [
            f"{t.schema}.{t.name}\t{t.rows}\t{t.bytes}\t"
            + (
                t.partitioning.get("definition") or t.partitioning.get("type")
                if t.partitioning
                else "-"
            )
            for t in tables
        ]
        self.emit([asdict(t) for t in tables], "\n".join(lines))

    def do_plan(self, warehouse: str, opts) -> None:
        options = {
            "column": opts["column"],
            "granularity": opts["granularity"],
            "scheme": opts["scheme"],
            "width": opts["width"],
            "modulus": opts["modulus"],
            "keep_ranges": opts["keep_ranges"],
            "clustering": [c for c in opts["clustering"].split(",") if c],
            "retention_days": opts["retention_days"],
            "require_partition_filter": opts["require_partition_filter"],
            "batch_rows": opts["batch_rows"],
            "throttle_ms": opts["throttle_ms"],
            "null_keys": opts["null_keys"],
            "consent": opts["consent"],
            "null_backfill": opts["null_backfill"],
        }
        migration = services.plan_migration(
            self.actor,
            warehouse,
            opts["schema"],
            opts["table"],
            {k: v for k, v in options.items() if v is not None},
        )
        text = [f"migration #{migration.pk} planned for {migration.target}"]
        for n, step in enumerate(migration.plan["steps"], 1):
            text.append(f"\n{n}. {step['name']}: {step['title']}")
            text.extend(f"   {s};" for s in step["sql"])
            text.extend(f"   rollback: {s};" for s in step["rollback"])
        text.append(f"\nestimates: {migration.plan['estimates']}")
        text.extend(f"warning: {w}" for w in migration.plan["warnings"])
        text.append(f"\nrun it: manage.py partitions migrate {migration.pk} --yes --reason '…'")
        self.emit({"migration_id": migration.pk, "plan": migration.plan}, "\n".join(text))

    def _migration(self, migration_id: int) -> Migration:
        try:
            return Migration.objects.get(pk=migration_id)
        except Migration.DoesNotExist:
            raise bad_input(f"no migration #{migration_id}") from None

    def do_migrate(self, warehouse: str, opts) -> None:
        migration = self._migration(opts["migration_id"])
        check = services.start_migration(
            self.actor,
            migration,
            confirm=migration.table,
            reason=opts["reason"],
            dry_run=not opts["yes"],
        )
        if not opts["yes"]:
            self.emit(
                {"dry_run": True, "migration_id": migration.pk, "rows": check.rows},
                f"checks pass for migration #{migration.pk} ({check.rows} rows);"
                " add --yes --reason '…' to run it",
            )
            return
        self.finish(check.run, opts)

    def do_rollback(self, warehouse: str, opts) -> None:
        migration = self._migration(opts["migration_id"])
        if not opts["yes"]:
            raise bad_input("rolling back needs --yes and --reason")
        run = services.rollback_migration(self.actor, migration, reason=opts["reason"])
        self.finish(run, opts)

    def finish(self, run: Run, opts) -> None:
        run = self.follow(run, opts)
        self.emit(
            {"run_id": run.pk, "status": run.status, "error": run.error},
            f"run #{run.pk}: {run.status} {run.error}".rstrip(),
        )
        if opts["wait"] and run.status != "succeeded":
            raise failed(f"run #{run.pk} ended {run.status}: {run.error}")

    def do_status(self, warehouse: str, opts) -> None:
        migrations = (
            [self._migration(opts["migration_id"])]
            if opts["migration_id"]
            else list(Migration.objects.all()[:20])
        )
        data = [
            {
                "id": m.pk,
                "target": m.target,
                "state": m.state,
                "error": m.error,
                "run_id": m.run_id,
                "rollback_run_id": m.rollback_run_id,
                "lock_holds_ms": m.lock_holds_ms,
                "eta": m.eta,
                "steps": [
                    {"name": s.name, "status": s.status, "checkpoint": s.checkpoint}
                    for s in m.steps.all()
                ],
            }
            for m in migrations
        ]
        lines = []
        for m in data:
            lines.append(f"#{m['id']} {m['target']} {m['state']} {m['error']}".rstrip())
            for name, hold in m["lock_holds_ms"].items():
                lines.append(f"   {name}: exclusive lock held {hold} ms")
            for name, figures in m["eta"].items():
                lines.append(f"   {name}: ETA {figures.get('eta_s')} s {figures}")
            lines.extend(f"   {s['name']}: {s['status']}" for s in m["steps"])
        self.emit(data, "\n".join(lines))
