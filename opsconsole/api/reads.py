"""Read endpoints (viewer): the same service reads the pages show. Reading writes no
audit event (docs/architecture.md, "The audit rule")."""

from typing import Any

from django.shortcuts import get_object_or_404
from ninja import Query, Router, Schema
from ninja.errors import HttpError

from cachemgr.services import stats as cache_stats
from jobs import registry
from jobs.history import filtered_runs, run_as_dict
from jobs.models import Run, RunStatus
from jobs.stats import job_stats
from opsconsole.models import AuditEvent
from partitions.models import Migration
from partitions.queries import advisor, slow

from .auth import require
from .schemas import AuditEventOut, Error, JobStatsOut, MigrationOut, RunOut

router = Router(tags=["read"])
MAX_LIMIT = 500
ERRORS = {401: Error, 403: Error, 404: Error, 429: Error}


class RunFilter(Schema):
    job: str | None = None
    status: RunStatus | None = None
    actor: str | None = None
    before: int | None = None
    limit: int = 50


class AuditFilter(Schema):
    action: str | None = None
    actor: str | None = None
    target: str | None = None
    run_id: int | None = None
    before: int | None = None
    limit: int = 50


def _limit(value: int) -> int:
    if not 1 <= value <= MAX_LIMIT:
        raise HttpError(400, f"limit must be between 1 and {MAX_LIMIT}.")
    return value


def _id(value: int | None) -> int | None:
    if value is not None and not 1 <= value < 2**63:
        raise HttpError(400, "ids are positive 64-bit integers.")
    return value


@router.get("/runs", response={200: list[RunOut], **ERRORS}, summary="Runs, newest first")
def runs(request, filters: Query[RunFilter]):
    require(request, "viewer")
    data = filters.dict(exclude_none=True)
    data["before"] = _id(filters.before)
    found = filtered_runs(data).order_by("-id")[: _limit(filters.limit)]
    return [run_as_dict(run) for run in found]


@router.get("/runs/{run_id}", response={200: RunOut, **ERRORS}, summary="One run and its progress")
def run(request, run_id: int):
    require(request, "viewer")
    return run_as_dict(get_object_or_404(Run, pk=_id(run_id)))


@router.get("/jobs", response={200: list[dict[str, Any]], **ERRORS}, summary="Registered jobs")
def jobs(request):
    require(request, "viewer")
    return [
        {"name": s.name, "kind": s.kind, "description": s.description, "role": s.role}
        for s in registry.JOBS.values()
    ]


@router.get("/jobs/{name}/stats", response={200: JobStatsOut, **ERRORS}, summary="Job statistics")
def stats(request, name: str):
    require(request, "viewer")
    if name not in registry.JOBS:
        raise HttpError(404, f"Unknown job {name!r}.")
    return job_stats(name).as_dict()


@router.get(
    "/cache/{target}/stats", response={200: dict[str, Any], **ERRORS}, summary="Cache stats"
)
def cache(request, target: str):
    require(request, "viewer")
    return cache_stats.server_stats(target)


def migration_as_dict(migration: Migration, *, steps: bool = False) -> dict[str, Any]:
    data = {
        field: getattr(migration, field)
        for field in (
            "warehouse", "backend", "schema", "table", "options", "state", "reason",
            "planned_by", "run_id", "rollback_run_id", "error", "result", "created_at",
            "updated_at",
        )
    }  # fmt: skip
    data["id"] = migration.pk
    data["estimates"] = migration.plan.get("estimates", {})
    data["confirm"] = migration.table
    if steps:
        data["steps"] = list(migration.steps.order_by("position").values())
    return data


@router.get("/migrations", response={200: list[MigrationOut], **ERRORS}, summary="Migrations")
def migrations(request, state: str | None = None, limit: int = 50):
    require(request, "viewer")
    found = Migration.objects.order_by("-id")
    if state:
        found = found.filter(state=state)
    return [migration_as_dict(m) for m in found[: _limit(limit)]]


@router.get(
    "/migrations/{migration_id}",
    response={200: MigrationOut, **ERRORS},
    summary="One migration and its steps",
)
def migration(request, migration_id: int):
    require(request, "viewer")
    return migration_as_dict(get_object_or_404(Migration, pk=_id(migration_id)), steps=True)


@router.get(
    "/queries/{warehouse}/slow",
    response={200: list[dict[str, Any]], **ERRORS},
    summary="Slow statements (pg_stat_statements)",
)
def slow_queries(request, warehouse: str, min_mean_ms: float | None = None, limit: int = 100):
    require(request, "viewer")
    if min_mean_ms is not None and not 0 <= min_mean_ms < 1e12:
        raise HttpError(400, "min_mean_ms must be a positive number of milliseconds.")
    rows = slow.slow_statements(warehouse, min_mean_ms=min_mean_ms, limit=_limit(limit))
    return [{k: v for k, v in row.items() if k != "sparkline"} for row in rows]


@router.get(
    "/queries/{warehouse}/suggestions",
    response={200: dict[str, Any], **ERRORS},
    summary="Index suggestions (the advisor)",
)
def suggestions(request, warehouse: str):
    require(request, "viewer")
    return advisor.suggest_indexes(warehouse).as_dict()


@router.get("/audit", response={200: list[AuditEventOut], **ERRORS}, summary="Audit events")
def audit_events(request, filters: Query[AuditFilter]):
    require(request, "viewer")
    events = AuditEvent.objects.order_by("-id")
    if filters.action:
        events = events.filter(action=filters.action)
    if filters.actor:
        events = events.filter(actor_name=filters.actor)
    if filters.target:
        events = events.filter(target__contains=filters.target)
    if filters.run_id is not None:
        events = events.filter(run_id=_id(filters.run_id))
    if filters.before is not None:
        events = events.filter(id__lt=_id(filters.before))
    return list(events[: _limit(filters.limit)])
