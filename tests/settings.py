"""Test settings: the same settings, pointed at services reserved for tests.

Several test processes may run at once on one machine (developers, CI): each
gets its own Celery queue, Redis key prefix and SQLite file, so a running demo
worker or another test process never touches this one's tasks or data.
"""

import os
import tempfile
import uuid

# Two test processes side by side (two checkouts) each name their own warehouse database.
TEST_WAREHOUSE_DB = os.environ.get("OPSCONSOLE_TEST_WAREHOUSE_DB", "opsconsole_test_wh")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("CACHE_TARGETS", "main=redis://127.0.0.1:6379/14")
os.environ.setdefault("WAREHOUSES", f"main=postgres://postgres@127.0.0.1:5432/{TEST_WAREHOUSE_DB}")

from opsconsole.settings import *  # noqa: E402,F403
from opsconsole.settings import DATABASES  # noqa: E402

# A worker subprocess started by a test passes its own id to get its own queue.
_RUN_ID = os.environ.get("OPSCONSOLE_TEST_RUN_ID") or uuid.uuid4().hex[:8]
CELERY_TASK_DEFAULT_QUEUE = f"tests-{_RUN_ID}"
KEY_PREFIX = f"opsconsole-test-{_RUN_ID}:"

DATABASES["default"]["CONN_MAX_AGE"] = 0
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not shared-cache memory: the in-thread Celery worker writes from
    # other threads, and shared-cache SQLite answers them "table is locked".
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"opsconsole-test-{_RUN_ID}.sqlite3")
    }
# Short heartbeats so that tests see a dead worker's run go stale in seconds.
RUN_HEARTBEAT_S = 0.5
RUN_LOST_AFTER_S = 3.0
WORKER_SNAPSHOT_S = 0.5
# Snapshots are taken by the tests that look at them, not by every worker a test starts.
SNAPSHOTS_ON_WORKER_START = False
# Pages read afresh: a test changes something and looks at once.
SHARED_READ_S = 0.0
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
