"""Benchmark: the run history at 1M runs, per-job stats at 100k runs, runner overhead.

    .venv/bin/python bench/jobs_history.py     # BENCH_KEEP_DB=1 keeps the database to EXPLAIN

Uses its own database (created and migrated here, dropped at the end for PostgreSQL),
its own Celery queue, and prints figures; it asserts nothing.
"""

import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH_DB = "opsconsole_bench_jobs"
os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}"
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/12")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsconsole.settings")
# Measure what production runs: DEBUG off (no query log, manifest static files).
os.environ.update(
    DEBUG="false",
    SECRET_KEY="bench-" + uuid.uuid4().hex * 2,
    ALLOWED_HOSTS="testserver",
    SECURE_SSL_REDIRECT="false",
)

TOTAL_RUNS = int(os.environ.get("BENCH_RUNS", 1_000_000))
JOBS = 50
STATUSES = ["succeeded"] * 17 + ["failed", "timed_out", "cancelled"]


def create_database() -> None:
    import psycopg

    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {BENCH_DB}")
        c.execute(f"CREATE DATABASE {BENCH_DB}")


def drop_database() -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


def fill() -> None:
    """1M runs in one INSERT … SELECT: one job in ten is big_job, statuses in the
    proportions of STATUSES, one run every 30 s going back in time."""
    from django.db import connection

    statuses = "ARRAY[" + ",".join(f"'{s}'" for s in STATUSES) + "]"
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO jobs_run (kind, name, params, status, attempt, max_attempts, attempts,
                progress_done, progress_message, result, error, traceback, log_tail,
                actor_name, celery_task_id, cancel_requested, created_at, started_at,
                finished_at, duration_ms)
            SELECT 'job', r.name, '{{"batch_size": 5000}}', r.status, 1, 3, '[]', 0, '',
                   CASE WHEN r.status = 'succeeded' THEN '{{"rows_read": 1000}}'
                        ELSE '{{}}' END::jsonb,
                   '', '', '', CASE WHEN r.g %% 3 = 0 THEN 'alice' ELSE 'schedule:' || r.name END,
                   '', false, r.ts, r.ts, r.ts + (200 + r.g %% 5000) * interval '1 ms',
                   200 + r.g %% 5000
            FROM (
                SELECT g,
                       CASE WHEN g %% 10 = 0 THEN 'big_job'
                            ELSE 'job_' || lpad((1 + g %% {JOBS - 1})::text, 2, '0') END AS name,
                       ({statuses})[1 + (g / 10) %% {len(STATUSES)}] AS status,
                       now() - (%s - g) * interval '30 seconds' AS ts
                FROM generate_series(0, %s - 1) AS g
            ) AS r
            """,
            [TOTAL_RUNS, TOTAL_RUNS],
        )
        # What autovacuum would have done by the time a table holds a million runs.
        cursor.execute("VACUUM ANALYZE jobs_run")
    print(f"filled {TOTAL_RUNS:,} runs over {JOBS} jobs in {time.perf_counter() - started:.0f} s")


def timings(fn, repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * len(samples)) - 1]


def bench_history() -> None:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from jobs.models import Run
    from opsconsole.roles import set_role

    user = get_user_model().objects.create_user("bench-viewer", password="x")
    set_role(user, "viewer")
    client = Client()
    client.force_login(user)
    middle = Run.objects.order_by("-id").values_list("id", flat=True)[
        500_000 if TOTAL_RUNS > 500_000 else 10
    ]
    day = Run.objects.filter(pk=middle).values_list("created_at", flat=True).first().date()
    filters = {
        "no filter": {},
        "job": {"job": "job_07"},
        "status": {"status": "failed"},
        "actor": {"actor": "alice"},
        "job + status": {"job": "big_job", "status": "timed_out"},
        "date range": {"since": str(day), "until": str(day)},
        "deep page": {"before": middle},
        "rare status, deep": {"status": "cancelled", "before": middle},
    }
    print("\nhistory page, server time over 30 requests each (target p95 < 50 ms)")
    for label, query in filters.items():
        assert client.get("/jobs/", query).status_code == 200
        p50, p95 = timings(lambda q=query: client.get("/jobs/", q), 30)
        print(f"  {label:<20} p50 {p50:6.1f} ms   p95 {p95:6.1f} ms")

    assert client.get("/").status_code == 200
    p50, p95 = timings(lambda: client.get("/"), 30)
    print(
        "\ndashboard with these runs loaded (target p95 < 100 ms): "
        f"p50 {p50:.1f} ms  p95 {p95:.1f} ms"
    )

    from jobs.stats import job_stats

    count = Run.objects.filter(name="big_job").count()
    p50, p95 = timings(lambda: job_stats("big_job"), 20)
    print(f"\nper-job stats, {count:,} runs (target < 100 ms): p50 {p50:.1f} ms  p95 {p95:.1f} ms")
    p50, p95 = timings(lambda: client.get("/jobs/stats/big_job/"), 20)
    print(f"per-job stats page incl. chart: p50 {p50:.1f} ms  p95 {p95:.1f} ms")


def bench_runner_overhead(launches: int = 200) -> None:
    import redis
    from celery import shared_task
    from celery.contrib.testing.worker import start_worker
    from django.conf import settings

    from jobs import runner
    from jobs.models import Run
    from jobs.registry import job
    from opsconsole.celery import app

    marker = redis.Redis.from_url(settings.CELERY_BROKER_URL)

    @shared_task(name="bench.bare_noop")
    def bare_noop(key):
        marker.set(key, 1, ex=60)

    @job("bench_noop")
    def bench_noop(ctx, params):
        return {}

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=5):

        def bare_round_trip():
            key = f"bench:{uuid.uuid4().hex}"
            bare_noop.delay(key)
            while not marker.exists(key):
                time.sleep(0.002)

        def runner_round_trip():
            run = runner.start("bench_noop", {}, "bench")
            while not Run.objects.filter(pk=run.pk, status="succeeded").exists():
                time.sleep(0.002)

        bare_launch = timings(lambda: bare_noop.delay("bench:launch-only"), launches)
        runner_launch = timings(lambda: runner.start("bench_noop", {}, "bench"), launches)
        time.sleep(2)  # let the worker drain the launch-only runs
        bare_trip = timings(bare_round_trip, launches)
        runner_trip = timings(runner_round_trip, launches)
    print(f"\nrunner overhead per launch ({launches} launches, target < 20 ms over bare Celery)")
    print(
        f"  launch only:  bare apply_async p50 {bare_launch[0]:.2f} ms | runner.start p50 "
        f"{runner_launch[0]:.2f} ms  -> overhead {runner_launch[0] - bare_launch[0]:.2f} ms"
    )
    print(
        f"  round trip:   bare p50 {bare_trip[0]:.2f} ms | runner p50 {runner_trip[0]:.2f} ms"
        f"  -> overhead {runner_trip[0] - bare_trip[0]:.2f} ms "
        f"(p95 {runner_trip[1] - bare_trip[1]:.2f} ms)"
    )


def main() -> None:
    create_database()
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    print(f"console database: {settings.DATABASES['default']['ENGINE']}")
    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)
    try:
        fill()
        bench_history()
        bench_runner_overhead()
    finally:
        if not os.environ.get("BENCH_KEEP_DB"):
            drop_database()


if __name__ == "__main__":
    main()
