"""Exact keyspace analysis on real servers: one node, a cluster, a Sentinel service."""

import pytest
from django.core.management import call_command

from cachemgr import targets
from cachemgr.models import KeyspaceAnalysis
from cachemgr.services import analysis
from jobs.models import Run

from .conftest import wait_for

pytestmark = pytest.mark.django_db


def _fill(client) -> None:
    """120 profile keys with a 1-day TTL (3 of them without), 50 session hashes with a
    10-minute TTL, 30 queue lists without one, one big string, and two keys with no
    namespace."""
    pipe = client.pipeline(transaction=False)
    for i in range(120):
        pipe.set(f"profile:v1:{i}", "x" * 20, ex=None if i < 3 else 20 * 3600)
    for i in range(50):
        pipe.hset(f"session:{i}", mapping={"a": 1, "b": 2})
        pipe.expire(f"session:{i}", 600)
    for i in range(30):
        pipe.rpush(f"queue:{i}", 1, 2, 3)
    pipe.set("profile:v1:huge", "y" * 200_000, ex=3 * 86400)
    pipe.set("plain", 1)
    pipe.set("other", 2)
    pipe.execute()


def _check(row: KeyspaceAnalysis) -> None:
    assert row.status == "complete" and row.keys == 203
    profile = row.namespaces["profile"]
    assert profile["keys"] == 121
    assert profile["ttl"] == {"no TTL": 3, "< 1 h": 0, "< 1 d": 117, "longer": 1}
    assert profile["types"] == {"string": 121}
    assert row.namespaces["session"]["ttl"]["< 1 h"] == 50
    assert row.namespaces["session"]["types"] == {"hash": 50}
    assert row.namespaces["queue"]["ttl"]["no TTL"] == 30
    assert row.namespaces["(no namespace)"]["keys"] == 2
    assert row.types == {"string": 123, "hash": 50, "list": 30}
    assert row.no_ttl == 3 + 30 + 2
    assert row.biggest[0]["key"] == "profile:v1:huge" and row.biggest[0]["size"] > 200_000
    assert len(row.biggest) == analysis.BIGGEST
    assert row.memory == sum(ns["memory"] for ns in row.namespaces.values())


def test_it_counts_every_key_of_one_node(own_redis):
    _fill(own_redis.client)
    _check(analysis.analyze("own", count=7))


def test_it_counts_every_key_of_every_primary(shape):
    _fill(targets.connect(shape))
    row = analysis.analyze(shape, count=7)
    _check(row)
    assert set(row.progress) == {node.name for node in targets.primaries(shape)}


def test_it_pipelines_where_scripting_is_refused(own_redis):
    _fill(own_redis.client)
    own_redis.client.execute_command("ACL", "SETUSER", "default", "-@scripting")
    _check(analysis.analyze("own", count=7))


class Stop(Exception):
    pass


def test_a_stopped_analysis_resumes_from_its_cursors(own_redis, monkeypatch):
    _fill(own_redis.client)
    monkeypatch.setattr(analysis, "CHECKPOINT_EVERY_S", 0)
    first = Run.objects.create(kind="cache", name=analysis.JOB_NAME, params={"target": "own"})

    def cancel_at_the_first_checkpoint(row, total):
        raise Stop

    with pytest.raises(Stop):
        analysis.analyze("own", run=first, progress=cancel_at_the_first_checkpoint, count=7)
    stopped = KeyspaceAnalysis.objects.get()
    assert stopped.status == "stopped" and 0 < stopped.keys < 203
    assert stopped.progress[next(iter(stopped.progress))]["cursor"] != "0"
    again = Run.objects.create(
        kind="cache", name=analysis.JOB_NAME, params={"target": "own"}, retry_of=first
    )
    row = analysis.analyze("own", run=again, count=7)
    assert row.pk == stopped.pk
    _check(row)


def test_growth_is_shown_against_the_previous_analysis(own_redis):
    _fill(own_redis.client)
    analysis.analyze("own")
    own_redis.client.mset({f"profile:v1:new{i}": 1 for i in range(10)})
    rows = {r["namespace"]: r for r in analysis.namespace_rows(analysis.analyze("own"))}
    assert rows["profile"]["keys_growth"] == 10 and rows["session"]["keys_growth"] == 0
    assert rows["profile"]["bar"] == 100.0


def test_the_cli_runs_it_as_a_job_and_prints_json(celery_worker, own_redis, capsys):
    _fill(own_redis.client)
    call_command("cache", "analyze", "--target", "own", "--json")
    out = capsys.readouterr().out
    assert '"keys": 203' in out
    run = wait_for(Run.objects.get(name=analysis.JOB_NAME))
    assert run.status == "succeeded"
    assert KeyspaceAnalysis.objects.get(run=run).keys == 203
