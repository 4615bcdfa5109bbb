"""The warehouses this module looks at: settings.WAREHOUSES split by scheme."""

from urllib.parse import urlsplit

from django.conf import settings

POSTGRES_SCHEMES = ("postgres", "postgresql")


class UnknownWarehouse(LookupError):
    pass


def _by_scheme(schemes: tuple[str, ...]) -> dict[str, str]:
    warehouses = getattr(settings, "WAREHOUSES", {}) or {}
    return {name: url for name, url in warehouses.items() if urlsplit(url).scheme in schemes}


def postgres_warehouses() -> dict[str, str]:
    return _by_scheme(POSTGRES_SCHEMES)


def bigquery_warehouses() -> dict[str, str]:
    return _by_scheme(("bigquery",))


def postgres_url(name: str) -> str:
    """The URL of PostgreSQL warehouse `name`; UnknownWarehouse if there is none."""
    try:
        return postgres_warehouses()[name]
    except KeyError:
        known = ", ".join(postgres_warehouses()) or "none configured"
        raise UnknownWarehouse(f"No PostgreSQL warehouse named {name!r} ({known}).") from None


def default_postgres() -> str | None:
    return next(iter(postgres_warehouses()), None)


def safe_label(url: str) -> str:
    """host:port/db without credentials, for pages and logs."""
    parts = urlsplit(url)
    return f"{parts.hostname or ''}:{parts.port or 5432}{parts.path}"
