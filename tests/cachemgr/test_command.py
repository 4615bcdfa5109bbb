"""`manage.py cache`: the CLI twin of the pages (same services, same audit events)."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from jobs.models import Run
from opsconsole.models import AuditEvent

from .conftest import count


def cache(*args) -> str:
    out = StringIO()
    call_command("cache", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_it_prints_stats_as_json(scratch):
    data = json.loads(cache("stats", "--json"))
    assert data["server"]["target"] == "main"
    assert "namespaces" in data["namespaces"]


@pytest.mark.django_db
def test_it_lists_keys_as_json(scratch):
    scratch.load([f"{scratch.prefix}cli:{i}" for i in range(5)])
    data = json.loads(cache("keys", f"{scratch.prefix}cli:*", "--json", "--page-size", "100"))
    assert {row["key"] for row in data["keys"]} == {f"{scratch.prefix}cli:{i}" for i in range(5)}


@pytest.mark.django_db
def test_it_refuses_a_large_pattern_without_yes(scratch):
    scratch.load([f"{scratch.prefix}many:{i}" for i in range(1200)])
    with pytest.raises(CommandError, match="--yes"):
        cache("invalidate", "--pattern", f"{scratch.prefix}many:*")
    assert count(scratch.redis, f"{scratch.prefix}many:*") == 1200
    assert not Run.objects.exists()


def test_it_invalidates_a_pattern_with_yes_through_a_run(celery_worker, scratch):
    scratch.load([f"{scratch.prefix}many:{i}" for i in range(1200)] + [f"{scratch.prefix}keep"])
    data = json.loads(
        cache("invalidate", "--pattern", f"{scratch.prefix}many:*", "--yes", "--json")
    )
    assert data["status"] == "succeeded" and data["result"]["deleted"] == 1200
    assert count(scratch.redis, f"{scratch.prefix}many:*") == 0
    assert scratch.redis.exists(f"{scratch.prefix}keep") == 1
    event = AuditEvent.objects.get(action="cache.invalidate_pattern")
    assert event.actor_name.startswith("cli:") and event.params["deleted"] == 1200


@pytest.mark.django_db
def test_it_invalidates_a_key_a_tag_and_a_namespace(scratch):
    ns = scratch.ns()
    c = scratch.cache()
    c.prefix = ""
    c.set(ns, "a", 1, tags=[f"tag{scratch.id}"])
    scratch.load([f"{scratch.prefix}one*"])
    assert json.loads(cache("invalidate", "--key", f"{scratch.prefix}one*", "--json")) == {
        "deleted": 1
    }
    assert json.loads(cache("invalidate", "--tag", f"tag{scratch.id}", "--json"))["deleted"] == 1
    with pytest.raises(CommandError, match="--yes"):
        cache("invalidate", "--namespace", ns)
    assert json.loads(cache("invalidate", "--namespace", ns, "--yes", "--json")) == {
        "old_version": 1,
        "new_version": 2,
    }
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"cache.invalidate_key", "cache.invalidate_tag", "cache.bump_namespace"} <= actions


@pytest.mark.django_db
def test_it_starts_a_warmer_without_waiting(scratch):
    listing = json.loads(cache("warm", "--json"))
    assert {"user_profile", "usage_analysis"} <= {row["name"] for row in listing}
    data = json.loads(cache("warm", "user_profile", "--limit", "3", "--no-wait", "--json"))
    run = Run.objects.get(pk=data["run_id"])
    assert run.params == {"target": "main", "warmer": "user_profile", "limit": 3}


@pytest.mark.django_db
def test_it_reports_bad_input_clearly(down_target):
    with pytest.raises(CommandError, match="Unknown cache target"):
        cache("stats", "--target", "atlantis")
    with pytest.raises(CommandError, match="unreachable"):
        cache("stats", "--target", "down")
    with pytest.raises(CommandError, match="closing"):
        cache("keys", "a[b")
    with pytest.raises(CommandError, match="Unknown warmer"):
        cache("warm", "nope", "--no-wait")
