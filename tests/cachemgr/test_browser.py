"""In Chromium: the stats page refreshes itself, a key is found and inspected, and a
pattern is previewed, confirmed by typing and deleted by a run the page follows."""

import pytest

from cachemgr import targets
from tests.browser import log_in, page  # noqa: F401

from .conftest import count

pytestmark = [pytest.mark.browser]


def test_it_invalidates_a_pattern_from_the_browser(page, celery_worker, make_user, scratch):  # noqa: F811
    make_user("admin", username="browser-admin")
    p = scratch.prefix
    scratch.load([f"{p}web:{i}" for i in range(1200)] + [f"{p}keep"])
    log_in(page, "browser-admin", "pw-for-tests-1")
    page.wait_for_selector("h1:has-text('Dashboard')")

    page.click("nav >> text=Cache")
    page.wait_for_selector("h1:has-text('Cache: main')")
    page.wait_for_selector("text=Namespaces")
    page.wait_for_selector("text=Slow log")

    page.goto(f"/cache/keys/?target=main&pattern={p}keep")
    page.click(f"a:has-text('{p}keep')")
    page.wait_for_selector("text=Delete this key")

    page.goto("/cache/invalidate/?target=main")
    page.fill("input[name=pattern]", f"{p}web:*")
    page.click("button:has-text('Preview')")
    page.wait_for_selector("text=First matches")
    page.click("button:has-text('Delete matching keys')")  # without typing: refused
    page.wait_for_selector("text=type the pattern exactly")
    page.fill("input[name=confirm]", f"{p}web:*")
    page.click("button:has-text('Delete matching keys')")
    page.wait_for_selector("h1:has-text('cache.invalidate_pattern')")
    page.wait_for_selector(".badge:has-text('succeeded')", timeout=30_000)
    assert count(scratch.redis, f"{p}web:*") == 0
    assert scratch.redis.exists(f"{p}keep") == 1


def test_a_cluster_target_from_the_browser(page, celery_worker, make_user, cluster):  # noqa: F811
    """Stats, keys, pattern invalidation, exact analysis and advice on a real cluster."""
    client = targets.connect(cluster)
    client.mset_nonatomic({f"web:{i}": i for i in range(1500)} | {"keep:1": 1})
    make_user("admin", username="cluster-admin")
    log_in(page, "cluster-admin", "pw-for-tests-1")
    page.wait_for_selector("h1:has-text('Dashboard')")

    page.goto(f"/cache/?target={cluster}")
    page.wait_for_selector("text=cluster with 3 primaries")
    page.wait_for_selector("h2:has-text('Nodes')")

    page.goto(f"/cache/keys/?target={cluster}&pattern=web:*")
    page.select_option("select[name=page_size]", "500")
    page.click("button:has-text('Search')")
    page.wait_for_selector("text=3 primaries, one cursor")
    page.click("a:has-text('Next page →') >> nth=-1")  # the link below the table
    page.wait_for_selector("text=listed so far")

    page.goto(f"/cache/invalidate/?target={cluster}")
    page.fill("input[name=pattern]", "web:*")
    page.click("button:has-text('Preview')")
    page.wait_for_selector("text=First matches")
    page.fill("input[name=confirm]", "web:*")
    page.click("button:has-text('Delete matching keys')")
    page.wait_for_selector(".badge:has-text('succeeded')", timeout=30_000)
    assert sum(node.client.dbsize() for node in targets.primaries(cluster)) == 1

    page.goto(f"/cache/analysis/?target={cluster}")
    page.click("button:has-text('Analyse cluster now')")
    page.wait_for_selector(".badge:has-text('succeeded')", timeout=30_000)
    page.goto(f"/cache/analysis/?target={cluster}")
    page.wait_for_selector("td a:has-text('keep')")
    page.wait_for_selector(".bar")

    page.goto(f"/cache/advice/?target={cluster}")
    page.wait_for_selector("text=MEMORY DOCTOR")
