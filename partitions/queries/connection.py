"""Opening a PostgreSQL warehouse and turning its failures into messages operators read."""

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from . import pg, targets

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


class QueriesError(Exception):
    """A failure with a message meant for the operator (never a 500)."""


class WarehouseUnreachable(QueriesError):
    pass


class ExtensionMissing(QueriesError):
    def __init__(self, extension: str, warehouse: str):
        self.extension = extension
        super().__init__(
            f"The {extension} extension is not enabled in warehouse {warehouse!r}. "
            + HOW_TO_ENABLE[extension]
        )


class CatalogPermissionDenied(QueriesError):
    pass


class ConfirmationMismatch(QueriesError):
    pass


@contextmanager
def open_warehouse(name: str) -> Iterator[psycopg.Connection]:
    """A connection to PostgreSQL warehouse `name`, closed on exit.

    Unknown name, unreachable server and missing catalog privileges become
    QueriesError subclasses with a readable message."""
    try:
        url = targets.postgres_url(name)
    except targets.UnknownWarehouse as exc:
        raise QueriesError(str(exc)) from None
    try:
        conn = pg.open_connection(url)
    except psycopg.OperationalError as exc:
        raise WarehouseUnreachable(
            f"Warehouse {name!r} ({targets.safe_label(url)}) is unreachable: {_reason(exc)}"
        ) from None
    try:
        yield conn
    except psycopg.errors.InsufficientPrivilege as exc:
        raise CatalogPermissionDenied(
            f"Warehouse {name!r} refused the console's role: {exc.diag.message_primary}. "
            "Grant it pg_read_all_stats (statistics and other sessions' queries), "
            "pg_signal_backend (cancel, terminate) or EXECUTE on pg_stat_statements_reset."
        ) from None
    except psycopg.errors.ObjectNotInPrerequisiteState as exc:
        # pg_stat_statements created but not in shared_preload_libraries.
        raise QueriesError(
            f"Warehouse {name!r}: {exc.diag.message_primary}. "
            + HOW_TO_ENABLE["pg_stat_statements"]
        ) from None
    except psycopg.Error as exc:
        if conn.broken:
            raise WarehouseUnreachable(
                f"Lost the connection to warehouse {name!r}: {_reason(exc)}"
            ) from None
        raise QueriesError(f"Warehouse {name!r} answered with an error: {_reason(exc)}") from None
    finally:
        conn.close()


def _reason(exc: Exception) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def require_extension(conn: psycopg.Connection, extension: str, warehouse: str) -> None:
    if extension not in pg.installed_extensions(conn):
        raise ExtensionMissing(extension, warehouse)
