"""Applying an index suggestion, and rolling it back, as jobs through jobs.runner.

apply: CREATE INDEX CONCURRENTLY under lock and statement timeouts, progress read
from pg_stat_progress_create_index; on failure or cancel the invalid index it
leaves behind is dropped. Undone by rollback: DROP INDEX CONCURRENTLY (admin).
"""

import threading
import time

import psycopg
from django.conf import settings

from jobs import runner
from jobs.models import Run, RunStatus
from opsconsole import audit
from opsconsole.actions import audited_action
from opsconsole.confirmation import require_typed
from opsconsole.roles import has_role
from partitions.warehouses.postgres import open_warehouse

from . import pg
from .errors import ConfirmationMismatch, QueriesError

APPLY_JOB = "queries.apply_index"
ROLLBACK_JOB = "queries.rollback_index"
POLL_S = 0.5


def lock_timeout_ms() -> int:
    return int(getattr(settings, "QUERIES_INDEX_LOCK_TIMEOUT_MS", 5_000))


def statement_timeout_ms() -> int:
    return int(getattr(settings, "QUERIES_INDEX_STATEMENT_TIMEOUT_MS", 3_600_000))


def _actor(run: Run):
    return run.actor or run.actor_name or None


# --- launching ---------------------------------------------------------------


@audited_action("job.start", long=True)
def start_apply(actor, params: dict, *, request_key=None, ip_address=None) -> Run:
    """Start the apply job; its parameters (with the typed confirmation) are checked
    by the job's form. The launch is audited as job.start by the runner."""
    return runner.start(APPLY_JOB, params, actor, request_key=request_key, ip_address=ip_address)


def applied_runs(limit: int = 50):
    """Successful apply runs, newest first, each with the rollback run if any."""
    runs = list(Run.objects.filter(name=APPLY_JOB).order_by("-id")[:limit])
    rollbacks = {}
    for rb in Run.objects.filter(name=ROLLBACK_JOB).order_by("id"):
        rollbacks[str(rb.params.get("apply_run"))] = rb
    for run in runs:
        run.rollback_run = rollbacks.get(str(run.pk))
    return runs


@audited_action("job.start", long=True)
def start_rollback(actor, apply_run: Run, confirm: str, *, ip_address=None) -> Run:
    """Start DROP INDEX CONCURRENTLY of the index `apply_run` created (admin only, the
    index name typed as confirmation). Undone by applying the suggestion again."""
    if apply_run.name != APPLY_JOB or apply_run.status != RunStatus.SUCCEEDED:
        raise QueriesError(f"Run #{apply_run.pk} is not a completed index build.")
    name = apply_run.result.get("index") or apply_run.params["name"]
    params = {
        "warehouse": apply_run.params["warehouse"],
        "schema": apply_run.params["schema"],
        "name": name,
        "confirm": confirm,
        "apply_run": apply_run.pk,
    }
    require_typed(
        name, confirm, f"Type the index name {name!r} to drop it.", error=ConfirmationMismatch
    )
    return runner.start(ROLLBACK_JOB, params, actor, ip_address=ip_address)


# --- the job bodies ----------------------------------------------------------


def build_index(ctx, params: dict) -> dict:
    """Job body: CREATE INDEX CONCURRENTLY params[name] ON schema.table (columns).
    Audited as queries.index.create (one event, linked to the run). A failed or
    cancelled build leaves no invalid index: it is dropped before the error is raised."""
    warehouse, schema, table = params["warehouse"], params["schema"], params["table"]
    columns, name = params["columns"], params["name"]
    with audit.record(
        _actor(ctx.run),
        "queries.index.create",
        f"{warehouse}:{schema}.{name}",
        run=ctx.run,
        table=table,
        columns=columns,
    ) as event:
        with open_warehouse(warehouse) as watcher:
            _check_target(watcher, schema, table, columns, name)
            ctx.log(f"building {name} on {schema}.{table} ({', '.join(columns)})")
            started = time.monotonic()
            _build_watched(ctx, watcher, warehouse, schema, table, columns, name)
            state = pg.index_state(watcher, schema, name)
            if state is None or not state["is_valid"]:
                _drop_invalid(watcher, schema, name, ctx)
                raise QueriesError(f"Index {name} did not end valid; it was dropped.")
        event.params.update(size_bytes=state["size_bytes"], definition=state["definition"])
        ctx.progress(1, 1, "index is valid")
        return {
            "index": name,
            "schema": schema,
            "table": table,
            "definition": state["definition"],
            "size_bytes": state["size_bytes"],
            "seconds": round(time.monotonic() - started, 2),
        }


def _check_target(conn, schema: str, table: str, columns: list[str], name: str) -> None:
    found = pg.resolve_table(conn, schema, table)
    if found is None or found["schema"] != schema:
        raise QueriesError(f"Table {schema}.{table} does not exist.")
    missing = [c for c in columns if c not in pg.table_columns(conn, found["oid"])]
    if missing:
        raise QueriesError(f"{schema}.{table} has no column {', '.join(missing)}.")
    if pg.index_state(conn, schema, name) is not None:
        raise QueriesError(f"An index named {schema}.{name} already exists.")


def _build_watched(ctx, watcher, warehouse, schema, table, columns, name) -> None:
    """Run the build on its own connection while this one reports its progress."""
    outcome: dict = {}
    with open_warehouse(warehouse, own_session=True) as builder:
        pg.set_timeouts(
            builder,
            lock_timeout_ms=lock_timeout_ms(),
            statement_timeout_ms=statement_timeout_ms(),
        )
        pid = pg.backend_pid(builder)

        def build() -> None:
            try:
                pg.create_index_concurrently(builder, schema, table, columns, name)
            except Exception as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=build, name=f"create-index-{name}", daemon=True)
        thread.start()
        phases: list[str] = []
        try:
            while thread.is_alive():
                _report(ctx, watcher, pid, phases)
                thread.join(POLL_S)
        except BaseException:
            pg.cancel_backend(watcher, pid)  # cancelled or timed out: stop the build too
            thread.join()
            _drop_invalid(watcher, schema, name, ctx)
            raise
    if "error" in outcome:
        _drop_invalid(watcher, schema, name, ctx)
        exc = outcome["error"]
        if isinstance(exc, psycopg.Error):
            message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise QueriesError(f"CREATE INDEX CONCURRENTLY failed: {message}") from None
        raise exc


def _report(ctx, watcher, pid: int, phases: list[str]) -> None:
    """Copy pg_stat_progress_create_index of the building backend onto the run."""
    progress = pg.create_index_progress(watcher, pid)
    if progress is None:
        ctx.check()
        return
    if not phases or phases[-1] != progress["phase"]:
        phases.append(progress["phase"])
        ctx.log(f"phase: {progress['phase']}")
    total = progress["blocks_total"] or progress["tuples_total"] or 0
    done = progress["blocks_done"] if progress["blocks_total"] else progress["tuples_done"]
    ctx.progress(int(done or 0), int(total), progress["phase"])


def _drop_invalid(conn, schema: str, name: str, ctx) -> None:
    state = pg.index_state(conn, schema, name)
    if state is not None and not state["is_valid"]:
        pg.drop_index_concurrently(conn, schema, name)
        ctx.log(f"dropped the invalid index {schema}.{name} the failed build left")


def drop_index(ctx, params: dict) -> dict:
    """Job body: DROP INDEX CONCURRENTLY the index an apply run created. Admin only;
    audited as queries.index.drop. Undone by applying the suggestion again."""
    warehouse, schema, name = params["warehouse"], params["schema"], params["name"]
    with audit.record(
        _actor(ctx.run),
        "queries.index.drop",
        f"{warehouse}:{schema}.{name}",
        run=ctx.run,
        apply_run=params.get("apply_run"),
    ) as event:
        actor = ctx.run.actor
        if actor is None or not has_role(actor, "admin"):
            raise QueriesError("Dropping an index needs the admin role.")
        with open_warehouse(warehouse) as conn:
            state = pg.index_state(conn, schema, name)
            if state is None:
                raise QueriesError(f"Index {schema}.{name} does not exist (already dropped?).")
            event.params["definition"] = state["definition"]
            ctx.progress(0, 1, "dropping")
            pg.set_timeouts(
                conn,
                lock_timeout_ms=lock_timeout_ms(),
                statement_timeout_ms=statement_timeout_ms(),
            )
            pg.drop_index_concurrently(conn, schema, name)
            if pg.index_state(conn, schema, name) is not None:
                raise QueriesError(f"Index {schema}.{name} is still there after the drop.")
        ctx.progress(1, 1, "dropped")
    return {"dropped": name, "schema": schema, "definition": state["definition"]}
