"""Benchmark: delete 1M of 2M keys by pattern, three ways, with Redis latency probed.

    .venv/bin/python bench/cache_invalidate.py [--url redis://127.0.0.1:6379/13]

(a) what operators do today: redis-cli --scan --pattern P | xargs -n 1000 redis-cli unlink
(b) the practical limit: one connection pipelining SCAN … COUNT 5000 and UNLINK, nothing else
(c) the console: cachemgr's pattern invalidation, run exactly as the Celery task runs it
    (a Run row, jobs.runner.execute: progress, heartbeat, audit event)
Each runs on the same 2M keys (the 1M matching keys are reloaded between runs) while a
separate process PINGs Redis every millisecond and reports the worst round trip.
Then the stats page is requested 50 times with the 2M keys loaded (server time p50/p95).
The Redis db must be empty at the start; its bench:* keys are deleted at the end.
"""

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import redis

ROOT = Path(__file__).resolve().parent.parent
PATTERN = "bench:match:*"
LOAD_BATCH = 10_000


def load(client: redis.Redis, prefix: str, count: int) -> None:
    for start in range(0, count, LOAD_BATCH):
        client.mset({f"{prefix}{i}": "v" for i in range(start, min(count, start + LOAD_BATCH))})


def probe(url: str, stop, result) -> None:
    """Runs in its own process (no GIL shared with the deleter): worst PING round trip."""
    client = redis.Redis.from_url(url)
    worst, samples = 0.0, 0
    while not stop.is_set():
        started = time.perf_counter()
        client.ping()
        worst = max(worst, time.perf_counter() - started)
        samples += 1
        time.sleep(0.001)
    result.put((worst, samples))


def timed(url: str, action) -> tuple[float, float, object]:
    """Run `action` with the PING probe; returns (seconds, max PING ms, action's result)."""
    ctx = multiprocessing.get_context("spawn")
    stop, result = ctx.Event(), ctx.Queue()
    prober = ctx.Process(target=probe, args=(url, stop, result))
    prober.start()
    time.sleep(0.5)
    started = time.perf_counter()
    outcome = action()
    seconds = time.perf_counter() - started
    stop.set()
    worst, _ = result.get(timeout=30)
    prober.join(10)
    return seconds, worst * 1000, outcome


def redis_cli_baseline(url: str) -> None:
    parts = urlsplit(url)
    args = f"-h {parts.hostname} -p {parts.port or 6379} -n {(parts.path or '/0').strip('/') or 0}"
    command = (
        f"redis-cli {args} --scan --pattern '{PATTERN}' | xargs -n 1000 redis-cli {args} unlink"
    )
    subprocess.run(["bash", "-c", command], check=True, stdout=subprocess.DEVNULL)


def minimal_client(client: redis.Redis, count: int = 5000) -> int:
    """The practical limit: pipelined SCAN + UNLINK on one connection, nothing else."""
    cursor, pending, deleted = 0, [], 0
    while True:
        pipe = client.pipeline(transaction=False)
        if pending:
            pipe.unlink(*pending)
        pipe.scan(cursor, match=PATTERN, count=count)
        answers = pipe.execute()
        if pending:
            deleted += answers[0]
        cursor, pending = answers[-1]
        if cursor == 0:
            break
    if pending:
        deleted += client.unlink(*pending)
    return deleted


def console_run(target: str) -> dict:
    """The console's invalidation as its Celery task runs it: a Run executed by the runner."""
    from cachemgr.services import invalidation
    from jobs import runner
    from jobs.models import Run

    run = Run.objects.create(
        kind="cache",
        name=invalidation.JOB_NAME,
        params={
            "target": target,
            "pattern": PATTERN,
            "approval": invalidation.approval_for(target, PATTERN),
        },
        actor_name="bench",
    )
    runner.execute(run.pk)
    run.refresh_from_db()
    if run.status != "succeeded":
        raise SystemExit(f"console run ended {run.status}: {run.error}")
    return run.result


def stats_page_times(target: str, requests: int = 50) -> list[float]:
    from django.contrib.auth import get_user_model
    from django.contrib.messages.storage import default_storage
    from django.contrib.sessions.backends.db import SessionStore
    from django.test import RequestFactory
    from django_htmx.middleware import HtmxDetails

    from cachemgr import views

    user = get_user_model()(username="bench", is_superuser=True, is_active=True)
    factory = RequestFactory()
    times = []
    for _ in range(requests):
        request = factory.get("/cache/", {"target": target})
        request.user, request.session = user, SessionStore()
        request._messages = default_storage(request)
        request.htmx = HtmxDetails(request)
        started = time.perf_counter()
        response = views.stats_page(request)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    return times


def setup_django(url: str, target: str) -> None:
    database = Path(tempfile.gettempdir()) / "cachemgr-bench.sqlite3"
    os.environ["CACHE_TARGETS"] = f"{target}={url}"
    os.environ["DATABASE_URL"] = f"sqlite:///{database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsconsole.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--keys", type=int, default=2_000_000)
    parser.add_argument("--scan-count", type=int, default=None, help="console SCAN COUNT")
    parser.add_argument("--batch", type=int, default=None, help="console UNLINK batch")
    args = parser.parse_args()
    target = "bench"
    setup_django(args.url, target)
    from django.conf import settings

    from cachemgr import conf

    if args.scan_count:
        settings.CACHE_SCAN_COUNT = args.scan_count
    if args.batch:
        settings.CACHE_UNLINK_BATCH = args.batch
    client = redis.Redis.from_url(args.url)
    if client.dbsize():
        raise SystemExit(f"{args.url} is not empty: use an empty db for the benchmark.")
    half = args.keys // 2
    try:
        print(f"loading {args.keys:,} keys ({half:,} match {PATTERN}) …", flush=True)
        load(client, "bench:other:", half)
        _, idle_ms, _ = timed(args.url, lambda: time.sleep(3))
        print(
            f"{'(idle) PING probe alone, 3 s':<40} {'':>10}  {'':>17}  max PING {idle_ms:6.1f} ms"
        )
        rows = {}
        for label, action in [
            ("(a) redis-cli --scan | xargs unlink", lambda: redis_cli_baseline(args.url)),
            ("(b) minimal pipelined SCAN+UNLINK", lambda: minimal_client(client)),
            ("(c) console invalidate_pattern", lambda: console_run(target)),
        ]:
            load(client, "bench:match:", half)
            assert client.dbsize() == args.keys
            seconds, worst_ms, _ = timed(args.url, action)
            left = sum(1 for _ in client.scan_iter(match=PATTERN, count=5000))
            assert left == 0, f"{label}: {left} keys left"
            rows[label] = (half / seconds, worst_ms, seconds)
            print(
                f"{label:<40} {half / seconds:>10,.0f} keys/s  {seconds:6.2f} s  "
                f"max PING {worst_ms:6.1f} ms",
                flush=True,
            )
        a, b, c = (rows[k][0] for k in rows)
        print(f"console / redis-cli baseline: {c / a:.2f}x (target >= 3x)")
        print(f"console / minimal client:     {c / b:.2f}x (target >= 0.8x)")
        print(
            f"console SCAN COUNT {conf.get('CACHE_SCAN_COUNT')}, "
            f"UNLINK batch {conf.get('CACHE_UNLINK_BATCH')}"
        )

        load(client, "bench:match:", half)
        times = stats_page_times(target)
        ordered = sorted(times)
        p95 = ordered[int(len(ordered) * 0.95) - 1]
        print(
            f"stats page with {client.dbsize():,} keys, 50 requests: "
            f"p50 {statistics.median(times):.1f} ms, p95 {p95:.1f} ms, "
            f"first request {times[0]:.1f} ms (templates load, discovery starts), "
            f"max {max(times):.1f} ms"
        )
    finally:
        from cachemgr.services.invalidation import scan_unlink_in_steps

        for _ in scan_unlink_in_steps(client, "bench:*", 1000, 500):
            pass
        from cachemgr.client import console_cache
        from cachemgr.services import stats

        console_cache().delete("cache_namespaces", stats.discovery_key(target))


if __name__ == "__main__":
    main()
