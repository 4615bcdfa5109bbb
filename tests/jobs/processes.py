"""Real processes for fault tests: a Redis broker of the test's own (restartable,
without persistence) and `celery worker` subprocesses consuming it.

The shared Redis on 6379 is never restarted or flushed: other test processes use it.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server on a free port with no persistence: a restart loses every key."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        """Kill and start again: like a crash of a Redis that keeps nothing on disk."""
        self.stop()
        self.start()


def console_database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    return f"postgres://{db['USER'] or 'postgres'}@{host}:{port}/{db['NAME']}"


def start_worker(broker_url: str, name: str) -> subprocess.Popen:
    """A prefork `celery worker` (its own process group) named `name`@host, with this
    test process's queue and key prefix on `broker_url`, and the test jobs loaded."""
    run_id = settings.CELERY_TASK_DEFAULT_QUEUE.removeprefix("tests-")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "OPSCONSOLE_TEST_RUN_ID": run_id,
        "CELERY_BROKER_URL": broker_url,
        "DATABASE_URL": console_database_url(),
        "WAREHOUSES": ",".join(f"{k}={v}" for k, v in settings.WAREHOUSES.items()),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "opsconsole", "worker"]
        + ["--pool", "prefork", "--concurrency", "1", "-n", f"{name}@%h"]
        + ["--include", "tests.jobs.testjobs", "--without-gossip", "--without-mingle"]
        + ["--loglevel", os.environ.get("OPSCONSOLE_TEST_WORKER_LOGLEVEL", "WARNING")],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=open(os.environ.get("OPSCONSOLE_TEST_WORKER_LOG", os.devnull), "ab"),  # noqa: SIM115
    )


def kill_worker(proc: subprocess.Popen) -> None:
    """SIGKILL the whole worker (main process and its pool children)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
