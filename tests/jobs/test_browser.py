import pytest

from jobs.models import Run
from tests.browser import log_in

pytestmark = [pytest.mark.browser]


def test_it_launches_watches_cancels_and_retries_a_job(
    page, celery_worker, make_user, release_slow_jobs
):
    user = make_user("operator", username="browser-jobs")
    log_in(page, user.username, "pw-for-tests-1")
    page.click("nav >> text=Jobs")
    page.click("a:has-text('test_slow')")
    page.click("text=Run now")
    # The run page polls itself: the status turns to running without a reload.
    page.wait_for_selector("#run-progress >> text=running")
    first = Run.objects.get()
    page.click("button:has-text('Cancel')")
    page.wait_for_selector("#run-progress >> text=cancelled")
    first.refresh_from_db()
    assert first.status == "cancelled"

    page.click("button:has-text('Retry')")
    page.wait_for_selector("text=retried as run")
    retry = Run.objects.exclude(pk=first.pk).get()
    assert retry.retry_of == first
    release_slow_jobs.set()
    page.wait_for_selector("#run-progress >> text=succeeded")
    assert page.url.endswith(f"/jobs/runs/{retry.pk}/")
