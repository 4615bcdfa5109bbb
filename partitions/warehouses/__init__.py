"""The warehouse layer: what the console knows about the warehouses it operates.

- config: the only reader of the WAREHOUSES setting (URL grammar, name checks).
- postgres, bigquery: the only places a warehouse connection or client is opened.
- errors: the console's own errors (unknown, invalid URL, unreachable, permission
  denied, extension missing).

It imports Django settings and nothing of the console's services or views; the
backends, services, table_sync, readiness, warmers and demo loaders sit above it.
"""

from . import bigquery, postgres
from .config import (
    Reachable,
    Warehouse,
    configured,
    default_postgres,
    get,
    kind_of,
    names,
    of_kind,
    parse,
    postgres_url,
    safe_label,
    url_of,
)
from .errors import (
    ExtensionMissing,
    InvalidWarehouseURL,
    PermissionDenied,
    UnknownWarehouse,
    WarehouseError,
    WarehouseUnreachable,
)

__all__ = [
    "ExtensionMissing",
    "InvalidWarehouseURL",
    "PermissionDenied",
    "Reachable",
    "UnknownWarehouse",
    "Warehouse",
    "WarehouseError",
    "WarehouseUnreachable",
    "configured",
    "default_postgres",
    "get",
    "kind_of",
    "names",
    "of_kind",
    "parse",
    "ping",
    "postgres_url",
    "safe_label",
    "url_of",
]


def ping(url: str) -> Reachable:
    """What /readyz calls for a warehouse: what it answered, or an exception."""
    if kind_of(url) == "postgres":
        return postgres.ping(url)
    return bigquery.ping(url)
