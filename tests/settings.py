"""Test settings: the same settings, pointed at services reserved for tests,
so a running demo worker never consumes a test's tasks."""

import os

os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("CACHE_TARGETS", "main=redis://127.0.0.1:6379/14")
os.environ.setdefault("WAREHOUSES", "main=postgres://postgres@127.0.0.1:5432/opsconsole_test_wh")

from opsconsole.settings import *  # noqa: E402,F403
from opsconsole.settings import DATABASES  # noqa: E402

DATABASES["default"]["CONN_MAX_AGE"] = 0
DATABASES["default"]["TEST"] = {"NAME": "test_opsconsole_console"}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
