import time

import pytest

from jobs.models import Run

from . import testjobs


def wait_for(
    run: Run, statuses=("succeeded", "failed", "cancelled", "timed_out", "lost"), timeout=20.0
) -> Run:
    """Poll the database until the run reaches one of `statuses`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status in statuses:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run #{run.pk} still {run.status} after {timeout} s")


@pytest.fixture
def release_slow_jobs():
    testjobs.released.clear()
    yield testjobs.released
    testjobs.released.set()
