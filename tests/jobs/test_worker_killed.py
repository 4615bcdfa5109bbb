"""A real worker process is killed in the middle of a run: the run must end
(lost, lock freed) and a retry must finish the copy exactly, losing nothing."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
from django.conf import settings
from django.db import connection

from jobs import locks, runner
from jobs.models import Run
from jobs.tasks import execute_run

from .conftest import add_rows, fingerprint, wait_for

ROOT = Path(__file__).resolve().parents[2]


def console_database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    return f"postgres://{db['USER'] or 'postgres'}@{host}:{port}/{db['NAME']}"


def start_worker_process(run_id: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "OPSCONSOLE_TEST_RUN_ID": run_id,
        "DATABASE_URL": console_database_url(),
        "WAREHOUSES": ",".join(f"{k}={v}" for k, v in settings.WAREHOUSES.items()),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "opsconsole",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            "1",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_a_killed_workers_run_ends_lost_and_its_retry_copies_everything(
    celery_worker,
    source,
    warehouse_db,  # noqa: F811
):
    with psycopg.connect(warehouse_db, autocommit=True) as conn:
        add_rows(conn, source, 60_000)
    params = {
        "source": "main",
        "source_table": f"{source}.payments",
        "target": "main",
        "target_table": f"{source}.payments_copy",
        "batch_size": 200,
    }
    # Record the run without enqueueing it, then send it to the doomed worker's own queue.
    run = Run.objects.create(name="table_sync", params=params, actor_name="test", max_attempts=1)
    worker_id = uuid.uuid4().hex[:8]
    worker = start_worker_process(worker_id)
    try:
        execute_run.apply_async(args=[run.pk], queue=f"tests-{worker_id}")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.progress_done >= 5_000:
                break
            time.sleep(0.05)
        assert run.status == "running" and run.progress_done >= 5_000, run.error
        os.killpg(worker.pid, signal.SIGKILL)  # the whole worker, mid-copy
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)

    time.sleep(runner.lost_after_s() + 0.5)
    assert run.pk in runner.reap()
    run.refresh_from_db()
    assert run.status == "lost" and run.attempts[-1]["outcome"] == "lost"
    assert locks.holder("table_sync") is None
    copied = fingerprint(warehouse_db, source, "payments_copy")[0]
    assert 0 < copied < 61_000  # it really stopped half way

    retried = wait_for(runner.retry(run, "cli:test"), timeout=60)
    assert retried.status == "succeeded", retried.error
    assert retried.result["rows_read"] == 61_000 - copied  # resumed, not restarted
    assert fingerprint(warehouse_db, source, "payments_copy") == fingerprint(
        warehouse_db, source, "payments"
    )
