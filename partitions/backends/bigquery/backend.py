"""BigQuery (google-cloud-bigquery): inventory, plan, steps and undo.

Names are validated, then quoted with backticks; values travel as query
parameters. BigQuery has no triggers, so writes during a migration cannot be
captured: the swap refuses (and the run rolls back) if the source changed since
it was verified. Every step's effect is read back, never trusted from a status:
the emulator, for one, reports some DDL as done without doing it.
"""

import hashlib
import json
import time
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import bigquery

from partitions.warehouses import Warehouse, WarehouseUnreachable
from partitions.warehouses import bigquery as connections

from ..base import (
    Backend,
    Column,
    Dependent,
    MigrationOptions,
    PartitionInfo,
    PlanRefused,
    StepReport,
    TableInfo,
)
from . import run
from .grammar import GRANULARITIES, QUERY_TIMEOUT_S, RETRY, TABLE_RE, check, column, to_params
from .plan import compose_plan, refuse_unless_migratable

STEPS = ("backup", "create", "copy", "verify", "swap", "post_check")
# The emulator leaves numRows and numBytes at 0 for rows written by DML; the inventory
# counts the rows of at most this many such tables (a COUNT(*) each) and says so.
COUNT_EMPTY_LOOKING_AT_MOST = 20


class BigQueryBackend(Backend):
    kind = "bigquery"
    granularities = GRANULARITIES
    steps = STEPS

    def __init__(self, warehouse: Warehouse):
        self.warehouse = warehouse
        self.project, self.dataset = warehouse.project, warehouse.dataset
        self._client: bigquery.Client | None = None

    @property
    def endpoint(self) -> str | None:
        return self.warehouse.endpoint

    @property
    def client(self) -> bigquery.Client:
        if self._client is None:
            self._client = connections.client(self.warehouse)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def name(self, table: str) -> str:
        return f"`{self.project}.{self.dataset}.{check(TABLE_RE, table, 'table name')}`"

    def ref(self, table: str) -> str:
        check(TABLE_RE, table, "table name")
        return f"{self.project}.{self.dataset}.{table}"

    def query(self, text: str, params: dict[str, Any] | None = None) -> list[tuple]:
        config = bigquery.QueryJobConfig(query_parameters=to_params(params or {}))
        try:
            job = self.client.query(text, job_config=config, retry=RETRY)
            return [tuple(row.values()) for row in job.result(timeout=QUERY_TIMEOUT_S)]
        except (gexc.ServiceUnavailable, gexc.RetryError, ConnectionError) as exc:
            raise WarehouseUnreachable(str(exc)) from exc
        except OSError as exc:
            raise WarehouseUnreachable(str(exc)) from exc

    def table(self, table: str) -> bigquery.Table | None:
        try:
            return self.client.get_table(self.ref(table), retry=RETRY)
        except gexc.NotFound:
            return None
        except (gexc.ServiceUnavailable, OSError) as exc:
            raise WarehouseUnreachable(str(exc)) from exc

    def ping(self) -> str:
        return connections.ping(self.warehouse.url)

    # --- inventory -------------------------------------------------------------

    def list_tables(self) -> list[TableInfo]:
        found = []
        for item in self.client.list_tables(f"{self.project}.{self.dataset}", timeout=30):
            if item.table_type != "TABLE":
                continue
            table = self.table(item.table_id)
            if table is not None:
                found.append(self._info(table, rows=table.num_rows))
        if self.endpoint:
            self._count_rows_the_emulator_leaves_out(found)
        return found

    def _count_rows_the_emulator_leaves_out(self, tables: list[TableInfo]) -> None:
        """The emulator reports 0 rows and 0 bytes for a table filled by INSERT: count
        its rows (labelled counted) and leave its size unknown rather than show 0."""
        empty_looking = [t for t in tables if not t.rows and not t.bytes]
        for info in empty_looking[:COUNT_EMPTY_LOOKING_AT_MOST]:
            info.rows = self._count(info.name)
            info.rows_counted = True
            if info.rows:
                info.bytes = None

    def _count(self, table: str) -> int:
        return self.query(f"SELECT COUNT(*) FROM {self.name(table)}")[0][0]  # noqa: S608 - validated, backtick-quoted names only

    def _info(self, table: bigquery.Table, rows: int | None) -> TableInfo:
        tp = table.time_partitioning
        partitioning = None
        if tp is not None:
            partitioning = {
                "type": tp.type_,
                "column": tp.field or "",
                "granularity": tp.type_,
                "clustering": list(table.clustering_fields or []),
                "expiration_days": (tp.expiration_ms or 0) // 86_400_000 or None,
                "require_partition_filter": bool(table.require_partition_filter),
                "definition": f"{tp.type_} on {tp.field or '(not read back)'}",
            }
        return TableInfo(
            schema=self.dataset,
            name=table.table_id,
            kind="partitioned" if tp is not None else "table",
            rows=rows,
            bytes=table.num_bytes,
            columns=[Column(f.name, f.field_type, f.mode != "REQUIRED") for f in table.schema],
            partitioning=partitioning,
        )

    def list_partitions(self, schema: str, table: str) -> list[PartitionInfo]:
        try:
            rows = self.query(
                "SELECT partition_id, total_rows, total_logical_bytes, last_modified_time"  # noqa: S608 - validated, backtick-quoted names only
                f" FROM `{self.project}.{self.dataset}.INFORMATION_SCHEMA.PARTITIONS`"
                " WHERE table_name = @t ORDER BY partition_id",
                {"t": table},
            )
        except Exception:  # the emulator can hang or fail here: show none rather than fail
            return []
        return [
            PartitionInfo(pid, pid, n, size, stamp.isoformat(timespec="seconds") if stamp else None)
            for pid, n, size, stamp in rows
        ]

    def describe(self, schema: str, table: str) -> TableInfo:
        found = self.table(table)
        if found is None:
            raise PlanRefused(f"table {self.dataset}.{table} does not exist")
        if found.table_type != "TABLE":
            raise PlanRefused(f"{self.dataset}.{table} is a {found.table_type}, not a table")
        info = self._info(found, self._count(table))
        info.rows_counted = True
        if self.endpoint and info.rows and not info.bytes:
            info.bytes = None  # the emulator's 0 bytes, see list_tables
        info.dependents = self.dependents(table)
        return info

    def dependents(self, table: str) -> list[Dependent]:
        views = self.query(
            "SELECT table_name, view_definition"  # noqa: S608 - validated, backtick-quoted names only
            f" FROM `{self.project}.{self.dataset}.INFORMATION_SCHEMA.VIEWS`"
        )
        marker = f"{self.dataset}.{table}`"
        return [
            Dependent("view", name, "keeps answering: it reads the old name, which the swap keeps")
            for name, definition in views
            if marker in (definition or "")
        ]

    def schema_fingerprint(self, info: TableInfo) -> str:
        shape = [info.kind, [(c.name, c.type, c.nullable) for c in info.columns]]
        return hashlib.sha256(json.dumps(shape).encode()).hexdigest()

    # --- plan ----------------------------------------------------------------

    def plan(self, migration_id: int, info: TableInfo, options: MigrationOptions) -> dict:
        refuse_unless_migratable(info, options)
        key = column(options.column)
        kmin, kmax, nulls = self.query(
            f"SELECT MIN({key}), MAX({key}), COUNTIF({key} IS NULL) FROM {self.name(info.name)}"  # noqa: S608 - validated, backtick-quoted names only
        )[0]
        profile = {"rows": info.rows, "key_min": kmin, "key_max": kmax, "null_keys": nulls}
        return compose_plan(self, migration_id, info, options, profile)

    # --- running ---------------------------------------------------------------

    def run_step(self, plan: dict, step: str, report: StepReport) -> dict:
        return run.run_step(self, plan, step, report)

    def undo(self, plan: dict, swapped: bool, report: StepReport) -> dict:
        return run.undo(self, plan, swapped, report)

    def is_swapped(self, plan: dict) -> bool:
        return run.swap_mode(self, plan) is not None

    def drop_original(self, plan: dict) -> None:
        run.drop_original(self, plan)

    def maintain(self, plan: dict, dry_run: bool) -> dict:
        table = self.table(plan["names"]["new"]) or self.table(plan["table"])
        tp = table.time_partitioning if table is not None else None
        expiration = (tp.expiration_ms or 0) // 86_400_000 if tp else 0
        return {
            "statements": [],
            "expired": [],
            "expiration": f"{expiration} days" if expiration else "none",
        }

    def wait_until(self, predicate, seconds: float = 10.0) -> bool:
        """Metadata can lag a statement: read back a few times before concluding."""
        deadline = time.monotonic() + seconds
        while True:
            if predicate():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.3)
