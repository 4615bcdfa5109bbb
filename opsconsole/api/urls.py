"""The API's one NinjaAPI: token auth and the per-token rate limit on every operation;
the schema (/api/openapi.json) and the docs page (/api/docs, Swagger UI served from
ninja's own static files, no CDN) for logged-in console users (viewer)."""

from django.urls import URLPattern
from ninja import NinjaAPI

from opsconsole.roles import role_required

from . import actions, errors, reads
from .auth import PerTokenRate, TokenAuth

api = NinjaAPI(
    title="OpsConsole API",
    version="1",
    description=(
        "Send `Authorization: Bearer <token>` (create one at /tokens/). The token acts as "
        "its owner, never wider than its scope. Actions take the same typed confirmation "
        "as the pages, as `confirm`."
    ),
    auth=TokenAuth(),
    throttle=[PerTokenRate()],
    docs_decorator=role_required("viewer"),
    urls_namespace="api",
)
errors.install(api)
# Actions first: POST /migrations/plan must not be taken for GET /migrations/{id}.
api.add_router("/", actions.router)
api.add_router("/", reads.router)


def _token_guarded(patterns):
    """Operations answer 401 themselves without a token: the login redirect of
    LoginRequiredMiddleware is for pages, so it is turned off for them (not for the
    schema and docs, which keep the console's login and role guard)."""
    for pattern in patterns:
        if isinstance(pattern, URLPattern) and not hasattr(pattern.callback, "required_role"):
            pattern.callback.login_required = False
            pattern.callback.token_guarded = True
    return patterns


app_name = "api"
urlpatterns = _token_guarded(api.urls[0])
