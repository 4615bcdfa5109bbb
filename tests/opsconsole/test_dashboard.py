from jobs.models import Run
from opsconsole import audit
from opsconsole.models import RunbookRequest


def test_it_shows_running_and_failed_runs_approvals_and_events(db, client_as, make_user):
    Run.objects.create(
        name="table_sync", actor_name="x", status="running", progress_message="batch 7"
    )
    Run.objects.create(name="refresh_matviews", actor_name="x", status="failed", error="view gone")
    RunbookRequest.objects.create(
        runbook="health_sweep", reason="monthly", requested_by=make_user("operator")
    )
    audit.write("cli:test", "cache.warm", "main:user_profile")
    page = client_as("viewer").get("/").content.decode()
    assert "batch 7" in page and "view gone" in page
    assert "monthly" in page and "cache.warm" in page


def test_the_tiles_refresh_themselves(db, client_as):
    partial = client_as("viewer").get("/", headers={"HX-Request": "true"})
    assert b'hx-trigger="every 15s"' in partial.content
    assert b"<html" not in partial.content
