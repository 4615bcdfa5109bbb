"""Partition migrations: read, plan, start, roll back, drop the kept original.

Each function that changes something writes exactly one audit event; long work
goes through jobs.runner (the `partition_migration` and `partition_rollback`
jobs in jobdefs.py, whose bodies are in execution.py).
"""

import os
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from jobs import runner
from opsconsole import audit
from opsconsole.actions import audited_action
from opsconsole.confirmation import require_typed
from opsconsole.roles import has_role
from opsconsole.shared import SharedAnswers

from . import backends, warehouses
from .backends.base import (
    MigrationOptions,
    PartitionInfo,
    PlanRefused,
    TableInfo,
)
from .models import ACTIVE_STATES, Migration, MigrationState, MigrationStep
from .warehouses import WarehouseUnreachable


class MigrationRefused(Exception):
    """An action the operator asked for that must not happen; the message says why."""


def admin_above_bytes() -> int:
    return int(getattr(settings, "PARTITIONS_ADMIN_ABOVE_BYTES", 1 << 30))


def catch_up_options() -> dict[str, int]:
    """The copy's width and the swap's catch-up and lock settings, written into each
    plan (the plan shows them and the run uses the plan's, whatever the settings
    become)."""
    return {
        "lock_backlog": int(getattr(settings, "PARTITIONS_LOCK_BACKLOG", 200)),
        "lock_timeout_ms": int(getattr(settings, "PARTITIONS_LOCK_TIMEOUT_MS", 500)),
        "replay_batch": int(getattr(settings, "PARTITIONS_REPLAY_BATCH", 5000)),
        "catch_up_stall_s": float(getattr(settings, "PARTITIONS_CATCH_UP_STALL_S", 600)),
        "copy_workers": copy_workers(),
    }


def copy_workers() -> int:
    """PARTITIONS_COPY_WORKERS, or min(CPU count, 4). PostgreSQL does not tell a client
    its server's CPU count; the console's is the default (the same machine here)."""
    configured = getattr(settings, "PARTITIONS_COPY_WORKERS", None)
    return max(1, int(configured)) if configured else min(os.cpu_count() or 1, 4)


# --- reading -------------------------------------------------------------------


def inventory(warehouse: str) -> list[TableInfo]:
    """Tables of one warehouse with rows, size and partitioning. Reads only.

    The same for every operator, and a warehouse connection plus a catalog read each
    time: shared by a web process's requests for SHARED_READ_S."""
    return _inventories.get(warehouse)


def read_inventory(warehouse: str) -> list[TableInfo]:
    """`inventory()` read afresh (the Partitions page shares its rendered table instead)."""
    backend = backends.for_warehouse(warehouse)
    try:
        return backend.list_tables()
    finally:
        backend.close()


_inventories = SharedAnswers(read_inventory)


def table_detail(warehouse: str, schema: str, table: str) -> tuple[TableInfo, list[PartitionInfo]]:
    backend = backends.for_warehouse(warehouse)
    try:
        info = backend.describe(schema, table)
        parts = backend.list_partitions(schema, table) if info.partitioning else []
        return info, parts
    finally:
        backend.close()


def active_migration(warehouse: str, schema: str, table: str) -> Migration | None:
    return Migration.objects.filter(
        warehouse=warehouse, schema=schema, table=table, state__in=ACTIVE_STATES
    ).first()


# --- plan ------------------------------------------------------------------------


@audited_action("partitions.plan")
def plan_migration(
    actor: audit.Actor,
    warehouse: str,
    schema: str,
    table: str,
    options: dict[str, Any],
    *,
    ip_address: str | None = None,
) -> Migration:
    """Store a plan (every step's SQL, estimates, dependents, rollbacks) for one
    table. Changes only the console's database; a newer plan of the same table
    supersedes an unstarted one. Undo: plan again, or simply never start it."""
    options = {**catch_up_options(), **options}
    with audit.record(
        actor, "partitions.plan", f"{warehouse}:{schema}.{table}", ip_address=ip_address, **options
    ) as event:
        existing = active_migration(warehouse, schema, table)
        if existing and existing.state != MigrationState.PLANNED:
            raise MigrationRefused(
                f"migration #{existing.pk} of this table is {existing.state}: one at a time"
            )
        url = warehouses.url_of(warehouse)
        backend = backends.for_url(url)
        try:
            info = backend.describe(schema, table)
            opts = MigrationOptions.from_dict(options)
            with transaction.atomic():
                if existing:
                    existing.state = MigrationState.CANCELLED
                    existing.error = "superseded by a newer plan"
                    existing.save(update_fields=["state", "error", "updated_at"])
                migration = Migration.objects.create(
                    warehouse=warehouse,
                    backend=backend.kind,
                    schema=schema,
                    table=table,
                    options=opts.as_dict(),
                    planned_by=audit.actor_label(actor),
                )
                plan = backend.plan(migration.pk, info, opts)
                plan["warehouse"] = warehouse
                plan["schema_fingerprint"] = backend.schema_fingerprint(info)
                migration.plan = plan
                migration.options = plan["options"]  # with what the plan chose (a width)
                migration.plan_hash = Migration.hash_plan(plan)
                migration.schema_fingerprint = plan["schema_fingerprint"]
                migration.save()
                for position, name in enumerate(backend.steps):
                    MigrationStep.objects.create(migration=migration, position=position, name=name)
        except IntegrityError:
            raise MigrationRefused(
                "another migration of this table was planned meanwhile"
            ) from None
        finally:
            backend.close()
        event.params["migration_id"] = migration.pk
        event.params["plan_hash"] = migration.plan_hash
    return migration


# --- confirm and start -------------------------------------------------------------


@dataclass
class StartCheck:
    migration: Migration
    rows: int | None
    bytes: int | None
    needs_admin: bool
    run: Any = None


def _require_table_name(migration: Migration, confirm: str) -> None:
    table = f"{migration.table} or {migration.schema}.{migration.table}"
    message = f"type the table name ({table}) to confirm"
    require_typed(migration.confirmation_words, confirm, message, error=MigrationRefused)


def check_start(actor: audit.Actor, migration: Migration, confirm: str, reason: str) -> StartCheck:
    """Everything that must hold before a plan runs; raises MigrationRefused."""
    if migration.state != MigrationState.PLANNED:
        raise MigrationRefused(f"migration #{migration.pk} is {migration.state}, not planned")
    if not migration.plan_intact:
        raise MigrationRefused("the stored plan does not match its hash: plan again")
    _require_table_name(migration, confirm)
    if not reason.strip():
        raise MigrationRefused("give a reason: it goes into the audit log")
    size = migration.plan.get("estimates", {}).get("bytes") or 0
    needs_admin = size > admin_above_bytes()
    if needs_admin and not (isinstance(actor, str) or has_role(actor, "admin")):
        raise MigrationRefused(
            f"this table is larger than {admin_above_bytes()} bytes: an admin must start it"
        )
    backend = backends.for_warehouse(migration.warehouse)
    try:
        info = backend.describe(migration.schema, migration.table)
        if backend.schema_fingerprint(info) != migration.schema_fingerprint:
            raise MigrationRefused(
                "the table's schema or dependents changed since this plan was made: plan again"
            )
    except PlanRefused as exc:
        raise MigrationRefused(str(exc)) from None
    except WarehouseUnreachable as exc:
        raise MigrationRefused(f"warehouse {migration.warehouse} is unreachable: {exc}") from None
    finally:
        backend.close()
    return StartCheck(migration, info.rows, info.bytes, needs_admin)


@audited_action("partitions.migrate", long=True)
def start_migration(
    actor: audit.Actor,
    migration: Migration,
    *,
    confirm: str,
    reason: str,
    dry_run: bool = False,
    ip_address: str | None = None,
    request_key: str | None = None,
) -> StartCheck:
    """Run the stored plan as a job, after the typed confirmation, the reason,
    the size rule and a re-check of the table's schema. With dry_run, only the
    checks (the preview). Changes: the migration's state and a Run; undo with
    rollback_migration once it has succeeded (a failure rolls back by itself)."""
    if dry_run:
        return check_start(actor, migration, confirm, reason)
    with audit.record(
        actor,
        "partitions.migrate",
        migration.target,
        ip_address=ip_address,
        migration_id=migration.pk,
        plan_hash=migration.plan_hash,
        reason=reason,
    ) as event:
        checked = check_start(actor, migration, confirm, reason)
        with transaction.atomic():
            updated = Migration.objects.filter(
                pk=migration.pk, state=MigrationState.PLANNED
            ).update(state=MigrationState.RUNNING, reason=reason)
            if not updated:
                raise MigrationRefused(f"migration #{migration.pk} was started meanwhile")
            run = runner.start(
                "partition_migration",
                {"migration_id": migration.pk},
                actor,
                request_key=request_key,
                ip_address=ip_address,
                accepted_event=None,  # partitions.migrate, linked to the run below
            )
            Migration.objects.filter(pk=migration.pk).update(run=run)
        event.run = run
        checked.run = run
    migration.refresh_from_db()
    return checked


# --- after success -------------------------------------------------------------------


@audited_action("partitions.rollback", long=True)
def rollback_migration(
    actor: audit.Actor, migration: Migration, *, reason: str, ip_address: str | None = None
):
    """Swap the original back (replaying rows written since the swap) and drop the
    partitioned table, as a job. Only while the original is kept. Undo: plan and
    run the migration again."""
    with audit.record(
        actor,
        "partitions.rollback",
        migration.target,
        ip_address=ip_address,
        migration_id=migration.pk,
        reason=reason,
    ) as event:
        if migration.state != MigrationState.SUCCEEDED:
            raise MigrationRefused(
                f"only a succeeded migration can be rolled back ({migration.state})"
            )
        if migration.result.get("original_dropped"):
            raise MigrationRefused("the original table was dropped: nothing to swap back to")
        if not reason.strip():
            raise MigrationRefused("give a reason: it goes into the audit log")
        with transaction.atomic():
            updated = Migration.objects.filter(
                pk=migration.pk, state=MigrationState.SUCCEEDED
            ).update(state=MigrationState.ROLLING_BACK)
            if not updated:
                raise MigrationRefused("the migration changed meanwhile")
            run = runner.start(
                "partition_rollback",
                {"migration_id": migration.pk},
                actor,
                ip_address=ip_address,
                accepted_event=None,  # partitions.rollback, linked to the run below
            )
            Migration.objects.filter(pk=migration.pk).update(rollback_run=run)
        event.run = run
    migration.refresh_from_db()
    return run


@audited_action("partitions.drop_original")
def drop_original(
    actor: audit.Actor, migration: Migration, *, confirm: str, ip_address: str | None = None
) -> Migration:
    """Drop the original table kept since the swap. Not undoable: after this a
    rollback is impossible (take a backup first if in doubt)."""
    with audit.record(
        actor,
        "partitions.drop_original",
        migration.target,
        ip_address=ip_address,
        migration_id=migration.pk,
        run=migration.run,
    ):
        if migration.state != MigrationState.SUCCEEDED or migration.result.get("original_dropped"):
            raise MigrationRefused("only the original of a succeeded migration can be dropped")
        _require_table_name(migration, confirm)
        backend = backends.for_warehouse(migration.warehouse)
        try:
            backend.drop_original(migration.plan)
        except Exception as exc:  # the warehouse said no: tell the operator, keep state
            raise MigrationRefused(f"the warehouse refused: {exc}") from exc
        finally:
            backend.close()
        migration.result = {**migration.result, "original_dropped": True}
        migration.save(update_fields=["result", "updated_at"])
    return migration
