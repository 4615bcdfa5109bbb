import uuid

import pytest

from cachemgr import registry as warmers
from cachemgr.targets import connect
from tests.oidc_provider.fixtures import oidc_provider  # noqa: F401  (fixture)
from tests.opsconsole.apiclient import api_as  # noqa: F401  (fixture: a client with a token)
from tests.opsconsole.receivers import http_receiver, smtp_server  # noqa: F401  (fixtures)


@pytest.fixture
def test_warmer():
    """A warmer with its own namespace, writing 50 keys."""
    namespace = f"rb{uuid.uuid4().hex[:8]}"

    def rows(limit):
        for i in range(limit or 50):
            yield f"k{i}", {"value": i}

    warmers.warmer(namespace, name=namespace)(rows)
    yield namespace
    warmers.WARMERS.pop(namespace, None)
    client = connect("main")
    for key in client.scan_iter(match=f"*{namespace}*", count=1000):
        client.unlink(key)
