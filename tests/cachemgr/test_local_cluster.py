"""`manage.py cache local-cluster`: a real cluster for the demo, gone after Ctrl-C."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from cachemgr import addresses

ROOT = Path(__file__).resolve().parents[2]


def test_it_starts_a_cluster_prints_its_target_and_stops_on_ctrl_c():
    process = subprocess.Popen(
        [sys.executable, "manage.py", "cache", "local-cluster"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("cluster=redis-cluster://127.0.0.1:")
        where = addresses.parse(line.removeprefix("cluster="))
        client = addresses.client_for(where)
        assert isinstance(client, RedisCluster) and len(client.get_primaries()) == 3
        client.set("demo-key", 1)
        client.close()
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    host, port = where.hosts[0]
    with pytest.raises(redis.ConnectionError):
        redis.Redis(host=host, port=port, socket_connect_timeout=0.5).ping()
