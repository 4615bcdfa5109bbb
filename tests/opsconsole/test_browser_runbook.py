import threading
import time

import pytest

from cachemgr.client import Cache
from cachemgr.targets import connect
from jobs.models import Run
from tests.browser import log_in

pytestmark = [pytest.mark.browser]


def test_it_launches_the_stampede_runbook_and_watches_it_finish(
    page, celery_worker, make_user, test_warmer
):
    namespace = test_warmer
    user = make_user("operator", username="browser-operator")
    cache = Cache(client=connect("main"), version_cache_s=0, counters_flush_s=0)
    stop = threading.Event()

    def readers():  # product traffic reading the namespace while the runbook runs
        while not stop.is_set():
            if cache.get(namespace, "k1") is not None:
                for i in range(50):
                    cache.get(namespace, f"k{i}")
                cache.flush_counters()
            time.sleep(0.2)

    traffic = threading.Thread(target=readers, daemon=True)
    traffic.start()
    try:
        log_in(page, user.username, "pw-for-tests-1")
        page.click("nav >> text=Runbooks")
        page.click("text=Cache stampede recovery")
        page.select_option("select[name=target]", "main")
        page.select_option("select[name=warmer]", namespace)
        page.fill("input[name=within_minutes]", "0.5")
        page.click("button[value=preview]")
        page.wait_for_selector("text=What will happen")
        page.fill("input[name=confirm]", "cache_stampede")
        page.fill("input[name=reason]", "hit rate fell after the 14:00 deploy")
        page.click("button[value=launch]")
        page.wait_for_selector("#runbook-steps")
        # The steps table updates itself (htmx) until the run ends.
        page.wait_for_selector("#runbook-steps >> text=succeeded", timeout=40_000)
        page.wait_for_function(
            "() => !document.querySelector('#runbook-steps').hasAttribute('hx-trigger')",
            timeout=40_000,
        )
    finally:
        stop.set()
        traffic.join()
    run = Run.objects.get(kind="runbook")
    assert run.status == "succeeded"
    assert [s["status"] for s in run.result["steps"]] == ["succeeded"] * 3
