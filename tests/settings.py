"""Test settings: the same settings, pointed at services reserved for tests,
so a running demo worker never consumes a test's tasks."""

import os
import uuid

os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("CACHE_TARGETS", "main=redis://127.0.0.1:6379/14")
os.environ.setdefault("WAREHOUSES", "main=postgres://postgres@127.0.0.1:5432/opsconsole_test_wh")

from opsconsole.settings import *  # noqa: E402,F403
from opsconsole.settings import DATABASES  # noqa: E402

DATABASES["default"]["CONN_MAX_AGE"] = 0
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Concurrent test processes share one Redis: each gets its own queue and key prefix.
_RUN_ID = uuid.uuid4().hex[:8]
CELERY_TASK_DEFAULT_QUEUE = f"tests-{_RUN_ID}"
KEY_PREFIX = f"opsconsole-test-{_RUN_ID}:"
