"""Latency and memory advice, and the analysis and advice pages, on real servers."""

import pytest
import redis
from django.core.management import call_command

from cachemgr.models import KeyspaceAnalysis
from cachemgr.services import advice, analysis
from jobs.models import Run

pytestmark = pytest.mark.django_db


def test_it_finds_missing_ttls_big_keys_and_refused_writes(own_redis, settings):
    settings.CACHE_BIG_KEY_BYTES = 50_000
    client = own_redis.client
    client.set("profile:1", "x", ex=3600)
    client.set("profile:2", "x")  # no TTL where the namespace has them
    client.set("blob:1", "y" * 100_000, ex=60)
    analysis.analyze("own")
    client.config_set("latency-monitor-threshold", 1)
    client.eval("local i = 0 while i < 5000000 do i = i + 1 end return i", 0)  # a slow command
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", client.info()["used_memory"] + 100_000)
    with pytest.raises(redis.ResponseError, match="maxmemory"):
        for i in range(1000):
            client.set(f"fill:{i}", "z" * 10_000)
    found = advice.advice("own")
    text = " ".join(f["finding"] for f in found["findings"])
    assert "1 of 2 keys of profile have no TTL" in text
    assert "blob:1 (string) uses" in text
    assert "under noeviction: it refuses writes" in text
    node = found["nodes"][0]
    assert node["oom_refusals"] >= 1
    assert any(event["event"] == "command" for event in node["latency"])
    assert node["memory_doctor"]
    assert node["latency_doctor"]


def test_the_advice_page_shows_each_node(client_as, cluster, cluster_servers):
    response = client_as("viewer").get("/cache/advice/", {"target": cluster})
    assert response.status_code == 200
    for node in cluster_servers.nodes:
        assert node.address.encode() in response.content
    assert b"MEMORY DOCTOR" in response.content and b"cluster with 3 primaries" in response.content


def test_the_analysis_page_shows_bars_growth_and_history(client_as, own_redis):
    own_redis.client.mset({f"a:{i}": i for i in range(30)} | {"b:1": "x" * 5000})
    analysis.analyze("own")
    own_redis.client.set("a:new", 1)
    analysis.analyze("own")
    response = client_as("viewer").get("/cache/analysis/", {"target": "own"})
    assert response.status_code == 200
    rows = {row["namespace"]: row for row in response.context["namespaces"]}
    assert rows["a"]["keys"] == 31 and rows["a"]["keys_growth"] == 1
    assert rows["b"]["bar"] == 100.0
    assert len(response.context["history"]) == 2
    assert b'class="bar"' in response.content


def test_an_operator_starts_and_resumes_an_analysis_from_the_page(client_as, own_redis):
    own_redis.client.set("k", 1)
    client = client_as("operator")
    response = client.post("/cache/analysis/start/", {"target": "own"})
    run = Run.objects.get(name=analysis.JOB_NAME)
    assert response.status_code == 302 and response["Location"].endswith(f"/{run.pk}/")
    Run.objects.filter(pk=run.pk).update(status="cancelled")
    stopped = KeyspaceAnalysis.objects.create(
        target="own", run=run, status="stopped", started_at=run.created_at
    )
    client.post("/cache/analysis/start/", {"target": "own", "resume": stopped.pk})
    assert Run.objects.filter(retry_of=run).count() == 1


def test_a_viewer_may_not_start_an_analysis(client_as, own_redis):
    response = client_as("viewer").post("/cache/analysis/start/", {"target": "own"})
    assert response.status_code == 403
    assert not Run.objects.exists()


def test_the_cli_prints_advice_as_json(own_redis, capsys):
    call_command("cache", "advice", "--target", "own", "--json")
    assert '"memory_doctor"' in capsys.readouterr().out
