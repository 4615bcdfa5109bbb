"""What the API answers and accepts, typed: the OpenAPI schema is built from these."""

from datetime import datetime
from typing import Any, Literal

from ninja import Field, Schema


class Error(Schema):
    detail: str
    errors: list[str] = []


class Progress(Schema):
    done: int
    total: int | None
    message: str


class RunOut(Schema):
    """A run as `manage.py jobs show --json` prints it (jobs.history.run_as_dict)."""

    id: int
    name: str
    kind: str
    status: str
    attempt: int
    max_attempts: int
    params: dict[str, Any]
    progress: Progress
    result: dict[str, Any]
    error: str
    actor: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    duration_ms: int | None


class RunbookRequestOut(Schema):
    request_id: int
    runbook: str
    status: str
    detail: str = "Filed for approval: a second operator must approve it before it runs."


class JobStatsOut(Schema):
    name: str
    runs: int
    by_status: dict[str, int]
    success_rate: float | None
    avg_ms: float | None
    p95_ms: float | None
    duration_window: int
    last_success: str | None
    last_failure: str | None


class StepOut(Schema):
    position: int
    name: str
    status: str
    checkpoint: dict[str, Any]
    started_at: datetime | None
    finished_at: datetime | None


class MigrationOut(Schema):
    id: int
    warehouse: str
    backend: str
    schema_name: str = Field(..., alias="schema")
    table: str
    options: dict[str, Any]
    state: str
    reason: str
    planned_by: str
    run_id: int | None
    rollback_run_id: int | None
    error: str
    result: dict[str, Any]
    estimates: dict[str, Any] = {}
    confirm: str = Field("", description="the value `confirm` must carry to start it")
    created_at: datetime
    updated_at: datetime
    steps: list[StepOut] = []


class AuditEventOut(Schema):
    id: int
    created_at: datetime
    actor: str = Field(..., alias="actor_name")
    action: str
    target: str
    params: dict[str, Any]
    outcome: str
    error: str
    run_id: int | None


class LaunchIn(Schema):
    params: dict[str, str] = {}
    request_key: str | None = Field(
        None, max_length=64, description="repeat a launch safely: the same key, the same run"
    )


class InvalidateIn(Schema):
    pattern: str = Field(..., max_length=1024)
    confirm: str = Field("", max_length=1024, description="the pattern (or target) when asked")


class WarmIn(Schema):
    warmer: str = Field(..., max_length=200)
    limit: int | None = Field(None, ge=1, le=10_000_000)


class PlanIn(Schema):
    warehouse: str = Field(..., max_length=100)
    schema_name: str = Field(..., alias="schema", max_length=1024)
    table: str = Field(..., max_length=1024)
    column: str = Field(..., max_length=1024)
    scheme: Literal["range", "hash", "list"] = Field(
        "range", description="range (a time, integer or UUIDv7 column), hash or list"
    )
    granularity: str = Field(
        "month", max_length=16, description="ranges of a time or UUIDv7 column: day, week, month"
    )
    width: int | None = Field(
        None, ge=1, description="ranges of an integer column: ids per range (none: a round width)"
    )
    keep_ranges: int | None = Field(
        None,
        ge=1,
        description="integer ranges: retention keeps the newest N ranges holding ids"
        " (none: nothing dropped, ids carry no age)",
    )
    modulus: int | None = Field(None, ge=1, le=1000, description="hash: how many partitions (8)")
    clustering: list[str] = []
    retention_days: int | None = Field(None, ge=1, le=36_500)
    require_partition_filter: bool = False
    batch_rows: int = Field(50_000, ge=100, le=5_000_000)
    throttle_ms: int = Field(0, ge=0, le=10_000, description="pause between copy batches")
    null_keys: Literal["refuse", "lose_uniqueness", "backfill"] = Field(
        "refuse", description="PostgreSQL tables with a primary key and NULL partition keys"
    )
    consent: str = Field(
        "", max_length=100, description='with lose_uniqueness: the typed "lose uniqueness"'
    )
    null_backfill: str = Field(
        "", max_length=100, description="with backfill: the value NULL keys get, e.g. 2024-01-01"
    )


class StartIn(Schema):
    confirm: str = Field(..., max_length=1024, description="the table's name")
    reason: str = Field(..., max_length=2000)


class ReasonIn(Schema):
    reason: str = Field(..., max_length=2000)


class ApplyIndexIn(Schema):
    warehouse: str = Field(..., max_length=100)
    schema_name: str = Field(..., alias="schema", max_length=1024)
    table: str = Field(..., max_length=1024)
    columns: list[str] = Field(..., min_length=1, max_length=32)
    name: str = Field(..., max_length=63)
    confirm: str = Field(..., max_length=1024, description="the index name")
    request_key: str | None = Field(None, max_length=64)


class ConfirmIn(Schema):
    confirm: str = Field(..., max_length=1024)


class RunbookLaunchIn(Schema):
    params: dict[str, Any] = {}
    confirm: str = Field(..., max_length=200, description="the runbook's name")
    reason: str = Field("", max_length=300)
    request_key: str | None = Field(None, max_length=64)
