import pytest
from django_celery_beat.models import PeriodicTask

from jobs import runner
from jobs.models import Run
from opsconsole.models import AuditEvent

from .conftest import wait_for


def test_it_launches_a_job_from_its_form(celery_worker, client_as):
    client = client_as("operator")
    page = client.get("/jobs/run/refresh_matviews/")
    key = page.context["launch_form"]["request_key"].value()
    data = {"request_key": key, "warehouse": "main", "views": "public.nope"}
    response = client.post("/jobs/run/refresh_matviews/", data)
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/jobs/runs/{run.pk}/"
    assert run.actor == client.user and run.params["views"] == "public.nope"
    # The run fails with a clear error, shown on its page.
    wait_for(run)
    assert b"does not exist" in client.get(f"/jobs/runs/{run.pk}/").content


def test_a_double_submitted_form_starts_one_run(transactional_db, client_as):
    client = client_as("operator")
    data = {"request_key": "k-1", "warehouse": "main", "views": "a.b"}
    first = client.post("/jobs/run/refresh_matviews/", data)
    second = client.post("/jobs/run/refresh_matviews/", data)
    assert first["Location"] == second["Location"]
    assert Run.objects.count() == 1


def test_it_shows_form_errors_instead_of_failing(transactional_db, client_as):
    client = client_as("operator")
    response = client.post(
        "/jobs/run/table_sync/", {"request_key": "k", "batch_size": "-3", "source": "nowhere"}
    )
    assert response.status_code == 400
    assert b"Select a valid choice" in response.content
    assert not Run.objects.exists()


def test_it_returns_404_for_an_unknown_job(transactional_db, client_as):
    assert client_as("operator").get("/jobs/run/nope/").status_code == 404


def test_the_run_page_polls_while_running_and_stops_when_done(transactional_db, client_as):
    client = client_as("viewer")
    run = Run.objects.create(name="test_ok", actor_name="x")  # queued, not sent to Celery
    partial = client.get(f"/jobs/runs/{run.pk}/", headers={"HX-Request": "true"})
    assert b'hx-trigger="every 1s"' in partial.content
    runner.execute(run.pk)
    partial = client.get(f"/jobs/runs/{run.pk}/", headers={"HX-Request": "true"})
    assert b"hx-trigger" not in partial.content
    assert b"succeeded" in partial.content


def test_history_filters_by_job_and_status(transactional_db, client_as):
    Run.objects.create(name="a", actor_name="x", status="failed")
    Run.objects.create(name="b", actor_name="x", status="failed")
    Run.objects.create(name="a", actor_name="x", status="succeeded")
    response = client_as("viewer").get("/jobs/", {"job": "a", "status": "failed"})
    assert [(r.name, r.status) for r in response.context["runs"]] == [("a", "failed")]


def test_history_pages_with_a_keyset(transactional_db, client_as):
    Run.objects.bulk_create(Run(name="a", actor_name="x", status="succeeded") for _ in range(60))
    client = client_as("viewer")
    first = client.get("/jobs/")
    assert len(first.context["runs"]) == 50
    second = client.get("/jobs/", {"before": first.context["next_before"]})
    assert len(second.context["runs"]) == 10
    assert second.context["next_before"] is None


def test_it_cancels_and_retries_from_the_page(transactional_db, client_as):
    client = client_as("operator")
    run = Run.objects.create(name="test_ok", actor_name="x")  # queued, not sent to Celery
    client.post(f"/jobs/runs/{run.pk}/cancel/")
    run.refresh_from_db()
    assert run.status == "cancelled"
    response = client.post(f"/jobs/runs/{run.pk}/retry/")
    again = Run.objects.exclude(pk=run.pk).get()
    assert again.retry_of == run and response["Location"] == f"/jobs/runs/{again.pk}/"


def test_it_shows_per_job_stats(transactional_db, client_as):
    for ms, status in [(100, "succeeded"), (300, "succeeded"), (900, "failed")]:
        Run.objects.create(name="a", actor_name="x", status=status, duration_ms=ms)
    stats = client_as("viewer").get("/jobs/stats/a/").context["stats"]
    assert stats.runs == 3 and stats.success_rate == 66.7
    assert stats.avg_ms == pytest.approx(433.3, abs=0.1) and stats.p95_ms == 900


def test_it_disables_and_edits_a_schedule_with_audit(transactional_db, client_as):
    client = client_as("operator")
    task = PeriodicTask.objects.get(name="job: table_sync")
    client.post(f"/jobs/schedules/{task.pk}/toggle/", {"enabled": "0"})
    task.refresh_from_db()
    assert task.enabled is False
    crontab = {
        "minute": "*/15",
        "hour": "*",
        "day_of_month": "*",
        "month_of_year": "*",
        "day_of_week": "1-5",
    }
    response = client.post(f"/jobs/schedules/{task.pk}/edit/", crontab)
    assert response.status_code == 302
    task.refresh_from_db()
    assert (task.crontab.minute, task.crontab.day_of_week) == ("*/15", "1-5")
    events = AuditEvent.objects.filter(action__startswith="schedule.").order_by("id")
    actions = list(events.values_list("action", flat=True))
    assert actions == ["schedule.disable", "schedule.edit"]


def test_it_rejects_a_malformed_crontab(transactional_db, client_as):
    task = PeriodicTask.objects.get(name="job: table_sync")
    bad = {
        "minute": "99",
        "hour": "*",
        "day_of_month": "*",
        "month_of_year": "*",
        "day_of_week": "*",
    }
    response = client_as("operator").post(f"/jobs/schedules/{task.pk}/edit/", bad)
    assert response.status_code == 400
    assert not AuditEvent.objects.filter(action="schedule.edit").exists()


def test_the_overview_lists_workers_queues_and_schedules(celery_worker, client_as):
    response = client_as("viewer").get("/jobs/overview/")
    assert response.status_code == 200
    assert response.context["workers"], response.context["workers_error"]
    assert "job: table_sync" in response.content.decode()
