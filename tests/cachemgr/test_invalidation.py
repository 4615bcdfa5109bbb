"""Invalidation services against real Redis: exact deletes, previews, faults, audit."""

import pytest

from cachemgr import targets
from cachemgr.services import invalidation
from opsconsole.models import AuditEvent

from .conftest import count

SPECIAL_NAMES = ["a*", "a?", "a[1]", "a[12]", "a\\b", "a]", "a", "ab", "a1"]


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["steps", "pipeline"])
def test_it_deletes_exactly_the_keys_matching_a_pattern(scratch, mode):
    p = scratch.prefix
    matching = [f"{p}user:{i}" for i in range(3000)] + [f"{p}user:[x]*", f"{p}user:\\?"]
    others = [f"{p}users:{i}" for i in range(500)] + [f"{p}session:{i}" for i in range(500)]
    scratch.load(matching + others)
    figures = invalidation.invalidate_pattern(
        "main", f"{p}user:*", "tester", scan_count=200, batch=70, mode=mode
    )
    assert figures["deleted"] == len(matching)
    assert count(scratch.redis, f"{p}user:*") == 0
    assert all(scratch.redis.exists(k) for k in others)


@pytest.mark.django_db
def test_it_deletes_one_exact_key_whose_name_holds_glob_specials(scratch):
    keys = [scratch.prefix + name for name in SPECIAL_NAMES]
    scratch.load(keys)
    for name in ["a*", "a[1]", "a\\b", "a?"]:
        assert invalidation.invalidate_key("main", scratch.prefix + name, "tester") == 1
    left = sorted(k.decode() for k in scratch.redis.scan_iter(match=scratch.prefix + "*"))
    expected = [scratch.prefix + n for n in SPECIAL_NAMES if n not in ("a*", "a[1]", "a\\b", "a?")]
    assert left == sorted(expected)


@pytest.mark.django_db
def test_it_escapes_glob_specials_so_a_pattern_matches_one_key(scratch):
    keys = [scratch.prefix + name for name in SPECIAL_NAMES]
    scratch.load(keys)
    for name in SPECIAL_NAMES:
        pattern = invalidation.escape_glob(scratch.prefix + name).decode()
        # a set: SCAN may return a key twice while Redis rehashes
        found = {k.decode() for k in scratch.redis.scan_iter(match=pattern, count=1000)}
        assert found == {scratch.prefix + name}
    pattern = invalidation.escape_glob(scratch.prefix + "a[1]").decode()
    assert invalidation.invalidate_pattern("main", pattern, "tester")["deleted"] == 1
    assert scratch.redis.exists(scratch.prefix + "a1") == 1


def test_it_matches_a_sample_with_redis_glob_semantics(scratch):
    names = SPECIAL_NAMES + ["b", "abc", "aXb", "a-b", "a^", "\xe9t\xe9"]
    scratch.load([scratch.prefix + n for n in names])
    patterns = ["a*", "a?", "a[1]*", "a[^1]", "a[a-c]*", "a\\*", "a[\\]]", "*b", "?", "[z-a]*"]
    for glob in patterns:
        full = scratch.prefix + glob
        by_redis = {k for k in scratch.redis.scan_iter(match=full, count=1000)}
        regex = invalidation.glob_regex(full)
        local = {
            (scratch.prefix + n).encode()
            for n in names
            if regex.fullmatch((scratch.prefix + n).encode())
        }
        assert local == by_redis, glob


def test_it_estimates_a_pattern_within_ten_percent_on_100k_keys(scratch):
    p = scratch.prefix
    scratch.load([f"{p}hot:{i}" for i in range(30_000)] + [f"{p}cold:{i}" for i in range(70_000)])
    preview = invalidation.preview_pattern("main", f"{p}hot:*", sample=20_000)
    others = int(scratch.redis.dbsize()) - 100_000  # keys other tests hold right now
    assert not preview.exact
    assert abs(preview.estimated_keys - 30_000) <= 3_000 + others
    pipe = scratch.redis.pipeline(transaction=False)
    for i in range(30_000):
        pipe.memory_usage(f"{p}hot:{i}")
    actual_bytes = sum(pipe.execute())
    assert abs(preview.estimated_bytes - actual_bytes) <= 0.1 * actual_bytes + 100 * others
    assert len(preview.first_matches) == 20
    assert all(m.startswith(f"{p}hot:") for m in preview.first_matches)
    assert count(scratch.redis, f"{p}hot:*") == 30_000  # a preview changes nothing


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "Enter a pattern"),
        ("user:[abc", "without its closing"),
        ("user:\\", "lone backslash"),
        ("a\nb", "line break"),
    ],
)
def test_it_rejects_malformed_patterns(pattern, message):
    with pytest.raises(invalidation.BadPattern, match=message):
        invalidation.check_pattern(pattern)


@pytest.mark.parametrize(
    ("pattern", "everything"),
    [
        ("*", True),
        ("**", True),
        ("?*", True),
        ("[a-z]*", True),
        ("*:*", False),
        ("user:*", False),
        ("\\*", False),
    ],
)
def test_it_treats_patterns_without_a_literal_as_matching_everything(pattern, everything):
    assert invalidation.matches_everything(pattern) is everything


@pytest.mark.django_db
def test_it_audits_each_invalidation_with_its_figures(scratch):
    ns = scratch.ns()
    cache = scratch.cache()
    cache.prefix = ""
    cache.set(ns, "a", 1, tags=[f"tag{scratch.id}"])
    cache.set(ns, "b", 2, tags=[f"tag{scratch.id}"])
    scratch.load([f"{scratch.prefix}k{i}" for i in range(10)])
    invalidation.invalidate_pattern("main", f"{scratch.prefix}k*", "tester")
    invalidation.invalidate_key("main", f"{scratch.prefix}nope", "tester")
    invalidation.invalidate_tag("main", f"tag{scratch.id}", "tester")
    invalidation.bump_namespace("main", ns, "tester")
    events = {e.action: e for e in AuditEvent.objects.filter(actor_name="tester")}
    assert events["cache.invalidate_pattern"].params["deleted"] == 10
    assert events["cache.invalidate_key"].params["deleted"] == 0
    assert events["cache.invalidate_tag"].params["deleted"] == 2
    assert events["cache.bump_namespace"].params["new_version"] == 2
    assert AuditEvent.objects.filter(actor_name="tester").count() == 4


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["steps", "pipeline"])
def test_it_stops_with_what_it_deleted_when_redis_goes_away_midway(own_redis, mode):
    # 2,000 steps of 100: the walk (a thread of its own) is far from done when the
    # third progress report stops Redis, however the threads are scheduled.
    own_redis.client.mset({f"k{i}": 1 for i in range(200_000)})
    rounds = []

    def kill_after_first_rounds(figures):
        rounds.append(figures["deleted"])
        if len(rounds) == 3:
            own_redis.stop()

    with pytest.raises(targets.TargetUnavailable, match="went away after"):
        invalidation.invalidate_pattern(
            "own", "k*", "tester", scan_count=100, progress=kill_after_first_rounds, mode=mode
        )
    event = AuditEvent.objects.get(action="cache.invalidate_pattern")
    assert event.outcome == "failed"
    assert 0 < event.params["deleted"] < 200_000
    assert event.params["deleted"] == rounds[-1]


def test_it_reports_an_unreachable_target_clearly(down_target):
    with pytest.raises(targets.TargetUnavailable, match="unreachable"):
        invalidation.preview_pattern(down_target, "x*")
    with pytest.raises(targets.UnknownTarget, match="Unknown cache target"):
        invalidation.preview_pattern("nowhere", "x*")


@pytest.mark.django_db
def test_it_falls_back_to_the_pipeline_where_scripting_is_disabled(own_redis):
    own_redis.client.mset({f"k{i}": 1 for i in range(3000)} | {"other": 1})
    own_redis.client.execute_command("ACL", "SETUSER", "default", "-@scripting")
    figures = invalidation.invalidate_pattern("own", "k*", "tester", scan_count=100)
    assert figures["deleted"] == 3000
    assert own_redis.client.dbsize() == 1
