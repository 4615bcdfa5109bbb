"""Retention and maintenance of migrated tables: pre-create upcoming
PostgreSQL partitions, drop those past retention, report BigQuery expiration."""

from collections.abc import Callable
from typing import Any

from jobs import runner
from opsconsole import audit
from opsconsole.actions import audited_action

from . import backends
from .models import Migration, MigrationState


def targets() -> list[Migration]:
    return list(Migration.objects.filter(state=MigrationState.SUCCEEDED).order_by("id"))


@audited_action("partitions.retention")
def apply_retention(
    actor: audit.Actor,
    *,
    dry_run: bool = True,
    run=None,
    log: Callable[[str], None] | None = None,
    ip_address: str | None = None,
) -> dict[str, Any]:
    """Per migrated table: create the partitions of the next `premake` periods and
    drop (detach, then drop) partitions wholly older than `retention_days`.
    With dry_run, lists the statements only (the preview: it reads, so it writes
    no audit event). Undo: a dropped partition's rows are gone (restore from
    backup); a pre-created empty partition can be dropped."""
    if dry_run:
        return _maintain_all(dry_run=True, say=log)
    with audit.record(
        actor, "partitions.retention", "all migrated tables", ip_address=ip_address, run=run
    ) as event:
        report = _maintain_all(dry_run=False, say=log)
        event.params["tables"] = [
            {"table": t["table"], "statements": len(t.get("statements", []))}
            for t in report["tables"]
        ]
    return report


def _maintain_all(*, dry_run: bool, say: Callable[[str], None] | None) -> dict[str, Any]:
    say = say or (lambda line: None)
    report: dict[str, Any] = {"dry_run": dry_run, "tables": []}
    for migration in targets():
        backend = backends.for_warehouse(migration.warehouse)
        try:
            done = backend.maintain(migration.plan, dry_run=dry_run)
        finally:
            backend.close()
        done["table"] = migration.target
        report["tables"].append(done)
        for statement in done.get("statements", []):
            say(("would run: " if dry_run else "ran: ") + statement)
    return report


@audited_action("job.start", long=True)
def start_retention(actor: audit.Actor, *, ip_address: str | None = None):
    """Launch the retention job (drops expired partitions). Undo: see apply_retention."""
    return runner.start("partition_retention", {"dry_run": False}, actor, ip_address=ip_address)
