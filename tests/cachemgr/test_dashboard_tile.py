"""The dashboard's cache tile and the Cache page show the same hit rate."""

import pytest

from cachemgr.services import stats

pytestmark = pytest.mark.django_db


def test_the_dashboard_tile_shows_the_hit_rate_the_cache_page_shows(client_as, own_redis, settings):
    settings.CACHE_TARGETS = {"own": own_redis.url}
    own_redis.client.set("k", "v")
    for key in ("k", "k", "k", "missing"):
        own_redis.client.get(key)  # 3 hits, 1 miss since this Redis started
    stats.take_snapshot("own")

    client = client_as("viewer")
    dashboard = client.get("/").content.decode()
    cache_page = client.get("/cache/", {"target": "own"}).content.decode()

    assert "75.0% <span" in dashboard and "since Redis start" in dashboard
    assert "75 %" in cache_page


def test_a_tile_without_snapshots_says_when_the_first_point_comes(client_as, own_redis, settings):
    settings.CACHE_TARGETS = {"own": own_redis.url}
    dashboard = client_as("viewer").get("/").content.decode()
    assert "no reads yet" in dashboard
    assert "First point in about a minute" in dashboard
