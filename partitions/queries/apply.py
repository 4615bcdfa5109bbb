"""Applying an index suggestion, and rolling it back, as jobs through jobs.runner.

apply: CREATE INDEX CONCURRENTLY under lock and statement timeouts, progress read
from pg_stat_progress_create_index; on failure or cancel the invalid index it
leaves behind is dropped. Undone by rollback: DROP INDEX CONCURRENTLY (admin).

On a partitioned table (where CREATE INDEX CONCURRENTLY is refused): the parent's
index is created ON ONLY the parent, each partition's index concurrently, and each
attached with ALTER INDEX … ATTACH PARTITION; every step checks the catalog first,
so a retried run resumes where the last attempt stopped. Undone by rollback: DROP
INDEX of the parent's index (partitioned indexes cannot be dropped concurrently),
which takes the partitions' indexes with it.
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

from . import index_elements, pg, pg_partitioned
from .advisor import index_name
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
            partitioned = pg_partitioned.is_partitioned(watcher, schema, table)
            resuming = partitioned and ctx.run.result.get("shell") == name
            _check_target(watcher, schema, table, columns, name, resuming=resuming)
            ctx.log(f"building {name} on {schema}.{table} ({', '.join(columns)})")
            started = time.monotonic()
            built: list[str] = []
            if partitioned:
                built = _build_partitioned(ctx, watcher, warehouse, schema, table, columns, name)
            else:
                _build_watched(ctx, watcher, warehouse, schema, table, columns, name)
            state = pg.index_state(watcher, schema, name)
            if state is None or not state["is_valid"]:
                if not partitioned:  # a partitioned build keeps its steps to resume
                    _drop_invalid(watcher, schema, name, ctx)
                raise QueriesError(f"Index {name} did not end valid; it was dropped.")
        event.params.update(
            size_bytes=state["size_bytes"], definition=state["definition"], partitions=built
        )
        ctx.progress(1, 1, "index is valid")
        return {
            "index": name,
            "schema": schema,
            "table": table,
            "definition": state["definition"],
            "size_bytes": state["size_bytes"],
            "partitions": built,
            "seconds": round(time.monotonic() - started, 2),
        }


def _check_target(
    conn, schema: str, table: str, columns: list[str], name: str, *, resuming: bool = False
) -> None:
    found = pg.resolve_table(conn, schema, table)
    if found is None or found["schema"] != schema:
        raise QueriesError(f"Table {schema}.{table} does not exist.")
    existing = pg.table_columns(conn, found["oid"])
    read = [c for element in columns for c in index_elements.columns_of(element)]
    missing = [c for c in dict.fromkeys(read) if c not in existing]
    if missing:
        raise QueriesError(f"{schema}.{table} has no column {', '.join(missing)}.")
    if not resuming and pg.index_state(conn, schema, name) is not None:
        raise QueriesError(f"An index named {schema}.{name} already exists.")


def _build_partitioned(ctx, watcher, warehouse, schema, table, columns, name) -> list[str]:
    """The parent's index ON ONLY the parent, each partition's concurrently, each one
    attached; steps already done (seen in the catalog) are skipped, so a new attempt
    resumes. Returns the partitions' index names."""
    pg.set_timeouts(
        watcher, lock_timeout_ms=lock_timeout_ms(), statement_timeout_ms=statement_timeout_ms()
    )
    children = pg_partitioned.partitions(watcher, schema, table)
    index_of = {(schema, table): name}
    index_of.update({(c["schema"], c["table"]): index_name(c["table"], columns) for c in children})
    shells = [(schema, table)] + [(c["schema"], c["table"]) for c in children if not c["is_leaf"]]
    for shell_schema, shell_table in shells:  # top-down: shells exist before attaching
        shell = index_of[(shell_schema, shell_table)]
        if pg.index_state(watcher, shell_schema, shell) is None:
            pg_partitioned.create_index_on_only(watcher, shell_schema, shell_table, columns, shell)
            ctx.log(f"created {shell} ON ONLY {shell_schema}.{shell_table}")
    ctx.checkpoint(shell=name)
    total = len(children) + 1
    ctx.progress(1, total, "index on the parent created (ON ONLY)")
    # Deepest first: a sub-partitioned child's shell is attached once its own are.
    for done, child in enumerate(sorted(children, key=lambda c: -c["level"]), start=2):
        ctx.check()
        _index_partition(ctx, watcher, warehouse, child, columns, index_of)
        ctx.progress(done, total, f"{child['schema']}.{child['table']} indexed and attached")
    return [index_of[(c["schema"], c["table"])] for c in children]


def _index_partition(ctx, watcher, warehouse, child: dict, columns, index_of: dict) -> None:
    """Build one leaf partition's index concurrently (unless a valid one is there) and
    attach it to its parent's index (unless it already is)."""
    child_schema, child_table = child["schema"], child["table"]
    child_index = index_of[(child_schema, child_table)]
    if child["is_leaf"]:
        state = pg.index_state(watcher, child_schema, child_index)
        if state is not None and not state["is_valid"]:
            _drop_invalid(watcher, child_schema, child_index, ctx)
            state = None
        if state is None:
            ctx.log(f"building {child_index} on {child_schema}.{child_table}")
            _build_watched(ctx, watcher, warehouse, child_schema, child_table, columns, child_index)
    parent_schema, parent = child["parent_schema"], child["parent_table"]
    parent_index = index_of[(parent_schema, parent)]
    if not pg_partitioned.is_attached(
        watcher, parent_schema, parent_index, child_schema, child_index
    ):
        pg_partitioned.attach_index(watcher, parent_schema, parent_index, child_schema, child_index)
        ctx.log(f"attached {child_index} to {parent_index}")


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
            if pg_partitioned.is_partitioned_index(conn, schema, name):
                event.params["partitioned"] = True
                pg_partitioned.drop_index(conn, schema, name)
            else:
                pg.drop_index_concurrently(conn, schema, name)
            if pg.index_state(conn, schema, name) is not None:
                raise QueriesError(f"Index {schema}.{name} is still there after the drop.")
        ctx.progress(1, 1, "dropped")
    return {"dropped": name, "schema": schema, "definition": state["definition"]}
