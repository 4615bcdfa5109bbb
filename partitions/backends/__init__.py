"""Warehouse backends: one package per warehouse kind behind base.Backend.

Backends sit on the warehouse layer (partitions.warehouses: configuration,
connections, errors) and below the services; they import nothing above them.
"""

from partitions import warehouses

from .base import Backend
from .bigquery import BigQueryBackend
from .postgres import PostgresBackend


def for_url(url: str) -> Backend:
    """The backend for a warehouse URL; InvalidWarehouseURL for one the console cannot use."""
    warehouse = warehouses.parse(url)
    if warehouse.kind == "postgres":
        return PostgresBackend(url)
    return BigQueryBackend(warehouse)


def for_warehouse(name: str) -> Backend:
    """The backend of warehouse `name`; UnknownWarehouse if WAREHOUSES has none."""
    return for_url(warehouses.url_of(name))
