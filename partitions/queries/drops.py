"""Indexes worth dropping, and dropping them as audited jobs that can be undone.

Worth dropping: an index with no scan since the statistics were reset at least
QUERIES_UNUSED_MIN_DAYS ago (younger statistics prove nothing), or one a duplicate
or a wider index covers; never one backing a constraint (primary key, unique,
exclusion) nor a unique one. The drop job saves the index's definition in its run
and its audit event, then DROP INDEX CONCURRENTLY; its rollback job re-creates the
saved definition CONCURRENTLY (an invalid leftover of a failed re-create is dropped).
"""

import psycopg
from django.conf import settings
from pglast import ast
from pglast.stream import RawStream
from psycopg import sql

from jobs import runner
from jobs.models import Run, RunStatus
from opsconsole import audit
from opsconsole.actions import audited_action
from opsconsole.confirmation import require_typed
from partitions.warehouses.postgres import open_warehouse

from . import health, parsing, pg, workload
from .apply import lock_timeout_ms, statement_timeout_ms
from .errors import ConfirmationMismatch, QueriesError

DROP_JOB = "queries.drop_unneeded_index"
RECREATE_JOB = "queries.recreate_index"


def unused_min_days() -> float:
    return float(getattr(settings, "QUERIES_UNUSED_MIN_DAYS", 7))


def drop_suggestions(
    warehouse: str, *, schema: str | None = None, report: health.Health | None = None
) -> list[dict]:
    """Unused (when the statistics are old enough) and duplicate or covered indexes,
    each with the reason (`report`: an index health report already read). Changes
    nothing."""
    report = report or health.index_health(warehouse, schema=schema)
    with open_warehouse(warehouse) as conn:
        age_days = workload.statistics_age_s(conn) / 86400
        constrained = {
            (i["schema"], i["name"]) for i in pg.indexes(conn, schema=schema) if _kept(i)
        }
    found: dict[tuple[str, str], dict] = {}
    for index in report.redundant:
        reason = f"{index['reason']} {index['covered_by']}"
        found[(index["schema"], index["name"])] = {**index, "why": reason}
    if age_days >= unused_min_days():
        for index in report.unused:
            key = (index["schema"], index["name"])
            why = f"no scan in the {age_days:.0f} days since the statistics were reset"
            found.setdefault(key, {**index, "why": why})
    return [item for key, item in found.items() if key not in constrained]


def _kept(index: dict) -> bool:
    """Never suggested for a drop: it enforces something."""
    return index["backs_constraint"] or index["is_unique"] or index["is_primary"]


@audited_action("job.start", long=True)
def start_drop(actor, params: dict, *, ip_address=None) -> Run:
    """Start the drop job (admin; the index name typed as confirmation, checked by the
    job's form). Undone by start_recreate on the finished run."""
    return runner.start(DROP_JOB, params, actor, ip_address=ip_address)


@audited_action("job.start", long=True)
def start_recreate(actor, drop_run: Run, confirm: str, *, ip_address=None) -> Run:
    """Start re-creating the index `drop_run` dropped, from its saved definition."""
    if drop_run.name != DROP_JOB or drop_run.status != RunStatus.SUCCEEDED:
        raise QueriesError(f"Run #{drop_run.pk} is not a completed index drop.")
    name = drop_run.result["dropped"]
    message = f"Type the index name {name!r} to re-create it."
    require_typed(name, confirm, message, error=ConfirmationMismatch)
    params = {
        "warehouse": drop_run.params["warehouse"],
        "schema": drop_run.params["schema"],
        "name": name,
        "confirm": confirm,
        "drop_run": drop_run.pk,
    }
    return runner.start(RECREATE_JOB, params, actor, ip_address=ip_address)


def _actor(run: Run):
    return run.actor or run.actor_name or None


def drop_unneeded(ctx, params: dict) -> dict:
    """Job body: save the index's definition, then DROP INDEX CONCURRENTLY. Audited as
    queries.index.drop_unneeded (with the definition). Undone by the recreate job."""
    warehouse, schema, name = params["warehouse"], params["schema"], params["name"]
    target = f"{warehouse}:{schema}.{name}"
    with (
        audit.record(_actor(ctx.run), "queries.index.drop_unneeded", target, run=ctx.run) as event,
        open_warehouse(warehouse) as conn,
    ):
        index = next((i for i in pg.indexes(conn, schema=schema) if i["name"] == name), None)
        if index is None:
            raise QueriesError(f"Index {schema}.{name} does not exist (already dropped?).")
        if _kept(index):
            raise QueriesError(f"Index {schema}.{name} enforces a constraint: not dropped.")
        event.params["definition"] = index["definition"]
        ctx.checkpoint(definition=index["definition"], table=index["table"])
        ctx.progress(0, 1, "dropping")
        pg.set_timeouts(
            conn, lock_timeout_ms=lock_timeout_ms(), statement_timeout_ms=statement_timeout_ms()
        )
        pg.drop_index_concurrently(conn, schema, name)
        ctx.progress(1, 1, "dropped")
    return {
        "dropped": name,
        "schema": schema,
        "table": index["table"],
        "definition": index["definition"],
        "size_bytes": index["size_bytes"],
    }


def concurrent_definition(definition: str) -> str:
    """pg_get_indexdef's CREATE INDEX, rewritten (through pglast) to build CONCURRENTLY."""
    statement = parsing.parse_one(definition)
    if not isinstance(statement, ast.IndexStmt):
        raise QueriesError("The saved definition is not a CREATE INDEX statement.")
    statement.concurrent = True
    return RawStream()(statement)


def _execute(conn: psycopg.Connection, statement: str) -> None:
    # The text is pglast's rendering of PostgreSQL's own pg_get_indexdef output, never
    # operator input.
    conn.execute(sql.SQL(statement))  # type: ignore[arg-type]


def recreate(ctx, params: dict) -> dict:
    """Job body: CREATE INDEX CONCURRENTLY from the definition the drop run saved.
    Audited as queries.index.recreate. A failed build's invalid index is dropped."""
    warehouse, schema, name = params["warehouse"], params["schema"], params["name"]
    drop_run = Run.objects.get(pk=params["drop_run"], name=DROP_JOB)
    definition = drop_run.result["definition"]
    target = f"{warehouse}:{schema}.{name}"
    with (
        audit.record(
            _actor(ctx.run), "queries.index.recreate", target, run=ctx.run, definition=definition
        ),
        open_warehouse(warehouse) as conn,
    ):
        if pg.index_state(conn, schema, name) is not None:
            raise QueriesError(f"An index named {schema}.{name} already exists.")
        ctx.progress(0, 1, "building")
        pg.set_timeouts(
            conn, lock_timeout_ms=lock_timeout_ms(), statement_timeout_ms=statement_timeout_ms()
        )
        try:
            _execute(conn, concurrent_definition(definition))
        except psycopg.Error as exc:
            state = pg.index_state(conn, schema, name)
            if state is not None and not state["is_valid"]:
                pg.drop_index_concurrently(conn, schema, name)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise QueriesError(f"CREATE INDEX CONCURRENTLY failed: {first}") from None
        state = pg.index_state(conn, schema, name)
        ctx.progress(1, 1, "index is valid")
    return {"index": name, "schema": schema, "definition": state["definition"]}
