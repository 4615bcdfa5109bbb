"""The stats page, namespace discovery and the per-minute snapshots."""

import re
import time
from datetime import timedelta

import pytest
import redis
from django.utils import timezone

from cachemgr.client import console_cache
from cachemgr.models import StatsSnapshot
from cachemgr.services import stats
from cachemgr.tasks import first_snapshot_on_worker_start


@pytest.fixture
def fresh_discovery():
    console_cache().delete("cache_namespaces", stats.discovery_key("main"))
    yield
    console_cache().delete("cache_namespaces", stats.discovery_key("main"))


@pytest.mark.django_db
def test_it_shows_server_figures_namespaces_and_their_hit_rate(client_as, scratch, fresh_discovery):
    ns = scratch.ns("orders")
    cache = scratch.cache()
    cache.prefix = ""
    for i in range(40):
        cache.set(ns, i, {"n": i}, ttl=600)
    for i in range(30):
        cache.get(ns, i)  # hits
    for i in range(10):
        cache.get(ns, 1000 + i)  # misses
    cache.flush_counters()
    stats.refresh_namespaces("main")  # what the per-minute task does
    response = client_as("viewer").get("/cache/", {"target": "main"})
    assert response.status_code == 200
    server = response.context["server"]
    assert server["version"].startswith("7") and server["used_memory"] > 0
    rows = {r["namespace"]: r for r in response.context["discovery"]["namespaces"]}
    assert rows[ns]["keys"] == 40  # the test keyspace is small: sampled completely
    assert rows[ns]["ttl"]["< 1 h"] == 40
    assert rows[ns]["hit_rate"] == pytest.approx(0.75)
    assert rows[ns]["memory"] > 0
    page = response.content.decode()
    assert ns in page and "Slow log" in page and 'hx-trigger="every 5s"' in page


@pytest.mark.django_db
def test_it_never_discovers_namespaces_inside_the_request(client_as, scratch, fresh_discovery):
    ns = scratch.ns("cold")
    scratch.load([f"{ns}:v1:{i}" for i in range(10)])
    client = client_as("viewer")
    first = client.get("/cache/", {"target": "main"}, HTTP_HX_REQUEST="true")
    assert first.context["discovery"] is None
    assert "Sampling the keyspace in the background" in first.content.decode()
    deadline = time.monotonic() + 10
    while stats.namespaces("main") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    later = client.get("/cache/", {"target": "main"}, HTTP_HX_REQUEST="true")
    assert ns in {row["namespace"] for row in later.context["discovery"]["namespaces"]}


@pytest.mark.django_db
def test_it_serves_the_live_partial_to_htmx(client_as, fresh_discovery):
    response = client_as("viewer").get("/cache/", {"target": "main"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert b"<html" not in response.content
    assert b'id="stats-live"' in response.content


def test_it_discovers_namespaces_from_a_bounded_sample(scratch):
    ns = scratch.ns("bulk")
    scratch.load([f"{ns}:v1:{i}" for i in range(20_000)])
    found = stats.discover_namespaces("main", sample=5000)
    assert 5000 <= found["scanned"] < 7000  # bounded, not the whole keyspace
    row = next(r for r in found["namespaces"] if r["namespace"] == ns)
    share = 20_000 / found["total_keys"]
    assert row["keys"] == pytest.approx(20_000, rel=0.2 / share)


@pytest.mark.django_db
def test_it_stores_snapshots_and_prunes_those_older_than_30_days(scratch, fresh_discovery):
    old = StatsSnapshot.objects.create(target="main", taken_at=timezone.now() - timedelta(days=31))
    kept = StatsSnapshot.objects.create(target="main", taken_at=timezone.now() - timedelta(days=29))
    outcome = stats.snapshot_all()
    assert outcome["snapshots"] == ["main"] and outcome["pruned"] == 1
    assert not StatsSnapshot.objects.filter(pk=old.pk).exists()
    assert StatsSnapshot.objects.filter(pk=kept.pk).exists()
    newest = StatsSnapshot.objects.filter(target="main").first()
    assert newest.used_memory > 0


@pytest.mark.django_db
def test_it_draws_the_history_as_server_side_svg(client_as, fresh_discovery):
    now = timezone.now()
    for minute in range(30):
        StatsSnapshot.objects.create(
            target="main",
            taken_at=now - timedelta(minutes=30 - minute),
            hit_rate=minute / 30,
            used_memory=1_000_000 + minute,
            ops_per_sec=minute,
            evicted_keys=minute * 2,
        )
    response = client_as("viewer").get("/cache/history/", {"target": "main", "range": "1h"})
    page = response.content.decode()
    assert response.status_code == 200
    assert page.count("<polyline") == 4
    assert "<script" not in page


@pytest.mark.django_db
def test_each_history_chart_states_its_unit_on_its_y_axis(client_as, fresh_discovery):
    now = timezone.now()
    for minute in range(30):
        StatsSnapshot.objects.create(
            target="main",
            taken_at=now - timedelta(minutes=30 - minute),
            hit_rate=0.5 + minute / 100,
            used_memory=(40 + minute) << 20,
            ops_per_sec=1000 + minute,
            evicted_keys=minute * 20,
        )
    response = client_as("viewer").get("/cache/history/", {"target": "main", "range": "1h"})
    svgs = re.findall(r"<svg.*?</svg>", response.content.decode(), re.DOTALL)
    tops = [re.findall(r'class="tick" text-anchor="end">([^<]*)</text>', svg)[0] for svg in svgs]
    assert tops == ["100%", "69 MB", "1,029 ops/s", "20 keys"]
    assert "now 79%" in response.content.decode()


@pytest.mark.django_db
def test_the_snapshot_task_reports_a_target_that_is_down(down_target, fresh_discovery):
    outcome = stats.snapshot_all()
    assert "down" in outcome["down"]
    assert "main" in outcome["snapshots"]


@pytest.mark.django_db(transaction=True)
def test_a_starting_worker_takes_the_first_snapshot(celery_worker, settings, fresh_discovery):
    settings.SNAPSHOTS_ON_WORKER_START = True
    first_snapshot_on_worker_start()
    deadline = time.monotonic() + 20
    while not StatsSnapshot.objects.filter(target="main").exists():
        assert time.monotonic() < deadline, "no snapshot within 20 s of the worker's start"
        time.sleep(0.1)


@pytest.mark.django_db
def test_the_stats_page_says_what_the_target_is_and_shows_each_node(
    client_as, sentinel, sentinel_servers
):
    response = client_as("viewer").get("/cache/", {"target": sentinel})
    assert response.status_code == 200
    content = response.content.decode()
    assert f"sentinel service cache, primary {sentinel_servers.primary.address}" in content
    assert sentinel_servers.replica.address in content and "link up" in content


def test_the_slow_log_names_its_server_and_warns_of_other_databases(own_redis):
    own_redis.client.config_set("slowlog-log-slower-than", 0)
    other = redis.Redis(port=own_redis.port, db=3)
    other.set("elsewhere", 1)
    server = stats.server_stats("own")
    assert server["slowlog"] and {e["node"] for e in server["slowlog"]} == {
        f"127.0.0.1:{own_redis.port}"
    }
    assert server["nodes"][0]["other_databases"] == ["db3"]
