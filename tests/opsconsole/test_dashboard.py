from django.utils import timezone

from jobs.models import Run
from opsconsole import audit
from opsconsole.models import RunbookRequest
from partitions.queries.models import StatementSnapshot


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


def test_the_slowest_queries_tile_leaves_out_housekeeping(db, client_as, settings):
    taken = timezone.now()
    warehouse = next(iter(settings.WAREHOUSES))
    for queryid, (query, mean_ms) in enumerate(
        [
            ("SELECT extname FROM pg_extension", 900.0),  # the console's own catalog read
            ("INSERT INTO shop.orders SELECT g FROM generate_series(1, 10) g", 800.0),
            ("CREATE INDEX ON shop.orders (customer_id)", 700.0),
            ("SELECT * FROM shop.orders WHERE customer_id = $1", 42.0),
        ]
    ):
        StatementSnapshot.objects.create(
            warehouse=warehouse,
            queryid=queryid,
            query=query,
            taken_at=taken,
            calls=10,
            total_ms=mean_ms * 10,
            mean_ms=mean_ms,
            rows=1,
        )

    tile = client_as("viewer").get("/").content.decode()

    assert "customer_id = $1" in tile
    assert "pg_extension" not in tile and "generate_series" not in tile
    assert "CREATE INDEX" not in tile
