"""One progress reading for every long action: percent, rate, ETA, current step."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import progress
from jobs.models import Run


def make_run(**fields) -> Run:
    fields = {"name": "table_sync", "actor_name": "x", "status": "running"} | fields
    return Run.objects.create(**fields)


@pytest.mark.django_db
def test_it_reads_percent_rate_and_eta_of_a_running_run():
    now = timezone.now()
    run = make_run(
        started_at=now - timedelta(seconds=10),
        progress_done=2_000,
        progress_total=10_000,
        progress_message="batch 20: up to updated_at = 2026-12-01",
    )
    reading = progress.of(run, now=now)
    assert (reading.percent, round(reading.rate), round(reading.eta_s)) == (20, 200, 40)
    assert (
        reading.line()
        == "20% · 2,000 / 10,000 · 200/s · ETA 40.0 s · batch 20: up to updated_at = 2026-12-01"
    )


@pytest.mark.django_db
def test_the_run_page_and_the_history_show_the_same_progress(client_as):
    run = make_run(
        started_at=timezone.now() - timedelta(seconds=5),
        progress_done=500,
        progress_total=1_000,
        progress_message="batch 5",
    )
    client = client_as("viewer")
    for page in (f"/jobs/runs/{run.pk}/", "/jobs/"):
        html = client.get(page).content.decode()
        assert '<progress value="50" max="100"' in html, page
        assert "<strong>50%</strong> · 500 / 1,000" in html and "ETA" in html, page


@pytest.mark.django_db
def test_a_finished_run_shows_no_rate_or_eta():
    run = make_run(status="succeeded", progress_done=10, progress_total=10)
    reading = run.progress
    assert (reading.percent, reading.rate, reading.eta) == (100, None, "")


@pytest.mark.django_db
def test_a_run_that_succeeded_without_a_known_total_is_shown_full():
    run = make_run(status="succeeded", progress_done=50, progress_total=None)
    reading = run.progress
    assert (reading.percent, reading.done, reading.total) == (100, 50, 50)
    assert reading.line() == "100% · 50 / 50"
