"""Warehouses configured in settings.WAREHOUSES, by URL scheme.

main=postgres://user@host:5432/db
analytics=bigquery://project/dataset            (Google credentials from the environment)
local=bigquery://project/dataset?endpoint=http://127.0.0.1:9050   (emulator, anonymous)
"""

from urllib.parse import parse_qs, urlsplit

from django.conf import settings

from .backends.base import Backend

POSTGRES_SCHEMES = ("postgres", "postgresql")


class UnknownWarehouse(LookupError):
    pass


def url_of(name: str) -> str:
    try:
        return settings.WAREHOUSES[name]
    except KeyError:
        raise UnknownWarehouse(f"no warehouse named {name!r} (WAREHOUSES setting)") from None


def names() -> list[str]:
    return list(settings.WAREHOUSES)


def kind_of(url: str) -> str:
    scheme = urlsplit(url).scheme
    if scheme in POSTGRES_SCHEMES:
        return "postgres"
    if scheme == "bigquery":
        return "bigquery"
    raise ValueError(f"unsupported warehouse scheme {scheme!r} (use postgres:// or bigquery://)")


def bigquery_target(url: str) -> tuple[str, str, str | None]:
    """(project, dataset, endpoint or None) from bigquery://project/dataset[?endpoint=…]."""
    parts = urlsplit(url)
    dataset = parts.path.strip("/")
    if not parts.netloc or not dataset:
        raise ValueError("a BigQuery warehouse URL is bigquery://project/dataset")
    endpoint = parse_qs(parts.query).get("endpoint", [None])[0]
    return parts.netloc, dataset, endpoint


def backend_for_url(url: str) -> Backend:
    kind = kind_of(url)
    if kind == "postgres":
        from .backends.postgres import PostgresBackend

        return PostgresBackend(url)
    from .backends.bigquery import BigQueryBackend

    project, dataset, endpoint = bigquery_target(url)
    return BigQueryBackend(project, dataset, endpoint)


def backend(name: str) -> Backend:
    return backend_for_url(url_of(name))


def ping(url: str) -> str:
    """What /readyz calls for a warehouse: a one-line description, or an exception."""
    target = backend_for_url(url)
    try:
        return target.ping()
    finally:
        target.close()
