"""The key browser: SCAN paging, safe previews, delete and TTL changes, faults."""

import json
from collections import defaultdict
from uuid import uuid4

import pytest

from cachemgr import targets
from cachemgr.services import keys
from opsconsole.models import AuditEvent

RK: defaultdict = defaultdict(lambda: uuid4().hex)


def _detail(client, key: bytes, target="main"):
    return client.get("/cache/keys/inspect/", {"target": target, "key": key.hex()})


@pytest.mark.django_db
def test_it_pages_through_keys_with_the_scan_cursor(client_as, scratch):
    scratch.load([f"{scratch.prefix}page:{i}" for i in range(300)])
    client = client_as("viewer")
    seen, cursor = set(), 0
    for _ in range(100):
        response = client.get(
            "/cache/keys/",
            {"target": "main", "pattern": f"{scratch.prefix}page:*", "cursor": cursor},
        )
        assert response.status_code == 200
        page = response.context["page"]
        seen |= {row["key"] for row in page["keys"]}
        if page["done"]:
            break
        cursor = page["cursor"]
    assert len(seen) == 300


@pytest.mark.django_db
def test_it_serves_the_rows_partial_to_htmx(client_as, scratch):
    scratch.load([f"{scratch.prefix}h:1"])
    response = client_as("viewer").get(
        "/cache/keys/",
        {"target": "main", "pattern": f"{scratch.prefix}h:*"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert b"<html" not in response.content
    assert f"{scratch.prefix}h:1".encode() in response.content


@pytest.mark.django_db
def test_it_previews_each_type_and_binary_values_safely(client_as, scratch):
    p, r = scratch.prefix, scratch.redis
    r.hset(f"{p}hash", mapping={f"f{i}": i for i in range(150)})
    r.rpush(f"{p}list", *range(5))
    r.sadd(f"{p}set", "a", "b")
    r.zadd(f"{p}zset", {"x": 1.5})
    r.set(f"{p}json", json.dumps({"b": [1, 2], "a": "é"}))
    r.set(f"{p}bin", bytes(range(256)))
    r.set(f"{p}huge", "é" * 1_000_000)
    r.set(p.encode() + b"\xff\xfe", "not utf-8 key")
    client = client_as("viewer")
    hash_page = _detail(client, f"{p}hash".encode()).context["detail"]
    assert hash_page["type"] == "hash" and hash_page["length"] == 150
    assert len(hash_page["rows"]) == 100
    assert _detail(client, f"{p}list".encode()).context["detail"]["rows"][0] == ("0", "0")
    assert len(_detail(client, f"{p}set".encode()).context["detail"]["rows"]) == 2
    assert _detail(client, f"{p}zset".encode()).context["detail"]["rows"] == [("1.5", "x")]
    as_json = _detail(client, f"{p}json".encode()).context["detail"]
    assert as_json["format"] == "json" and '"a": "é"' in as_json["text"]
    binary = _detail(client, f"{p}bin".encode())
    assert binary.context["detail"]["format"] == "binary"
    assert "00000000  00 01 02" in binary.content.decode()
    huge = _detail(client, f"{p}huge".encode()).context["detail"]
    assert huge["truncated"] and len(huge["text"].encode()) <= keys.PREVIEW_BYTES
    odd = _detail(client, p.encode() + b"\xff\xfe")
    assert odd.status_code == 200
    assert odd.context["detail"]["key"] == f"{p}\\xff\\xfe"


@pytest.mark.django_db
def test_it_handles_a_key_that_expired_between_scan_and_read(client_as, scratch):
    response = _detail(client_as("viewer"), f"{scratch.prefix}gone".encode())
    assert response.status_code == 200
    assert response.context["detail"]["exists"] is False
    assert "does not exist" in response.content.decode()
    rows = keys.describe(scratch.redis, [f"{scratch.prefix}gone".encode()])
    assert rows[0]["gone"] and rows[0]["ttl"] == "expired"


@pytest.mark.django_db
def test_it_deletes_a_key_as_an_operator_and_audits_it(client_as, scratch):
    key = f"{scratch.prefix}del[*]".encode()
    scratch.redis.set(key, 1)
    scratch.redis.set(f"{scratch.prefix}delX", 1)
    client = client_as("operator")
    response = client.post(
        "/cache/keys/delete/", {"target": "main", "key": key.hex(), "request_key": RK["r1"]}
    )
    assert response.status_code == 302
    assert scratch.redis.exists(key) == 0
    assert scratch.redis.exists(f"{scratch.prefix}delX") == 1
    event = AuditEvent.objects.get(action="cache.delete_key")
    assert event.params["deleted"] == 1 and event.actor == client.user


@pytest.mark.django_db
def test_it_sets_and_clears_a_ttl(client_as, scratch):
    key = f"{scratch.prefix}ttl".encode()
    scratch.redis.set(key, 1)
    client = client_as("operator")
    client.post(
        "/cache/keys/ttl/",
        {"target": "main", "key": key.hex(), "seconds": 600, "request_key": RK["a"]},
    )
    assert 590 <= scratch.redis.ttl(key) <= 600
    client.post(
        "/cache/keys/ttl/",
        {"target": "main", "key": key.hex(), "seconds": "", "request_key": RK["b"]},
    )
    assert scratch.redis.ttl(key) == -1
    events = AuditEvent.objects.filter(action="cache.set_ttl").order_by("id")
    assert [e.params["ttl_seconds"] for e in events] == [600, None]
    assert events[1].params["previous_ttl_ms"] > 0


@pytest.mark.django_db
def test_it_rejects_a_bad_key_reference_and_a_bad_pattern(client_as):
    client = client_as("operator")
    assert client.get("/cache/keys/inspect/", {"target": "main", "key": "zz"}).status_code == 400
    response = client.get("/cache/keys/", {"target": "main", "pattern": "a[b"})
    assert response.status_code == 400
    assert "closing" in response.content.decode()
    response = client.post("/cache/keys/delete/", {"target": "main", "key": "zz"}, follow=True)
    assert "not valid hex" in response.content.decode()


@pytest.mark.django_db
def test_it_says_so_when_redis_is_down_or_the_target_is_unknown(client_as, down_target):
    client = client_as("viewer")
    for path in ["/cache/", "/cache/keys/", "/cache/warm/"]:
        response = client.get(path, {"target": "down"})
        assert response.status_code == 200, path
        assert "unreachable" in response.content.decode(), path
    response = client.get("/cache/keys/inspect/", {"target": "down", "key": "61"})
    assert "unreachable" in response.content.decode()
    response = client.get("/cache/keys/", {"target": "atlantis"})
    assert response.status_code == 400  # a form error on the target field
    assert "Unknown cache target" in response.content.decode()
    response = client.get("/cache/", {"target": "atlantis"})
    assert response.status_code == 404
    assert "Unknown cache target" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("size", [50, 100, 500])
def test_it_shows_the_page_size_asked_for_and_counts_what_was_listed(client_as, scratch, size):
    scratch.load([f"{scratch.prefix}size:{i}" for i in range(1200)])
    response = client_as("viewer").get(
        "/cache/keys/",
        {"target": "main", "pattern": f"{scratch.prefix}size:*", "page_size": size, "listed": 7},
    )
    page = response.context["page"]
    assert size <= len(page["keys"]) < size + 1000  # SCAN returns whole COUNT steps
    assert page["listed_so_far"] == 7 + len(page["keys"])
    content = response.content.decode()
    assert content.count("Next page →") == 2  # above and below the table
    assert f"page_size={size}&cursor={page['cursor']}&listed={page['listed_so_far']}" in content


@pytest.mark.django_db
def test_it_refuses_a_page_size_it_does_not_offer(client_as):
    response = client_as("viewer").get("/cache/keys/", {"target": "main", "page_size": 7})
    assert response.status_code == 400
    assert b"Show 50, 100 or 500 keys per page." in response.content


@pytest.mark.django_db
def test_the_cluster_key_browser_names_each_keys_node(client_as, cluster, cluster_servers):
    targets.connect(cluster).mset_nonatomic({f"n:{i}": i for i in range(60)})
    response = client_as("viewer").get("/cache/keys/", {"target": cluster, "page_size": 100})
    rows = response.context["page"]["keys"]
    assert {row["node"] for row in rows} == {n.address for n in cluster_servers.nodes}
    assert b"3 primaries, one cursor" in response.content
