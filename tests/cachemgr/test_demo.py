"""The demo seed loads keys of every shape into each cache target."""

from cachemgr import demo
from cachemgr.client import Cache
from cachemgr.services import keys


def test_it_seeds_each_target_with_every_kind_of_key(own_redis, settings):
    settings.CACHE_TARGETS = {"own": own_redis.url}
    summary = demo.seed()
    client = own_redis.client
    assert summary["own"]["keys_written"] == client.dbsize() - _meta_keys(client)
    assert Cache(client=client).get("plan_catalog", "team") == {"id": 3, "price_cents": 4900}
    kinds = {keys.show(k): client.type(k).decode() for k in [b"demo:hash", b"demo:zset"]}
    assert kinds == {"demo:hash": "hash", "demo:zset": "zset"}
    assert client.exists(b"demo:\xff\xfe-not-utf8") and client.exists("demo:weird[1]*?\\key")
    assert client.strlen("demo:huge") == 1_000_000


def _meta_keys(client) -> int:
    return len(set(client.scan_iter(match="__cachemgr__:*", count=1000)))
