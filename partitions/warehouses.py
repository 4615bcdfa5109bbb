"""Warehouses configured in settings.WAREHOUSES, by URL scheme."""

from urllib.parse import urlsplit


def ping(url: str) -> str:
    scheme = urlsplit(url).scheme
    raise ValueError(f"unsupported warehouse scheme {scheme!r} (use postgres:// or bigquery://)")
