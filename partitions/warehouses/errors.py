"""The console's own warehouse errors, defined once.

Each carries a message meant for the operator: pages and commands show it as is,
never as a 500 or a traceback.
"""

HOW_TO_ENABLE = {
    "pg_stat_statements": (
        "Add pg_stat_statements to shared_preload_libraries in postgresql.conf, restart "
        "PostgreSQL, then run CREATE EXTENSION pg_stat_statements; in this database."
    ),
    "hypopg": (
        "Install the hypopg package (Debian: apt-get install postgresql-15-hypopg), then run "
        "CREATE EXTENSION hypopg; in this database."
    ),
}


class WarehouseError(Exception):
    """A warehouse failure whose message the operator reads."""


class UnknownWarehouse(WarehouseError, LookupError):
    """No warehouse of that name (or of that kind) in the WAREHOUSES setting."""


class InvalidWarehouseURL(WarehouseError, ValueError):
    """A WAREHOUSES URL the console cannot use (scheme, project, dataset, location)."""


class WarehouseUnreachable(WarehouseError):
    """The server (or the BigQuery endpoint) did not answer, or the session was lost."""


class PermissionDenied(WarehouseError):
    """The warehouse refused the console's role a catalog read or an action."""


class ExtensionMissing(WarehouseError):
    """pg_stat_statements or hypopg is not usable in the warehouse's database."""

    def __init__(self, extension: str, warehouse: str, detail: str = ""):
        self.extension = extension
        if detail:  # what PostgreSQL said (created, but not preloaded)
            said = f"Warehouse {warehouse!r}: {detail}. "
        else:
            said = f"The {extension} extension is not enabled in warehouse {warehouse!r}. "
        super().__init__(said + HOW_TO_ENABLE[extension])
