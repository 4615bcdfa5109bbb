"""Benchmark: Redis Cluster pattern invalidation and exact keyspace analysis, with each
node's latency probed.

    .venv/bin/python bench/cache_cluster.py [--keys 3000000] [--analyze-keys 10000000]
        [--scan-count N] [--step-ms MS,…] [--duty D,…]
        [--analyze-count N] [--analyze-step-ms MS,…] [--analyze-duty D,…]

A comma-separated list runs the console once per value (each pairing of step budget and
duty), to compare variants within one run; unset options take the console's defaults.

Part 1 starts a local 3-primary cluster (cachemgr.localservers), loads `--keys` keys
(half match bench:match:*) and deletes the matching half two ways, reloading between:
(b) a bare client: per primary, one thread pipelining SCAN … COUNT 5000 and the UNLINKs
    of what it found (one per key: a cluster node refuses a multi-slot UNLINK);
(c) the console: a cache.invalidate_pattern Run executed by jobs.runner, as Celery runs it.
Part 2 starts one redis-server, loads `--analyze-keys` keys (five namespaces, strings,
hashes and lists, a third without TTL) and runs the exact analysis (a cache.analyze Run).
One process per node PINGs it every millisecond; each row shows per node the PING round
trip's p50 / p99 / max, and under it each node's server time per step (Redis' own
latency figures, p50 / p99 / max: what a PING can wait behind one step, without the
machine's scheduling). After the first measured row of each part, the same probes run
for as long with nothing to do ("idle probe"), then beside one busy core that never
touches Redis: a maximum grows with the time it is taken over, and the second row shows
what the machine's scheduling alone does to it. Servers are stopped and their directories removed at
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
    """Its own process: PING one node every millisecond; (port, (p50, p99, max) ms)."""
    client = redis.Redis(port=port)
    client.ping()
    ready.put(port)
    times = []
    while not stop.is_set():
        started = time.perf_counter()
        client.ping()
        times.append(time.perf_counter() - started)
        time.sleep(0.001)
    times.sort()
    spread = tuple(1000 * times[min(len(times) - 1, int(q * len(times)))] for q in (0.5, 0.99))
    result.put((port, (*spread, 1000 * times[-1])))


def burn(stop) -> None:
    """Its own process: one core's worth of work that never touches Redis."""
    while not stop.is_set():
        sum(range(10_000))


def reset_command_times(ports: list[int]) -> None:
    """Start each node's per-command latency figures afresh, with the maximum kept."""
    for port in ports:
        client = redis.Redis(port=port)
        client.config_set("latency-tracking-info-percentiles", "50 99 100")
        client.config_resetstat()
        client.close()


def command_times(ports: list[int], commands: tuple[str, ...]) -> str:
    """Each node's server time per call of `commands` (p50 / p99 / max, µs): how long
    one step held the node, whatever the machine's scheduling added around it."""
    shown = []
    for port in ports:
        client = redis.Redis(port=port)
        stats = client.info("latencystats")
        calls = client.info("commandstats")
        client.close()
        for command in commands:
            if figures := stats.get(f"latency_percentiles_usec_{command}"):
                n = calls.get(f"cmdstat_{command}", {}).get("calls", 0)
                shown.append(
                    f"{port} {command}×{n} "
                    f"{figures['p50']:.0f}/{figures['p99']:.0f}/{figures['p100']:.0f}"
                )
    return "step hold µs (p50/p99/max): " + "  ".join(shown)


def timed(ports: list[int], action, burners: int = 0) -> tuple[float, dict[int, tuple]]:
    """Run `action` while every port is probed (and `burners` processes keep a core busy
    each, away from Redis); (seconds, {port: (p50, p99, max) PING ms})."""
    ctx = multiprocessing.get_context("spawn")
    ready, stop, result = ctx.Queue(), ctx.Event(), ctx.Queue()
    probers = [ctx.Process(target=probe, args=(port, ready, stop, result)) for port in ports]
    probers += [ctx.Process(target=burn, args=(stop,)) for _ in range(burners)]
    for prober in probers:
        prober.start()
    for _ in ports:
        ready.get(timeout=60)
    time.sleep(0.2)
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    stop.set()
    worst = dict(result.get(timeout=30) for _ in ports)
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


def use_settings(**options) -> str:
    """Set the options given (None: the console's default); the pacing now in force."""
    from django.conf import settings

    from cachemgr import conf

    for name, value in options.items():
        if value is None:
            if hasattr(settings, name):
                delattr(settings, name)
        else:
            setattr(settings, name, value)
    return "  ".join(f"{name}={conf.get(name)}" for name in options)


def floats(text: str | None) -> list[float | None]:
    """A comma-separated list of values (variants compared within one run); [None]: the
    console's default."""
    return [float(v) for v in text.split(",")] if text else [None]


def row(label: str, keys: int, seconds: float, probed: dict[int, tuple]) -> None:
    pings = "  ".join(
        f"{port}: {p50:4.1f}/{p99:4.1f}/{top:5.1f}" for port, (p50, p99, top) in probed.items()
    )
    rate = f"{keys / seconds:>10,.0f} keys/s" if keys else " " * 17
    print(f"{label:<44} {rate} {seconds:7.2f} s   PING ms p50/p99/max {pings}", flush=True)


def baselines(ports: list[int], seconds: float) -> None:
    """The same probes with nothing to do, then beside one busy core that never touches
    Redis, each for `seconds` (a maximum grows with the time it is taken over)."""
    seconds = max(3.0, seconds)
    _, idle = timed(ports, lambda: time.sleep(seconds))
    row("idle probe (same length)", 0, seconds, idle)
    _, busy = timed(ports, lambda: time.sleep(seconds), burners=1)
    row("one busy core, no Redis work", 0, seconds, busy)


def invalidation_part(cluster: LocalCluster, keys: int, args) -> None:
    ports = [node.port for node in cluster.nodes]
    half = keys // 2
    print(f"cluster: loading {keys:,} keys ({half:,} match {PATTERN}) …", flush=True)
    load_cluster(cluster, "bench:other:", half)
    variants = [
        ("(b) bare per-node SCAN+UNLINK", lambda: bare_client(ports), ("scan", "unlink"), {})
    ]
    for step_ms in floats(args.step_ms):
        for duty in floats(args.duty):
            pacing = {"CACHE_INVALIDATE_STEP_MS": step_ms, "CACHE_INVALIDATE_DUTY": duty}
            variants.append(("(c) console", console_invalidation, ("evalsha",), pacing))
    rates, labels = [], []
    for label, action, commands, pacing in variants:
        if pacing:
            label = f"{label} {use_settings(CACHE_SCAN_COUNT=args.scan_count, **pacing)}"
        load_cluster(cluster, "bench:match:", half)
        assert sum(node.client.dbsize() for node in cluster.nodes) == 2 * half
        reset_command_times(ports)
        seconds, probed = timed(ports, action)
        left = sum(node.client.dbsize() for node in cluster.nodes)
        assert left == half, f"{label}: {left - half} matching keys left"
        rates.append(half / seconds)
        labels.append(label)
        print(label, flush=True)
        row("", half, seconds, probed)
        print(f"{'':<44} {command_times(ports, commands)}", flush=True)
        if len(rates) == 1:
            baselines(ports, seconds)
    for label, rate in zip(labels[1:], rates[1:], strict=True):
        print(f"{label}: {rate / rates[0]:.2f}× the bare client", flush=True)


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


def analysis_part(node: Server, keys: int, args) -> None:
    print(f"one node: loading {keys:,} keys …", flush=True)
    load_node(node.client, keys)
    first = True
    variants = [
        (count, step_ms, duty)
        for count in floats(args.analyze_count)
        for step_ms in floats(args.analyze_step_ms)
        for duty in floats(args.analyze_duty)
    ]
    for count, step_ms, duty in variants:
        pacing = use_settings(
            CACHE_ANALYZE_COUNT=count and int(count),
            CACHE_ANALYZE_STEP_MS=step_ms,
            CACHE_ANALYZE_DUTY=duty,
        )
        outcome = {}
        reset_command_times([node.port])
        seconds, probed = timed(
            [node.port],
            lambda out=outcome: out.update(run_job("cache.analyze", {"target": "node"})),
        )
        assert outcome["keys"] == keys, outcome
        print(f"exact analysis (cache.analyze) {pacing}", flush=True)
        row("", keys, seconds, probed)
        print(f"{'':<44} {command_times([node.port], ('evalsha',))}", flush=True)
        if first:
            baselines([node.port], seconds)
            first = False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=3_000_000)
    parser.add_argument("--analyze-keys", type=int, default=10_000_000)
    parser.add_argument("--scan-count", type=int, help="CACHE_SCAN_COUNT (chunk)")
    parser.add_argument("--analyze-count", help="CACHE_ANALYZE_COUNT (chunk), e.g. 50,500")
    parser.add_argument("--step-ms", help="CACHE_INVALIDATE_STEP_MS, e.g. 0.25,0.5,1")
    parser.add_argument("--duty", help="CACHE_INVALIDATE_DUTY (0 < duty ≤ 1), e.g. 0.1,0.25")
    parser.add_argument("--analyze-step-ms", help="CACHE_ANALYZE_STEP_MS, e.g. 0.5,1")
    parser.add_argument("--analyze-duty", help="CACHE_ANALYZE_DUTY, e.g. 0.6,0.85")
    args = parser.parse_args()
    cluster = LocalCluster(3)
    directory = Path(tempfile.mkdtemp(prefix="oc-bench-node-"))
    node = Server(directory)
    try:
        setup_django(cluster.url, f"redis://127.0.0.1:{node.port}/0")
        if args.keys:
            invalidation_part(cluster, args.keys, args)
        if args.analyze_keys:
            analysis_part(node, args.analyze_keys, args)
    finally:
        cluster.stop()
        node.stop()


if __name__ == "__main__":
    main()
