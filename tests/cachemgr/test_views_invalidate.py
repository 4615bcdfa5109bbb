"""The Invalidate pages: preview, typed confirmation enforced server-side, roles, one run."""

from collections import defaultdict
from uuid import uuid4

import pytest

from cachemgr.services import invalidation
from jobs import runner
from jobs.models import Run
from opsconsole.models import AuditEvent

from .conftest import count, wait_for

RK: defaultdict = defaultdict(lambda: uuid4().hex)


def _confirm(client, pattern, confirm="", target="main", request_key=None):
    return client.post(
        "/cache/invalidate/pattern/",
        {
            "target": target,
            "pattern": pattern,
            "confirm": confirm,
            "request_key": request_key or uuid4().hex,
        },
    )


@pytest.mark.django_db
def test_it_previews_a_pattern_with_an_estimate_and_first_matches(client_as, scratch):
    scratch.load([f"{scratch.prefix}p:{i}" for i in range(30)])
    client = client_as("operator")
    response = client.get(
        "/cache/invalidate/preview/", {"target": "main", "pattern": f"{scratch.prefix}p:*"}
    )
    assert response.status_code == 200
    assert response.context["preview"].estimated_keys == 30
    assert len(response.context["preview"].first_matches) == 20
    assert f"{scratch.prefix}p:" in response.content.decode()
    assert count(scratch.redis, f"{scratch.prefix}p:*") == 30


@pytest.mark.django_db
def test_it_requires_the_pattern_typed_above_1000_keys(client_as, scratch):
    scratch.load([f"{scratch.prefix}big:{i}" for i in range(1500)])
    client = client_as("operator")
    pattern = f"{scratch.prefix}big:*"
    response = _confirm(client, pattern, confirm="yes")
    assert response.status_code == 400
    assert "type the pattern exactly" in response.content.decode()
    assert not Run.objects.exists()
    assert AuditEvent.objects.filter(action="cache.invalidate_pattern", outcome="denied").exists()
    response = _confirm(client, pattern, confirm=pattern, request_key=RK["k2"])
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/jobs/runs/{run.pk}/"
    assert run.params["pattern"] == pattern


@pytest.mark.django_db
def test_it_starts_small_invalidations_without_typing(client_as, scratch):
    scratch.load([f"{scratch.prefix}small:{i}" for i in range(10)])
    response = _confirm(client_as("operator"), f"{scratch.prefix}small:*")
    assert response.status_code == 302
    assert Run.objects.get().name == "cache.invalidate_pattern"


@pytest.mark.django_db
def test_it_refuses_a_match_all_pattern_to_an_operator(client_as, own_redis):
    own_redis.client.set("k", 1)
    response = _confirm(client_as("operator"), "*", confirm="own", target="own")
    assert response.status_code == 400
    assert "Only an admin" in response.content.decode()
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_it_requires_the_target_name_for_a_match_all_pattern(client_as, own_redis):
    own_redis.client.set("k", 1)
    client = client_as("admin")
    assert _confirm(client, "*", confirm="*", target="own").status_code == 400
    assert not Run.objects.exists()
    assert (
        _confirm(client, "*", confirm="own", target="own", request_key=RK["k2"]).status_code == 302
    )
    assert Run.objects.get().params["pattern"] == "*"


def test_it_runs_a_match_all_invalidation_to_the_end(celery_worker, client_as, own_redis):
    own_redis.client.mset({f"k{i}": i for i in range(5000)})
    response = _confirm(client_as("admin"), "*", confirm="own", target="own")
    run = wait_for(Run.objects.get())
    assert response.status_code == 302
    assert run.status == "succeeded", run.error
    assert run.result["deleted"] == 5000
    assert own_redis.client.dbsize() == 0
    event = AuditEvent.objects.get(action="cache.invalidate_pattern")
    assert event.run == run and event.params["deleted"] == 5000


@pytest.mark.django_db
def test_a_double_submitted_form_starts_one_run(client_as, scratch):
    scratch.load([f"{scratch.prefix}d:{i}" for i in range(5)])
    client = client_as("operator")
    first = _confirm(client, f"{scratch.prefix}d:*", request_key=RK["same"])
    second = _confirm(client, f"{scratch.prefix}d:*", request_key=RK["same"])
    assert first["Location"] == second["Location"]
    assert Run.objects.count() == 1


def test_the_run_fails_with_its_figures_when_redis_goes_away(
    celery_worker, client_as, own_redis, settings
):
    # Steps of 10 keys over 400,000: the run is still going when Redis is stopped,
    # however fast this machine walks them.
    settings.CACHE_SCAN_COUNT = 10
    settings.CACHE_UNLINK_BATCH = 10
    for start in range(0, 400_000, 100_000):
        own_redis.client.mset({f"k{i}": i for i in range(start, start + 100_000)})
    _confirm(client_as("admin"), "k*", confirm="k*", target="own")
    run = wait_for(Run.objects.get(), statuses=("running",))
    wait_for_progress(run)
    own_redis.stop()
    run = wait_for(run)
    assert run.status == "failed"
    assert "went away after" in run.error
    assert run.progress_done > 0
    event = AuditEvent.objects.get(action="cache.invalidate_pattern")
    assert event.outcome == "failed" and event.params["deleted"] > 0


def wait_for_progress(run):
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.progress_done > 0 or not run.is_active:
            return
        time.sleep(0.02)


@pytest.mark.django_db
def test_the_job_refuses_parameters_without_the_preview_approval(scratch):
    with pytest.raises(runner.LaunchRefused, match="Invalidate page"):
        runner.start(
            "cache.invalidate_pattern",
            {"target": "main", "pattern": "*", "approval": "forged"},
            "tester",
        )
    approval = invalidation.approval_for("main", "other*")
    with pytest.raises(runner.LaunchRefused):
        runner.start(
            "cache.invalidate_pattern",
            {"target": "main", "pattern": "*", "approval": approval},
            "tester",
        )


@pytest.mark.django_db
def test_it_deletes_one_key_a_tag_and_bumps_a_namespace_from_the_page(client_as, scratch):
    ns = scratch.ns()
    cache = scratch.cache()
    cache.prefix = ""
    cache.set(ns, "a", 1, tags=[f"t{scratch.id}"])
    scratch.load([f"{scratch.prefix}x[1]", f"{scratch.prefix}x1"])
    client = client_as("operator")
    client.post(
        "/cache/invalidate/key/",
        {"target": "main", "key": f"{scratch.prefix}x[1]", "request_key": RK["a"]},
    )
    assert scratch.redis.exists(f"{scratch.prefix}x[1]") == 0
    assert scratch.redis.exists(f"{scratch.prefix}x1") == 1
    client.post(
        "/cache/invalidate/tag/",
        {"target": "main", "tag": f"t{scratch.id}", "request_key": RK["b"]},
    )
    assert cache.get(ns, "a") is None
    response = client.post(
        "/cache/invalidate/namespace/",
        {"target": "main", "namespace": ns, "confirm": "wrong", "request_key": RK["c"]},
    )
    assert response.status_code == 302
    assert cache.version(ns) == 1  # not confirmed: nothing bumped
    client.post(
        "/cache/invalidate/namespace/",
        {"target": "main", "namespace": ns, "confirm": ns, "request_key": RK["d"]},
    )
    client.post(
        "/cache/invalidate/namespace/",
        {"target": "main", "namespace": ns, "confirm": ns, "request_key": RK["d"]},
    )
    cache.version_cache_s = 0
    assert cache.version(ns) == 2  # the double submit bumped once
    assert AuditEvent.objects.filter(action="cache.bump_namespace").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/cache/invalidate/pattern/",
        "/cache/invalidate/key/",
        "/cache/invalidate/tag/",
        "/cache/invalidate/namespace/",
        "/cache/keys/delete/",
        "/cache/keys/ttl/",
        "/cache/warm/start/",
    ],
)
def test_it_refuses_viewers_on_mutating_views(client_as, scratch, path):
    scratch.load([f"{scratch.prefix}v"])
    response = client_as("viewer").post(
        path, {"target": "main", "pattern": "*", "key": f"{scratch.prefix}v", "confirm": "main"}
    )
    assert response.status_code == 403
    assert scratch.redis.exists(f"{scratch.prefix}v") == 1


@pytest.mark.django_db
def test_it_shows_form_errors_for_bad_input_instead_of_failing(client_as):
    client = client_as("operator")
    response = client.get(
        "/cache/invalidate/preview/", {"target": "main", "pattern": "a[b"}, follow=True
    )
    assert response.status_code == 200
    assert "closing" in response.content.decode()
    response = client.get(
        "/cache/invalidate/preview/", {"target": "nope", "pattern": "a*"}, follow=True
    )
    assert "Unknown cache target" in response.content.decode()
    response = client.post(
        "/cache/invalidate/pattern/", {"target": "main", "pattern": ""}, follow=True
    )
    assert response.status_code == 200
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_it_says_so_when_redis_is_down(client_as, down_target):
    client = client_as("operator")
    response = client.get(
        "/cache/invalidate/preview/", {"target": "down", "pattern": "a*"}, follow=True
    )
    assert response.status_code == 200
    assert "unreachable" in response.content.decode()
