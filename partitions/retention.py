"""Retention and maintenance of migrated tables: pre-create upcoming
PostgreSQL partitions, drop those past retention, report BigQuery expiration."""

from collections.abc import Callable
from typing import Any

from opsconsole import audit

from . import backends
from .models import Migration, MigrationState


def targets() -> list[Migration]:
    return list(Migration.objects.filter(state=MigrationState.SUCCEEDED).order_by("id"))


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
    With dry_run, lists the statements only. Undo: a dropped partition's rows are
    gone (restore from backup); a pre-created empty partition can be dropped."""
    say = log or (lambda line: None)
    report: dict[str, Any] = {"dry_run": dry_run, "tables": []}
    action = "partitions.retention_preview" if dry_run else "partitions.retention"
    with audit.record(
        actor, action, "all migrated tables", ip_address=ip_address, run=run
    ) as event:
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
        event.params["tables"] = [
            {"table": t["table"], "statements": len(t.get("statements", []))}
            for t in report["tables"]
        ]
    return report
