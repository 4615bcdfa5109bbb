"""The JSON API against the real services: reads, actions, refusals, rate limit, audit."""

import json

import psycopg
import pytest
from django.core.management import call_command
from psycopg import sql

from jobs.history import run_as_dict
from jobs.models import Run
from opsconsole.models import AuditEvent
from opsconsole.notifications import services as notify
from partitions.models import Migration
from tests.cachemgr.conftest import scratch  # noqa: F401  (fixture)
from tests.jobs import testjobs
from tests.jobs.conftest import release_slow_jobs, wait_for  # noqa: F401  (fixture)
from tests.partitions.conftest import payments, payments_with_null_keys  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db
assert testjobs  # registers test_ok / test_slow


# --- reads ----------------------------------------------------------------------


def test_every_use_is_logged_with_the_token_name(api_as, caplog):
    api = api_as("viewer")
    with caplog.at_level("INFO", logger="opsconsole.api"):
        api.get("/jobs")
    assert f"api GET /api/jobs by {api.user.username} (token tests)" in caplog.text


def test_it_lists_runs_as_the_cli_prints_them(api_as, make_user):
    run = Run.objects.create(name="test_ok", actor_name="x", params={"a": "1"})
    response = api_as("viewer").get("/runs", job="test_ok")
    assert response.status_code == 200
    assert response.json() == [json.loads(json.dumps(run_as_dict(run)))]


def test_it_shows_one_run_and_404s_a_missing_one(api_as):
    api = api_as("viewer")
    run = Run.objects.create(name="test_ok", actor_name="x", progress_done=3, progress_total=9)
    assert api.get(f"/runs/{run.pk}").json()["progress"] == {"done": 3, "total": 9, "message": ""}
    missing = api.get("/runs/999999")
    assert missing.status_code == 404 and missing.json() == {"detail": "Not found."}


def test_it_refuses_bad_query_values_with_400_not_500(api_as):
    api = api_as("viewer")
    for path, params in [
        ("/runs", {"limit": "99999999999999999999999"}),
        ("/runs", {"limit": "0"}),
        ("/runs", {"status": "nonsense"}),
        ("/runs/99999999999999999999999", {}),
        ("/audit", {"before": "-1"}),
        ("/migrations", {"limit": "abc"}),
    ]:
        response = api.get(path, **params)
        assert response.status_code == 400, (path, params, response.content)
        assert response.json()["detail"]


def test_it_gives_job_stats_and_404s_an_unknown_job(api_as):
    api = api_as("viewer")
    Run.objects.create(name="test_ok", actor_name="x", status="succeeded", duration_ms=10)
    stats = api.get("/jobs/test_ok/stats").json()
    assert stats["runs"] == 1 and stats["by_status"] == {"succeeded": 1}
    assert api.get("/jobs/nope/stats").status_code == 404


def test_it_reads_cache_stats_from_the_real_redis(api_as, settings):
    api = api_as("viewer")
    stats = api.get("/cache/main/stats")
    assert stats.status_code == 200 and "used_memory" in json.dumps(stats.json())
    assert api.get("/cache/nope/stats").status_code == 404
    settings.CACHE_TARGETS = {**settings.CACHE_TARGETS, "down": "redis://127.0.0.1:1/0"}
    down = api.get("/cache/down/stats")
    assert down.status_code == 503 and "unreachable" in down.json()["detail"]


def test_it_lists_audit_events_and_writes_none_for_reading(api_as):
    api = api_as("viewer")
    before = AuditEvent.objects.count()
    events = api.get("/audit", action="token.create").json()
    assert [e["action"] for e in events] == ["token.create"]
    assert events[0]["actor"] == api.user.username
    assert AuditEvent.objects.count() == before


def test_it_reads_slow_queries_and_suggestions_of_the_warehouse(api_as, settings, warehouse_db):
    settings.WAREHOUSES = {"main": warehouse_db}
    api = api_as("viewer")
    slow = api.get("/queries/main/slow", min_mean_ms=0, limit=5)
    assert slow.status_code == 200 and isinstance(slow.json(), list)
    assert {"query", "calls", "mean_ms"} <= set(slow.json()[0]) if slow.json() else True
    advice = api.get("/queries/main/suggestions")
    assert advice.status_code == 200 and advice.json()["warehouse"] == "main"
    assert api.get("/queries/nowhere/slow").status_code == 404


# --- rate limit -------------------------------------------------------------------------


def test_it_limits_each_token_per_minute(api_as, settings):
    settings.API_RATE_PER_MINUTE = 3
    api, other = api_as("viewer"), api_as("viewer")
    codes = [api.get("/jobs").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = api.get("/jobs")
    assert 0 < int(refused["Retry-After"]) <= 60
    assert other.get("/jobs").status_code == 200  # its own budget


# --- actions ----------------------------------------------------------------------------


def test_the_cli_and_the_api_launch_the_same_run(api_as, celery_worker, capsys):
    api = api_as("operator")
    response = api.post("/jobs/test_ok/launch", {"params": {}})
    assert response.status_code == 202
    via_api = wait_for(Run.objects.get(pk=response.json()["id"]))
    call_command("jobs", "run", "test_ok", "--wait", "--json")
    via_cli = Run.objects.get(pk=json.loads(capsys.readouterr().out)["id"])
    shown = api.get(f"/runs/{via_cli.pk}").json()
    call_command("jobs", "show", str(via_cli.pk), "--json")
    assert shown == json.loads(capsys.readouterr().out)  # one shape for both twins
    same = ("name", "kind", "status", "params", "result", "attempt", "error")
    assert {k: shown[k] for k in same} == {k: run_as_dict(via_api)[k] for k in same}
    for run, actor in ((via_api, f"{api.user.username} (token tests)"), (via_cli, "cli:")):
        events = AuditEvent.objects.filter(run=run).order_by("id")
        assert [e.action for e in events] == ["job.start", "job.end"]
        assert events[0].actor_name.startswith(actor) and run.actor_name.startswith(actor)
        assert events[1].params["status"] == "succeeded"


def test_a_second_launch_of_an_exclusive_job_is_a_409(api_as, celery_worker, request):
    api, release = api_as("operator"), request.getfixturevalue("release_slow_jobs")
    first = api.post("/jobs/test_slow/launch", {"params": {"seconds": "5"}})
    assert first.status_code == 202
    second = api.post("/jobs/test_slow/launch", {"params": {"seconds": "5"}})
    assert second.status_code == 409 and second.json()["run_id"] == first.json()["id"]
    cancelled = api.post(f"/runs/{first.json()['id']}/cancel")
    assert cancelled.status_code == 200
    release.set()
    run = wait_for(Run.objects.get(pk=first.json()["id"]))
    assert run.status in ("cancelled", "succeeded")
    again = api.post(f"/runs/{first.json()['id']}/cancel")
    assert again.status_code == 409 and "already ended" in again.json()["detail"]


def test_a_bad_launch_is_a_400_and_an_unknown_job_a_404(api_as):
    api = api_as("operator")
    assert api.post("/jobs/nope/launch").status_code == 404
    broken = api.client.post("/api/jobs/test_ok/launch", "{not json", "application/json")
    assert broken.status_code == 400
    wrong = api.post("/jobs/test_ok/launch", {"params": "nope"})
    assert wrong.status_code == 400 and wrong.json()["errors"]


def test_invalidating_a_big_pattern_needs_it_typed_as_confirm(
    api_as, celery_worker, request, settings
):
    box = request.getfixturevalue("scratch")
    settings.CACHE_CONFIRM_ABOVE = 10
    box.load([f"{box.prefix}user:{i}".encode() for i in range(50)])
    api, pattern = api_as("operator"), f"{box.prefix}user:*"
    refused = api.post("/cache/main/invalidate", {"pattern": pattern})
    assert refused.status_code == 400
    assert refused.json()["preview"]["estimated_keys"] == 50
    assert "type the pattern" in refused.json()["detail"]
    assert AuditEvent.objects.get(action="cache.invalidate_pattern").outcome == "denied"
    accepted = api.post("/cache/main/invalidate", {"pattern": pattern, "confirm": pattern})
    assert accepted.status_code == 202
    run = wait_for(Run.objects.get(pk=accepted.json()["id"]))
    assert run.status == "succeeded"
    assert not list(box.redis.scan_iter(match=pattern, count=1000))


def test_a_migration_is_planned_and_started_with_the_table_typed(
    api_as, celery_worker, request, settings, warehouse_db
):
    schema = request.getfixturevalue("payments_with_null_keys")
    settings.WAREHOUSES = {"main": warehouse_db}
    api = api_as("operator")
    body = {
        "warehouse": "main",
        "schema": schema,
        "table": "payments",
        "column": "created_at",
        "granularity": "month",
    }
    refused = api.post("/migrations/plan", body)  # the fixture has rows without created_at
    assert refused.status_code == 400 and "lose uniqueness" in refused.json()["detail"]
    body |= {"null_keys": "lose_uniqueness", "consent": "lose uniqueness"}
    planned = api.post("/migrations/plan", body)
    assert planned.status_code == 201, planned.content
    migration_id = planned.json()["id"]
    assert planned.json()["confirm"] == "payments" and planned.json()["steps"]
    wrong = api.post(f"/migrations/{migration_id}/start", {"confirm": "orders", "reason": "r"})
    assert wrong.status_code == 400 and "type the table name" in wrong.json()["detail"]
    assert Migration.objects.get(pk=migration_id).state == "planned"
    started = api.post(f"/migrations/{migration_id}/start", {"confirm": "payments", "reason": "r"})
    assert started.status_code == 202
    run = wait_for(Run.objects.get(pk=started.json()["run_id"]), timeout=60)
    assert run.status == "succeeded"
    detail = api.get(f"/migrations/{migration_id}").json()
    assert detail["state"] == "succeeded" and {s["status"] for s in detail["steps"]} == {"done"}
    swapped = AuditEvent.objects.get(action="partitions.swapped")  # notifications hear it
    assert swapped.run_id == run.pk and swapped.params["migration_id"] == migration_id
    event = AuditEvent.objects.get(action="partitions.migrate", outcome="ok")
    assert event.actor_name == f"{api.user.username} (token tests)"
    rollback = api.post(f"/migrations/{migration_id}/rollback", {"reason": "undo"})
    assert rollback.status_code == 202
    assert wait_for(Run.objects.get(pk=rollback.json()["id"]), timeout=60).status == "succeeded"


def test_it_plans_each_partitioning_scheme_with_its_figures(
    api_as, request, settings, warehouse_db
):
    schema = request.getfixturevalue("payments")
    settings.WAREHOUSES = {"main": warehouse_db}
    api = api_as("operator")
    body = {"warehouse": "main", "schema": schema, "table": "payments", "column": "id"}
    ranges = api.post("/migrations/plan", body | {"width": 1000, "keep_ranges": 4})
    assert ranges.status_code == 201, ranges.content
    assert ranges.json()["estimates"]["scheme"] == "ranges of 1,000 id values"
    assert "newest 4" in ranges.json()["estimates"]["retention"]
    stored = Migration.objects.get(pk=ranges.json()["id"])
    assert (stored.options["width"], stored.options["keep_ranges"]) == (1000, 4)
    hashed = api.post("/migrations/plan", body | {"scheme": "hash", "modulus": 4})
    assert hashed.status_code == 201, hashed.content
    assert hashed.json()["estimates"]["scheme"] == "hash on id into 4 partitions"
    assert len(Migration.objects.get(pk=hashed.json()["id"]).plan["partitions"]) == 4
    bad = api.post("/migrations/plan", body | {"scheme": "hash", "modulus": 65})
    assert bad.status_code == 400 and "modulus" in bad.json()["detail"]
    unknown = api.post("/migrations/plan", body | {"scheme": "spiral"})
    assert unknown.status_code in (400, 422)


def test_a_runbook_is_launched_with_its_name_as_confirm(api_as, celery_worker):
    api = api_as("operator")
    wrong = api.post("/runbooks/health_sweep/launch", {"confirm": "nope"})
    assert wrong.status_code == 400
    launched = api.post("/runbooks/health_sweep/launch", {"confirm": "health_sweep"})
    assert launched.status_code == 202, launched.content
    run = wait_for(Run.objects.get(pk=launched.json()["id"]), timeout=60)
    assert run.name.endswith("health_sweep")
    assert api.post("/runbooks/nope/launch", {"confirm": "nope"}).status_code == 404


def test_an_index_is_built_and_dropped_through_the_api_and_the_team_is_told(
    api_as, celery_worker, request, settings, warehouse_db, http_receiver
):
    settings.WAREHOUSES = {"main": warehouse_db}
    schema = request.getfixturevalue("pg_schema")
    with psycopg.connect(warehouse_db, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {}.orders (id bigint, customer_id bigint)").format(
            sql.Identifier(schema)))  # fmt: skip
    api = api_as("admin")
    channel = notify.create_channel(api.user, "hook", "webhook", {"url": http_receiver.url})
    http_receiver.secret = channel.signing_secret
    notify.subscribe(api.user, api.user, channel.channel, "index.built")
    body = {"warehouse": "main", "schema": schema, "table": "orders",
            "columns": ["customer_id"], "name": "orders_customer_idx"}  # fmt: skip
    wrong = api.post("/indexes/apply", {**body, "confirm": "orders"})
    assert wrong.status_code == 400 and "Type the index name" in wrong.json()["detail"]
    built = api.post("/indexes/apply", {**body, "confirm": "orders_customer_idx"})
    assert built.status_code == 202, built.content
    assert wait_for(Run.objects.get(pk=built.json()["id"]), timeout=60).status == "succeeded"
    [told] = http_receiver.wait_for(1)
    assert told["signature_ok"] and told["body"]["event"] == "index.built"
    assert told["body"]["target"] == f"main:{schema}.orders_customer_idx"
    dropped = api.post(
        f"/indexes/{built.json()['id']}/rollback", {"confirm": "orders_customer_idx"}
    )
    assert dropped.status_code == 202
    assert wait_for(Run.objects.get(pk=dropped.json()["id"]), timeout=60).status == "succeeded"
    with psycopg.connect(warehouse_db) as conn:
        found = conn.execute("SELECT count(*) FROM pg_indexes WHERE indexname = %s",
                             ["orders_customer_idx"]).fetchone()[0]  # fmt: skip
    assert found == 0
