"""The cache manager's options: read from Django settings when present, else these defaults.

Only `CACHE_TARGETS` lives in opsconsole/settings.py today; every other option here
can be added there (from the environment) without changing this module.
"""

from typing import Any

from django.conf import settings

# Default fresh TTL per namespace, in seconds (the seeds' figures).
NAMESPACE_TTLS = {
    "plan_catalog": 3600,
    "user_profile": 24 * 3600,
    "recommendations": 24 * 3600,
    "usage_analysis": 7 * 24 * 3600,
    "response_cache": 300,
}

DEFAULTS: dict[str, Any] = {
    "CACHE_NAMESPACE_TTLS": NAMESPACE_TTLS,
    # TTL for a namespace the table above does not name.
    "CACHE_DEFAULT_TTL": 3600,
    # Stale window after the fresh TTL, as a fraction of it (stale-while-revalidate).
    "CACHE_STALE_FRACTION": 0.25,
    # Pattern invalidation: SCAN COUNT per chunk (a server-side step runs chunks until its
    # time budget, CACHE_INVALIDATE_STEP_MS, is spent; a pipelined step is one chunk);
    # keys per UNLINK; "steps" runs each step with its UNLINKs server-side (EVAL),
    # "pipeline" pipelines SCAN and UNLINK from here.
    "CACHE_SCAN_COUNT": 100,
    "CACHE_UNLINK_BATCH": 500,
    "CACHE_INVALIDATE_MODE": "steps",
    # Share of the time a pattern invalidation keeps each node busy: after a step that
    # took t seconds the node is left alone for t × (1 − duty) / duty (1: no rest).
    # Unpaced, the server-side step deletes ~5× faster than a bare pipelined client, and
    # back-to-back steps kept every other client's PING waiting 47–58 ms on a 2-core
    # machine (idle: 5–7 ms); a quarter of the time spends that headroom on latency.
    "CACHE_INVALIDATE_DUTY": 0.25,
    # How long one server-side step of a pattern invalidation may hold a node (ms, Redis'
    # own clock): a step runs SCAN chunks of CACHE_SCAN_COUNT and their UNLINKs until it
    # has spent this long (at least one chunk). Another client's command waits at most
    # this (plus one chunk) behind the walk. 0: one chunk per step.
    "CACHE_INVALIDATE_STEP_MS": 0.5,
    # Keys read (from cursor 0, i.e. in hash order: a uniform sample) to estimate a pattern.
    "CACHE_PREVIEW_SAMPLE": 50_000,
    # Pattern invalidations above this many keys need the pattern typed again.
    "CACHE_CONFIRM_ABOVE": 1000,
    # Namespace discovery: keys sampled by SCAN, and how long its result is cached.
    "CACHE_DISCOVERY_SAMPLE": 20_000,
    "CACHE_DISCOVERY_TTL": 120,
    # Stats snapshots are kept this many days (pruned by the per-minute task).
    "CACHE_HISTORY_DAYS": 30,
    # "target:warmer" (or "warmer" for every target) run when a worker starts.
    "CACHE_WARM_ON_STARTUP": (),
    # Schema holding the demo product tables the two demo warmers read.
    "CACHE_DEMO_SCHEMA": "public",
    # Exact analysis: SCAN COUNT per chunk of a step. Each key costs TYPE, PTTL and MEMORY
    # USAGE inside the step (3–9 µs here), so a chunk of 50 adds at most a fraction of a
    # millisecond past the step's time budget (CACHE_ANALYZE_STEP_MS).
    "CACHE_ANALYZE_COUNT": 50,
    # The analysis' duty cycle, as CACHE_INVALIDATE_DUTY. It has no headroom to spend:
    # 10M keys must take under 120 s, and with steps of 0.5 ms the round trips already
    # cost a share of the time (3.4 ms steps at duty 0.85 took 116.8 s). Each step holds
    # the node at most its time budget, so another client waits behind one step whatever
    # the duty; the duty only decides how much of a core the walk takes.
    "CACHE_ANALYZE_DUTY": 1.0,
    # How long one step of the analysis may hold a node (ms), as CACHE_INVALIDATE_STEP_MS;
    # CACHE_ANALYZE_COUNT is then the chunk each SCAN inside the step reads.
    "CACHE_ANALYZE_STEP_MS": 0.5,
    # The advice page flags keys bigger than this (from the newest exact analysis).
    "CACHE_BIG_KEY_BYTES": 1 << 20,
    # Socket timeouts (s) when the console talks to a cache target.
    "CACHE_CONNECT_TIMEOUT": 1.0,
    "CACHE_SOCKET_TIMEOUT": 10.0,
}


def get(name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])


def namespace_ttl(namespace: str) -> int:
    return int(get("CACHE_NAMESPACE_TTLS").get(namespace, get("CACHE_DEFAULT_TTL")))
