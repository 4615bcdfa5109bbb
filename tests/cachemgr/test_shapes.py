"""Every cache action on a real 3-primary Redis Cluster and a real Sentinel service."""

import pytest
from django.core.management import call_command
from django.utils import timezone

from cachemgr import demo, targets
from cachemgr.client import Cache
from cachemgr.models import StatsSnapshot
from cachemgr.registry import WARMERS, warmer
from cachemgr.services import invalidation, keys, stats, warming
from opsconsole import dashboard, health, metrics
from opsconsole.models import AuditEvent

pytestmark = pytest.mark.django_db


def _load(target: str, names: list[str]) -> None:
    client = targets.connect(target)
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.set(name, b"x")
    pipe.execute()


def _all_keys(target: str) -> set[bytes]:
    return {
        key
        for node in targets.primaries(target)
        for key in node.client.scan_iter(match="*", count=1000)
    }


def test_it_deletes_exactly_the_matching_keys_on_every_primary(shape):
    matching = [f"user:{i}" for i in range(3000)] + ["user:[x]*", "user:\\?"]
    others = [f"users:{i}" for i in range(500)] + [f"session:{i}" for i in range(500)]
    _load(shape, matching + others)
    figures = invalidation.invalidate_pattern(shape, "user:*", "tester", scan_count=200)
    assert figures["deleted"] == len(matching)
    assert _all_keys(shape) == {k.encode() for k in others}
    if shape == "cluster":  # the work really was spread over the three primaries
        assert len(figures["nodes"]) == 3 and all(n > 0 for n in figures["nodes"].values())
    event = AuditEvent.objects.get(action="cache.invalidate_pattern")
    assert event.outcome == "ok" and event.params["deleted"] == len(matching)


def test_the_pipeline_mode_deletes_exactly_too(shape):
    _load(shape, [f"p:{i}" for i in range(2000)] + ["q:1"])
    figures = invalidation.invalidate_pattern(
        shape, "p:*", "tester", scan_count=100, mode="pipeline"
    )
    assert figures["deleted"] == 2000 and _all_keys(shape) == {b"q:1"}


def test_the_preview_counts_every_primary(shape):
    _load(shape, [f"prev:{i}" for i in range(900)] + [f"keep:{i}" for i in range(100)])
    preview = invalidation.preview_pattern(shape, "prev:*")
    assert preview.exact and preview.estimated_keys == 900 and preview.total_keys == 1000
    assert len(preview.first_matches) == invalidation.FIRST_MATCHES


def test_it_deletes_a_key_a_tag_and_bumps_a_namespace(shape):
    cache = Cache(client=targets.connect(shape), counters_flush_s=0, version_cache_s=0)
    for i in range(50):
        cache.set("profile", i, {"n": i}, tags=["customer:7"] if i % 2 else [])
    assert invalidation.invalidate_tag(shape, "customer:7", "tester") == 25
    assert cache.get("profile", 1) is None and cache.get("profile", 2) == {"n": 2}
    assert invalidation.invalidate_key(shape, cache.key("profile", 2), "tester") == 1
    versions = invalidation.bump_namespace(shape, "profile", "tester")
    assert versions == {"old_version": 1, "new_version": 2}
    assert cache.get("profile", 4) is None


def test_the_key_browser_walks_every_primary_with_one_cursor(shape):
    names = {f"browse:{i}" for i in range(700)}
    _load(shape, sorted(names))
    seen, cursor, listed = set(), 0, 0
    for _ in range(200):
        page = keys.search(shape, "browse:*", cursor, page_size=100, listed_before=listed)
        seen |= {row["key"] for row in page["keys"]}
        listed = page["listed_so_far"]
        if page["done"]:
            break
        cursor = page["cursor"]
    assert seen == names
    assert listed >= len(names) and page["total_keys"] == 700
    row = keys.inspect(shape, b"browse:1")
    assert row["type"] == "string" and row["size"] > 0


def test_stats_show_each_node_and_add_up_the_primaries(shape):
    _load(shape, [f"s:{i}" for i in range(300)])
    server = stats.server_stats(shape)
    primaries = [n for n in server["nodes"] if n["role"] == "primary"]
    assert server["keys"] == 300 == sum(n["keys"] for n in primaries)
    assert server["shape"] == targets.describe(shape)
    if shape == "cluster":
        assert len(primaries) == 3
    else:  # the replica is listed with its link, and the primary sees it
        replica = next(n for n in server["nodes"] if n["role"] == "replica")
        assert replica["link"] == "up"
        assert primaries[0]["replicas"][0]["state"] == "online"
    found = stats.discover_namespaces(shape)
    assert found["complete"] and {r["namespace"]: r["keys"] for r in found["namespaces"]} == {
        "s": 300
    }


def test_snapshots_are_kept_per_node_and_for_the_whole_target(shape):
    whole = stats.take_snapshot(shape)
    rows = list(stats.history(shape).values_list("node", flat=True))
    assert whole.node == "" and rows == [""]
    nodes = {n.name for n in targets.nodes(shape)}
    per_node = StatsSnapshot.objects.filter(target=shape).exclude(node="")
    assert set(per_node.values_list("node", flat=True)) == nodes


def test_a_warmer_fills_its_namespace(shape):
    @warmer("warmed", name="shape_warmer", description="rows")
    def rows(limit):
        yield from ((i, {"i": i}) for i in range(1200))

    try:
        figures = warming.warm(shape, "shape_warmer", "tester")
    finally:
        WARMERS.pop("shape_warmer")
    assert figures["written"] == 1200
    cache = Cache(client=targets.connect(shape))
    assert cache.get("warmed", 1199) == {"i": 1199}
    assert len([k for k in _all_keys(shape) if k.startswith(b"warmed:")]) == 1200


def test_the_client_library_takes_a_cluster_or_sentinel_url(shape, settings):
    cache = Cache(settings.CACHE_TARGETS[shape], counters_flush_s=0)
    loads = []
    value = cache.get_or_set("lib", "k", lambda: loads.append(1) or {"v": 1}, tags=["t"])
    assert value == cache.get_or_set("lib", "k", lambda: loads.append(1)) == {"v": 1}
    assert loads == [1]
    assert cache.invalidate_tag("t") == 1 and cache.get("lib", "k") is None


def test_the_cli_works_on_the_shape(shape, capsys):
    _load(shape, [f"cli:{i}" for i in range(40)])
    call_command("cache", "stats", "--target", shape)
    assert targets.describe(shape) in capsys.readouterr().out
    call_command("cache", "keys", "cli:*", "--target", shape, "--page-size", "100")
    assert capsys.readouterr().out.count("cli:") == 40


def test_the_demo_keys_load_into_the_shape(shape):
    written = demo.seed_target(shape)["keys_written"]
    assert written > 10_000
    assert stats.server_stats(shape)["keys"] >= written


def test_readiness_pings_the_shape(shape):
    checks = {check.name: check for check in health.readiness(include_workers=False)}
    assert checks[f"cache:{shape}"].ok


def test_metrics_and_the_dashboard_read_the_whole_target_not_a_node(shape):
    stats.take_snapshot(shape)
    latest = [s for s in metrics.latest_cache_snapshots() if s.target == shape]
    assert [s.node for s in latest] == [""]
    tile = next(t for t in dashboard.cache_tiles(timezone.now()) if t["target"] == shape)
    assert tile["used_memory"] == latest[0].used_memory
