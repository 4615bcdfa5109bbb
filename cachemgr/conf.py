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
    # Pattern invalidation: SCAN COUNT per step; keys per UNLINK; "steps" runs each
    # SCAN step with its UNLINKs server-side (EVAL), "pipeline" pipelines them from here.
    "CACHE_SCAN_COUNT": 1000,
    "CACHE_UNLINK_BATCH": 500,
    "CACHE_INVALIDATE_MODE": "steps",
    # Share of the time a pattern invalidation keeps each node busy: after a step that
    # took t seconds the node is left alone for t × (1 − duty) / duty (1: no rest).
    # Unpaced, the server-side step deletes ~5× faster than a bare pipelined client, and
    # back-to-back steps kept every other client's PING waiting 47–58 ms on a 2-core
    # machine (idle: 5–7 ms); a quarter of the time spends that headroom on latency.
    "CACHE_INVALIDATE_DUTY": 0.25,
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
    # Exact analysis: SCAN COUNT per step. Each key costs TYPE, PTTL and MEMORY USAGE
    # inside the step (3–9 µs here), so 500 keeps a step to a few milliseconds.
    "CACHE_ANALYZE_COUNT": 500,
    # The analysis' duty cycle, as CACHE_INVALIDATE_DUTY. It has little headroom: unpaced,
    # 10M keys take ~93 s of the 120 s allowed, and a walk paced at `duty` takes about
    # 1 / duty as long (0.85: ~109 s), so it rests little.
    "CACHE_ANALYZE_DUTY": 0.85,
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
