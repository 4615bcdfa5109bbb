"""In Chromium: the stats page refreshes itself, a key is found and inspected, and a
pattern is previewed, confirmed by typing and deleted by a run the page follows."""

import pytest

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
