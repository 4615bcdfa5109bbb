"""Latency and memory advice per node: what Redis says about itself (LATENCY LATEST and
HISTORY, MEMORY DOCTOR, LATENCY DOCTOR) and the console's own findings from the stats
and the newest exact analysis. Reads only; every call here is O(1) or bounded by the
latency monitor's own history (160 samples per event)."""

from typing import Any

import redis

from .. import conf, targets
from . import analysis, stats

NEAR_FULL = 0.9


def node_advice(node: targets.Node) -> dict[str, Any]:
    """What one server says about its latency and memory."""
    client = node.client
    events = [
        {"event": _text(event), "at": int(at), "latest_ms": int(latest), "max_ms": int(worst)}
        for event, at, latest, worst in client.execute_command("LATENCY", "LATEST")
    ]
    for event in events:
        event["history"] = [
            {"at": int(at), "ms": int(ms)}
            for at, ms in client.execute_command("LATENCY", "HISTORY", event["event"])
        ]
    return {
        "node": node.name,
        "role": node.role,
        "monitor_threshold_ms": _monitor_threshold(client),
        "latency": events,
        "memory_doctor": _text(client.execute_command("MEMORY", "DOCTOR")),
        "latency_doctor": _text(client.execute_command("LATENCY", "DOCTOR")),
        "oom_refusals": int(client.info("errorstats").get("errorstat_OOM", {}).get("count", 0)),
    }


def _monitor_threshold(client) -> int | None:
    """latency-monitor-threshold (0: the monitor is off); None where CONFIG is refused."""
    try:
        return int(client.config_get("latency-monitor-threshold")["latency-monitor-threshold"])
    except (redis.ResponseError, KeyError):
        return None


def _text(value) -> str:
    return value.decode("utf-8", errors="backslashreplace") if isinstance(value, bytes) else value


def advice(target: str) -> dict[str, Any]:
    """Every node's own advice and the console's findings for `target`."""
    try:
        nodes = [node_advice(node) for node in targets.nodes(target)]
    except targets.REDIS_FAULTS as exc:
        raise targets.unavailable(target, exc) from exc
    server = stats.server_stats(target)
    newest = analysis.KeyspaceAnalysis.objects.filter(
        target=target, status=analysis.KeyspaceAnalysis.COMPLETE
    ).first()
    return {
        "target": target,
        "shape": server["shape"],
        "nodes": nodes,
        "analysis": newest,
        "findings": findings(server, nodes, newest),
    }


def findings(server: dict[str, Any], nodes: list[dict], newest) -> list[dict[str, str]]:
    """The console's findings, each with what to do about it."""
    found = []
    by_name = {row["node"]: row for row in nodes}
    for row in server["nodes"]:
        found += _memory_findings(row, by_name.get(row["node"], {}))
    if newest is not None:
        found += _ttl_findings(newest) + _big_key_findings(newest)
    return found


def _memory_findings(row: dict[str, Any], advice_row: dict[str, Any]) -> list[dict[str, str]]:
    found = []
    full = row["maxmemory"] and row["used_memory"] >= NEAR_FULL * row["maxmemory"]
    refused = advice_row.get("oom_refusals", 0)
    if row["maxmemory_policy"] == "noeviction" and (full or refused):
        found.append(
            {
                "severity": "bad",
                "node": row["node"],
                "finding": f"{row['node']} is at {row['used_memory']:,} of "
                f"{row['maxmemory']:,} B under noeviction: it refuses writes instead of "
                f"evicting ({refused:,} refused with OOM so far).",
                "fix": "Give keys TTLs, raise maxmemory, or set maxmemory-policy "
                "allkeys-lru (or volatile-lru) on a cache.",
            }
        )
    elif row["evicted_keys"]:
        found.append(
            {
                "severity": "warn",
                "node": row["node"],
                "finding": f"{row['node']} has evicted {row['evicted_keys']:,} keys "
                f"({row['maxmemory_policy']}).",
                "fix": "Evictions cost hit rate: raise maxmemory or shorten TTLs of big "
                "namespaces.",
            }
        )
    return found


def _ttl_findings(newest) -> list[dict[str, str]]:
    found = []
    for name, figures in newest.namespaces.items():
        without = figures["ttl"]["no TTL"]
        if without and without < figures["keys"]:
            found.append(
                {
                    "severity": "warn",
                    "node": "",
                    "finding": f"{without:,} of {figures['keys']:,} keys of {name} have no TTL "
                    "while the others do: they stay until evicted or deleted.",
                    "fix": f"Find them in the key browser ({name}:*) and set a TTL, or fix "
                    "the writer that stores them without one.",
                }
            )
    return found


def _big_key_findings(newest) -> list[dict[str, str]]:
    limit = conf.get("CACHE_BIG_KEY_BYTES")
    return [
        {
            "severity": "warn",
            "node": big["node"],
            "finding": f"{big['key']} ({big['type']}) uses {big['size']:,} B, over "
            f"the {limit:,} B threshold.",
            "fix": "Reading or deleting it blocks its node for longer than other keys: "
            "split it, or store it compressed.",
        }
        for big in newest.biggest
        if big["size"] > limit
    ]
