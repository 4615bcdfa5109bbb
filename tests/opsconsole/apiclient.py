"""A test client that speaks to /api/ with a real token (issued by the real service)."""

import json

import pytest
from django.test import Client

from opsconsole.tokens import services as tokens


class ApiClient:
    def __init__(self, user, secret: str):
        self.user, self.secret = user, secret
        self.client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")

    def get(self, path: str, **params):
        return self.client.get(f"/api{path}", params)

    def post(self, path: str, body: dict | None = None):
        return self.client.post(
            f"/api{path}", json.dumps(body or {}), content_type="application/json"
        )


@pytest.fixture
def api_as(make_user):
    """api_as("operator") -> a client with a token of an operator (scope = role unless given)."""

    def make(role: str, scope: str | None = None) -> ApiClient:
        user = make_user(role)
        issued = tokens.create_token(user, user, "tests", scope or role, 1)
        return ApiClient(user, issued.secret)

    return make
