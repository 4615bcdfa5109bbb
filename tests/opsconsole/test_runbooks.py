import threading
import time
import uuid
from dataclasses import replace

import psycopg
import pytest
from django.utils import timezone
from psycopg import sql

from cachemgr.client import Cache
from cachemgr.targets import connect
from jobs import runner
from jobs.models import Run
from opsconsole import audit
from opsconsole.models import AuditEvent, RunbookRequest
from opsconsole.runbooks import get, register, services
from tests.jobs.conftest import wait_for


def launch(name, params, user):
    return services.launch(
        get(name), params, user, reason="test", request_key=uuid.uuid4().hex, confirm=name
    )


def test_the_health_sweep_runs_every_check_and_audits_each_step(celery_worker, make_user):
    run = wait_for(launch("health_sweep", {}, make_user("operator")), timeout=30)
    assert run.status == "succeeded", run.error
    steps = run.result["steps"]
    assert [s["status"] for s in steps] == ["succeeded", "succeeded"]
    assert steps[1]["output"]["events_checked"] >= 1
    events = AuditEvent.objects.filter(run=run, action="runbook.step").order_by("id")
    assert [e.target for e in events] == [
        "health_sweep: Readiness checks",
        "health_sweep: Audit chain",
    ]


def test_a_failing_check_stops_the_runbook_in_a_clear_state(celery_worker, make_user, settings):
    settings.CACHE_TARGETS = {**settings.CACHE_TARGETS, "gone": "redis://127.0.0.1:1/0"}
    run = wait_for(launch("health_sweep", {}, make_user("operator")), timeout=30)
    assert run.status == "failed" and run.attempt == 1
    first, second = run.result["steps"]
    assert first["status"] == "failed" and "cache:gone" in first["error"]
    assert second["status"] == "pending"
    assert AuditEvent.objects.get(run=run, action="runbook.step").outcome == "failed"


def test_the_stampede_runbook_bumps_warms_and_sees_the_hit_rate_back(
    celery_worker, make_user, test_warmer
):
    namespace = test_warmer
    cache = Cache(client=connect("main"), version_cache_s=0, counters_flush_s=0)
    old_version = cache.version(namespace)
    params = {"target": "main", "warmer": namespace, "min_hit_rate": 80, "within_minutes": 0.5}
    run = launch("cache_stampede", params, make_user("operator"))

    # Traffic: once the namespace is warm, readers hit it.
    def readers():
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if not run.is_active:
                return
            if cache.version(namespace) > old_version and cache.get(namespace, "k1") is not None:
                for i in range(50):
                    cache.get(namespace, f"k{i}")
                cache.flush_counters()
            time.sleep(0.2)

    traffic = threading.Thread(target=readers)
    traffic.start()
    run = wait_for(run, timeout=40)
    traffic.join()
    assert run.status == "succeeded", run.result
    outputs = [s["output"] for s in run.result["steps"]]
    assert outputs[0]["new_version"] == old_version + 1
    assert outputs[1]["written"] == 50
    assert outputs[2]["hit_rate"] >= 80
    assert cache.get(namespace, "k7") == {"value": 7}
    assert AuditEvent.objects.filter(run=run, action="cache.warm").count() == 1


def test_retry_failed_syncs_retries_then_checks_row_counts(
    celery_worker, make_user, warehouse_db, pg_schema, settings
):
    settings.WAREHOUSES = {"main": warehouse_db}
    params = {
        "source": "main",
        "source_table": f"{pg_schema}.orders",
        "target": "main",
        "target_table": f"{pg_schema}.orders_copy",
    }
    failed = wait_for(runner.start("table_sync", params, "schedule:table_sync"))
    assert failed.status == "failed"  # the source table does not exist yet
    with psycopg.connect(warehouse_db, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} AS "
                "SELECT g AS id, now() AS updated_at FROM generate_series(1, 500) AS g"
            ).format(sql.Identifier(pg_schema, "orders"))
        )
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (id)").format(
                sql.Identifier(pg_schema, "orders")
            )
        )
    run = wait_for(
        launch("retry_failed_syncs", {"hours": 1, "wait_minutes": 0.5}, make_user("operator")),
        timeout=60,
    )
    assert run.status == "succeeded", run.result
    retried = run.result["steps"][0]["output"]["retried"]
    assert Run.objects.get(pk=retried[0]).retry_of == failed
    assert run.result["steps"][2]["output"]["tables"][0]["target_rows"] == 500


def test_four_eyes_the_requester_cannot_approve_and_nobody_approves_twice(celery_worker, make_user):
    book = get("health_sweep_four_eyes") or register(
        replace(get("health_sweep"), name="health_sweep_four_eyes", needs_approval=True)
    )
    requester, approver = make_user("operator"), make_user("operator")
    request = services.launch(book, {}, requester, reason="quarterly check", assume_yes=True)
    assert isinstance(request, RunbookRequest) and not Run.objects.exists()
    with pytest.raises(services.RunbookRefused, match="your own request"):
        services.decide(request, requester, approve=True)
    with pytest.raises(services.RunbookRefused, match="operator role"):
        services.decide(request, make_user("viewer"), approve=True)
    request = services.decide(request, approver, approve=True)
    assert request.status == "approved" and request.run.name == "runbook.health_sweep_four_eyes"
    with pytest.raises(services.RunbookRefused, match="already approved"):
        services.decide(request, make_user("admin"), approve=True)
    assert Run.objects.count() == 1
    assert AuditEvent.objects.filter(action="runbook.approve", actor=approver).count() == 1
    # The approved run really runs (and is over before the test's database is flushed).
    assert wait_for(request.run, timeout=30).status == "succeeded"


def test_a_new_attempt_resumes_after_the_last_finished_step(transactional_db, make_user):
    user = make_user("operator")
    run = Run.objects.create(
        kind="runbook",
        name="runbook.health_sweep",
        params={"params": {}, "mode": "run"},
        actor=user,
        actor_name=user.username,
        status="running",
        attempt=1,
        max_attempts=2,
        heartbeat_at=timezone.now() - timezone.timedelta(minutes=5),
        result={
            "steps": [
                {
                    "n": 1,
                    "name": "Readiness checks",
                    "status": "succeeded",
                    "output": {"from": "before"},
                },
                {"n": 2, "name": "Audit chain", "status": "running"},
            ]
        },
    )
    assert runner.execute(run.pk) == "succeeded"
    run.refresh_from_db()
    assert run.result["steps"][0]["output"] == {"from": "before"}  # not run again
    assert run.result["steps"][1]["status"] == "succeeded"
    steps = AuditEvent.objects.filter(run=run, action="runbook.step")
    assert [e.target for e in steps] == ["health_sweep: Audit chain"]


def test_an_interrupted_step_that_is_not_idempotent_is_never_repeated(transactional_db, make_user):
    user = make_user("operator")
    run = Run.objects.create(
        kind="runbook",
        name="runbook.retry_failed_syncs",
        params={"params": {"job": "table_sync", "hours": 1, "wait_minutes": 1}, "mode": "run"},
        actor=user,
        actor_name=user.username,
        status="running",
        attempt=1,
        max_attempts=2,
        heartbeat_at=timezone.now() - timezone.timedelta(minutes=5),
        result={
            "steps": [
                {"n": 1, "name": "Retry every failed run", "status": "running"},
                {"n": 2, "name": "Wait for the retries", "status": "pending"},
                {"n": 3, "name": "Compare row counts", "status": "pending"},
            ]
        },
    )
    assert runner.execute(run.pk) == "failed"
    run.refresh_from_db()
    assert run.result["steps"][0]["status"] == "interrupted"
    assert "not safe to repeat" in run.error


def test_retry_step_keeps_what_succeeded_and_abandon_is_recorded(
    celery_worker, make_user, settings
):
    user = make_user("operator")
    settings.CACHE_TARGETS = {**settings.CACHE_TARGETS, "gone": "redis://127.0.0.1:1/0"}
    failed = wait_for(launch("health_sweep", {}, user), timeout=30)
    assert failed.status == "failed"
    settings.CACHE_TARGETS = {k: v for k, v in settings.CACHE_TARGETS.items() if k != "gone"}
    again = wait_for(services.retry_failed_step(failed, user), timeout=30)
    assert again.status == "succeeded" and again.retry_of == failed
    with pytest.raises(services.RunbookRefused):
        services.abandon(again, user)  # it succeeded
    services.abandon(failed, user)
    failed.refresh_from_db()
    assert failed.result["abandoned"] is True
    assert AuditEvent.objects.filter(action="runbook.abandon", run=failed).count() == 1


def test_the_runbook_page_previews_then_needs_the_typed_name(transactional_db, client_as):
    client = client_as("operator")
    preview = client.post("/runbooks/health_sweep/", {"action": "preview"})
    assert b"Walk the audit log" in preview.content
    key = preview.context["confirm_form"]["request_key"].value()
    wrong = client.post(
        "/runbooks/health_sweep/",
        {"action": "launch", "confirm": "health", "reason": "x", "request_key": key},
    )
    assert wrong.status_code == 400 and not Run.objects.exists()
    right = client.post(
        "/runbooks/health_sweep/",
        {"action": "launch", "confirm": "health_sweep", "reason": "x", "request_key": key},
    )
    run = Run.objects.get()
    assert right["Location"] == f"/runbooks/runs/{run.pk}/"
    again = client.post(
        "/runbooks/health_sweep/",
        {"action": "launch", "confirm": "health_sweep", "reason": "x", "request_key": key},
    )
    assert again["Location"] == right["Location"] and Run.objects.count() == 1


def test_the_runbook_page_names_the_word_and_marks_the_reason_required(db, client_as):
    client = client_as("operator")
    preview = client.post("/runbooks/health_sweep/", {"action": "preview"})
    page = preview.content.decode()
    assert "Type health_sweep to confirm" in page
    assert 'data-confirm-words="[&quot;health_sweep&quot;]"' in page
    assert "Reason (required)" in page
    assert "novalidate" in page  # the server's message, not a fading browser bubble
    key = preview.context["confirm_form"]["request_key"].value()

    missing = client.post(
        "/runbooks/health_sweep/",
        {"action": "launch", "confirm": "health_sweep", "reason": "", "request_key": key},
    )

    assert missing.status_code == 400
    assert missing.context["confirm_form"].errors["reason"] == ["This field is required."]
    assert "This field is required." in missing.content.decode()
    assert not Run.objects.exists()


def test_audit_chain_verification_is_a_runbook_check(transactional_db):
    audit.write("cli:test", "x.do")
    checked, broken = audit.verify_chain()
    assert checked == 1 and broken is None


def test_the_cli_previews_and_runs_with_yes(celery_worker, make_user, capsys):
    import json

    from django.core.management import CommandError, call_command

    user = make_user("operator")
    call_command("runbook", "show", "health_sweep", "--json")
    preview = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in preview["steps"]] == ["Readiness checks", "Audit chain"]
    with pytest.raises(CommandError, match="--yes"):
        call_command("runbook", "run", "health_sweep", "--as", user.username)
    call_command(
        "runbook", "run", "health_sweep", "--as", user.username, "--yes", "--wait", "--json"
    )
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "succeeded" and len(result["steps"]) == 2


def test_undo_after_a_failed_check_points_readers_back_at_the_old_keys(
    celery_worker, make_user, test_warmer
):
    namespace, user = test_warmer, make_user("operator")
    cache = Cache(client=connect("main"), version_cache_s=0)
    cache.set(namespace, "before", {"v": "old"})
    params = {"target": "main", "warmer": namespace, "min_hit_rate": 100, "within_minutes": 0.05}
    failed = wait_for(launch("cache_stampede", params, user), timeout=30)
    assert failed.status == "failed"  # nobody read the namespace: the check gave up
    assert [s["status"] for s in failed.result["steps"]] == ["succeeded", "succeeded", "failed"]
    assert cache.get(namespace, "before") is None  # bumped away

    undone = wait_for(services.undo(failed, user), timeout=30)
    assert undone.status == "succeeded", undone.error
    assert undone.result["undone"] == ["Bump the namespace version"]
    assert cache.get(namespace, "before") == {"v": "old"}
    assert AuditEvent.objects.filter(run=undone, action="runbook.undo_step").count() == 1
    assert AuditEvent.objects.filter(action="cache.restore_namespace").count() == 1
