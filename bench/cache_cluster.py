"""Benchmark: Redis Cluster pattern invalidation and exact keyspace analysis, with each
node's latency probed.

    .venv/bin/python bench/cache_cluster.py [--keys 3000000] [--analyze-keys 10000000]
        [--duty D] [--analyze-duty D] [--analyze-count N]

Part 1 starts a local 3-primary cluster (cachemgr.localservers), loads `--keys` keys
(half match bench:match:*) and deletes the matching half two ways, reloading between:
(b) a bare client: per primary, one thread pipelining SCAN … COUNT 5000 and the UNLINKs
    of what it found (one per key: a cluster node refuses a multi-slot UNLINK);
(c) the console: a cache.invalidate_pattern Run executed by jobs.runner, as Celery runs it.
Part 2 starts one redis-server, loads `--analyze-keys` keys (five namespaces, strings,
hashes and lists, a third without TTL) and runs the exact analysis (a cache.analyze Run).
One process per node PINGs it every millisecond; each row shows the worst round trip
beside the idle probe's, and under it each node's server time per step (Redis' own
latency figures, p50 and max: what a PING can wait behind one step, without the
machine's scheduling); the pacing settings in force are printed first (the duties
default to the console's settings). Servers are stopped and their directories removed at
the end.
"""

import argparse
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cachemgr.localservers import LocalCluster, Server  # noqa: E402

PATTERN = "bench:match:*"
LOAD_BATCH = 10_000


def probe(port: int, ready, stop, result) -> None:
    """Its own process: the worst PING round trip to one node (once connected)."""
    client = redis.Redis(port=port)
    client.ping()
    ready.put(port)
    worst = 0.0
    while not stop.is_set():
        started = time.perf_counter()
        client.ping()
        worst = max(worst, time.perf_counter() - started)
        time.sleep(0.001)
    result.put((port, worst * 1000))


def reset_command_times(ports: list[int]) -> None:
    """Start each node's per-command latency figures afresh, with the maximum kept."""
    for port in ports:
        client = redis.Redis(port=port)
        client.config_set("latency-tracking-info-percentiles", "50 99 100")
        client.config_resetstat()
        client.close()


def command_times(ports: list[int], commands: tuple[str, ...]) -> str:
    """Each node's server time per call of `commands` (p50 / max, µs): how long one
    step held the node, whatever the machine's scheduling added around it."""
    shown = []
    for port in ports:
        client = redis.Redis(port=port)
        stats = client.info("latencystats")
        client.close()
        for command in commands:
            if figures := stats.get(f"latency_percentiles_usec_{command}"):
                shown.append(f"{port} {command} {figures['p50']:.0f}/{figures['p100']:.0f}")
    return "server µs per call (p50/max): " + "  ".join(shown)


def timed(ports: list[int], action) -> tuple[float, dict[int, float]]:
    """Run `action` while every port is probed; (seconds, {port: worst PING ms})."""
    ctx = multiprocessing.get_context("spawn")
    ready, stop, result = ctx.Queue(), ctx.Event(), ctx.Queue()
    probers = [ctx.Process(target=probe, args=(port, ready, stop, result)) for port in ports]
    for prober in probers:
        prober.start()
    for _ in probers:
        ready.get(timeout=60)
    time.sleep(0.2)
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    stop.set()
    worst = dict(result.get(timeout=30) for _ in probers)
    for prober in probers:
        prober.join(10)
    return seconds, worst


def load_cluster(cluster: LocalCluster, prefix: str, count: int) -> None:
    client = redis.RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    for start in range(0, count, LOAD_BATCH):
        client.mset_nonatomic(
            {f"{prefix}{i}": "v" for i in range(start, min(count, start + LOAD_BATCH))}
        )
    client.close()


def bare_node(port: int, count: int = 5000) -> int:
    client = redis.Redis(port=port)
    cursor, pending, deleted = 0, [], 0
    while True:
        pipe = client.pipeline(transaction=False)
        for key in pending:
            pipe.unlink(key)
        pipe.scan(cursor, match=PATTERN, count=count)
        answers = pipe.execute()
        deleted += sum(answers[:-1])
        cursor, pending = answers[-1]
        if cursor == 0:
            break
    if pending:
        pipe = client.pipeline(transaction=False)
        for key in pending:
            pipe.unlink(key)
        deleted += sum(pipe.execute())
    return deleted


def bare_client(ports: list[int]) -> None:
    threads = [threading.Thread(target=bare_node, args=(port,)) for port in ports]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def run_job(name: str, params: dict) -> dict:
    """A job as its Celery task runs it: a Run row executed by the runner."""
    from jobs import runner
    from jobs.models import Run

    run = Run.objects.create(kind="cache", name=name, params=params, actor_name="bench")
    runner.execute(run.pk)
    run.refresh_from_db()
    if run.status != "succeeded":
        raise SystemExit(f"{name} ended {run.status}: {run.error}")
    return run.result


def console_invalidation() -> dict:
    from cachemgr.services import invalidation

    approval = invalidation.approval_for("cluster", PATTERN)
    return run_job(
        invalidation.JOB_NAME, {"target": "cluster", "pattern": PATTERN, "approval": approval}
    )


def setup_django(cluster_url: str, node_url: str) -> None:
    database = Path(tempfile.gettempdir()) / "cachemgr-cluster-bench.sqlite3"
    os.environ["CACHE_TARGETS"] = f"cluster={cluster_url},node={node_url}"
    os.environ["DATABASE_URL"] = f"sqlite:///{database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsconsole.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def use_settings(**options) -> None:
    """Set the options given on the command line, then print the pacing in force."""
    from django.conf import settings

    from cachemgr import conf

    for name, value in options.items():
        if value is not None:
            setattr(settings, name, value)
    names = ("CACHE_SCAN_COUNT", "CACHE_INVALIDATE_DUTY", "CACHE_ANALYZE_COUNT")
    shown = [f"{name}={conf.get(name)}" for name in (*names, "CACHE_ANALYZE_DUTY")]
    print("pacing: " + "  ".join(shown), flush=True)


def row(label: str, keys: int, seconds: float, worst: dict[int, float], idle: dict) -> None:
    pings = "  ".join(
        f"{port}: {ms:5.1f} ms (idle {idle[port]:4.1f})" for port, ms in worst.items()
    )
    print(
        f"{label:<36} {keys / seconds:>10,.0f} keys/s {seconds:7.2f} s   worst PING {pings}",
        flush=True,
    )


def invalidation_part(cluster: LocalCluster, keys: int) -> None:
    ports = [node.port for node in cluster.nodes]
    half = keys // 2
    print(f"cluster: loading {keys:,} keys ({half:,} match {PATTERN}) …", flush=True)
    load_cluster(cluster, "bench:other:", half)
    _, idle = timed(ports, lambda: time.sleep(3))
    results = {}
    for label, action, commands in [
        ("(b) bare per-node SCAN+UNLINK", lambda: bare_client(ports), ("scan", "unlink")),
        ("(c) console invalidate_pattern", console_invalidation, ("evalsha",)),
    ]:
        load_cluster(cluster, "bench:match:", half)
        assert sum(node.client.dbsize() for node in cluster.nodes) == 2 * half
        reset_command_times(ports)
        seconds, worst = timed(ports, action)
        left = sum(node.client.dbsize() for node in cluster.nodes)
        assert left == half, f"{label}: {left - half} matching keys left"
        results[label] = half / seconds
        row(label, half, seconds, worst, idle)
        print(f"{'':<36} {command_times(ports, commands)}", flush=True)
    ratio = results["(c) console invalidate_pattern"] / results["(b) bare per-node SCAN+UNLINK"]
    print(f"console / bare client: {ratio:.2f}×", flush=True)


def load_node(client: redis.Redis, count: int) -> None:
    """Five namespaces; strings, hashes and lists; two thirds with a TTL."""
    namespaces = ["user_profile", "plan_catalog", "recommendations", "usage_analysis", "session"]
    for start in range(0, count, LOAD_BATCH):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(count, start + LOAD_BATCH)):
            key = f"{namespaces[i % 5]}:v1:{i}"
            if i % 7 == 0:
                pipe.hset(key, mapping={"a": i, "b": "x"})
            elif i % 11 == 0:
                pipe.rpush(key, i, i)
            else:
                pipe.set(key, "v" * (i % 50))
            if i % 3:
                pipe.expire(key, 3600 + i % 86400)
        pipe.execute()


def analysis_part(node: Server, keys: int) -> None:
    print(f"one node: loading {keys:,} keys …", flush=True)
    load_node(node.client, keys)
    _, idle = timed([node.port], lambda: time.sleep(3))
    outcome = {}
    reset_command_times([node.port])
    seconds, worst = timed(
        [node.port], lambda: outcome.update(run_job("cache.analyze", {"target": "node"}))
    )
    assert outcome["keys"] == keys, outcome
    row("exact analysis (cache.analyze)", keys, seconds, worst, idle)
    print(f"{'':<36} {command_times([node.port], ('evalsha',))}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=3_000_000)
    parser.add_argument("--analyze-keys", type=int, default=10_000_000)
    parser.add_argument("--analyze-count", type=int, help="CACHE_ANALYZE_COUNT (SCAN COUNT)")
    parser.add_argument("--duty", type=float, help="CACHE_INVALIDATE_DUTY (0 < duty ≤ 1)")
    parser.add_argument("--analyze-duty", type=float, help="CACHE_ANALYZE_DUTY (0 < duty ≤ 1)")
    args = parser.parse_args()
    cluster = LocalCluster(3)
    directory = Path(tempfile.mkdtemp(prefix="oc-bench-node-"))
    node = Server(directory)
    try:
        setup_django(cluster.url, f"redis://127.0.0.1:{node.port}/0")
        use_settings(
            CACHE_ANALYZE_COUNT=args.analyze_count,
            CACHE_INVALIDATE_DUTY=args.duty,
            CACHE_ANALYZE_DUTY=args.analyze_duty,
        )
        if args.keys:
            invalidation_part(cluster, args.keys)
        if args.analyze_keys:
            analysis_part(node, args.analyze_keys)
    finally:
        cluster.stop()
        node.stop()


if __name__ == "__main__":
    main()
