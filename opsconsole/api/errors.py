"""Refusals as JSON with the status a client can act on; never a 500 for bad input.

400  invalid input or a missing/wrong typed confirmation (`confirm`)
401  no token, or an unknown, expired or revoked one
403  the token's role is too low
404  no such run, job, target, warehouse, migration or runbook
409  the action conflicts with what is running (an exclusive job already runs)
429  the token's rate limit (Retry-After says when to come back)
503  the cache target or warehouse does not answer
"""

from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import ValidationError

from cachemgr import registry as warmers
from cachemgr import targets
from cachemgr.services import invalidation
from jobs import registry, runner
from opsconsole.confirmation import ConfirmationMismatch
from opsconsole.runbooks.services import RunbookRefused
from opsconsole.tokens.services import TokenRefused
from partitions.backends.base import PlanRefused
from partitions.services import MigrationRefused
from partitions.warehouses import UnknownWarehouse, WarehouseError, WarehouseUnreachable

from .auth import Forbidden

BY_STATUS = {
    401: (TokenRefused,),
    403: (Forbidden,),
    404: (
        Http404,
        ObjectDoesNotExist,
        registry.UnknownJob,
        targets.UnknownTarget,
        warmers.UnknownWarmer,
        UnknownWarehouse,
    ),
    503: (targets.TargetUnavailable, WarehouseUnreachable),
    400: (
        ConfirmationMismatch,
        MigrationRefused,
        PlanRefused,
        RunbookRefused,
        invalidation.BadPattern,
        WarehouseError,
    ),
}


def install(api: NinjaAPI) -> None:
    """Register the handlers on `api` (most specific classes first, as ninja looks them
    up along each exception's MRO)."""
    for status, classes in BY_STATUS.items():
        for cls in classes:
            api.add_exception_handler(cls, _answer(api, lambda exc, s=status: (s, _detail(exc))))
    api.add_exception_handler(runner.LaunchRefused, _answer(api, _launch_refused))
    api.add_exception_handler(invalidation.ConfirmationNeeded, _answer(api, _confirmation_needed))
    api.add_exception_handler(ValidationError, _answer(api, _invalid))


def _answer(api: NinjaAPI, describe):
    """A handler answering `describe(exc)` = (status, body) as JSON."""

    def handler(request, exc):
        status, body = describe(exc)
        return api.create_response(request, body, status=status)

    return handler


def _detail(exc: Exception) -> dict:
    if isinstance(exc, Http404 | ObjectDoesNotExist):
        return {"detail": "Not found."}
    return {"detail": str(exc)}


def _launch_refused(exc: runner.LaunchRefused):
    """409 when something already runs (the body names the run), else 400."""
    if exc.run is None:
        return 400, {"detail": str(exc)}
    return 409, {"detail": str(exc), "run_id": exc.run.pk}


def _confirmation_needed(exc: invalidation.ConfirmationNeeded):
    body = {"detail": " ".join(exc.errors), "errors": exc.errors, "preview": exc.preview.as_dict()}
    return 400, body


def _invalid(exc: ValidationError):
    errors = [
        f"{'.'.join(str(p) for p in e.get('loc', [])[1:]) or 'body'}: {e.get('msg', '')}"
        for e in exc.errors
    ]
    return 400, {"detail": "Invalid input.", "errors": errors}
