"""PostgreSQL warehouse connections: the only place the console opens one.

Two shapes:
- connect(): a plain connection of its own, for work that needs its own session
  (a migration run, a table sync, an index build, hypopg's per-session indexes).
- open_warehouse(): a pooled connection for the short reads of the Queries pages;
  the pool (psycopg_pool) saves a connection setup per page. Each connection is
  reset with DISCARD ALL when it goes back, so no setting or role leaks to the next.
Failures become the console's own errors (errors.py) with a readable reason.
"""

import atexit
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.core.signals import setting_changed
from psycopg.rows import dict_row, tuple_row
from psycopg_pool import ConnectionPool, PoolTimeout

from . import config
from .errors import ExtensionMissing, PermissionDenied, WarehouseError, WarehouseUnreachable

CONNECT_TIMEOUT_S = 5
POOL_MAX_SIZE = 4
POOL_MAX_IDLE_S = 300
APPLICATION_NAME = "opsconsole"

_pools: dict[str, ConnectionPool] = {}
_pools_lock = threading.Lock()


def connect(
    url: str,
    *,
    purpose: str = "",
    autocommit: bool = True,
    dict_rows: bool = False,
    utc: bool = False,
    connect_timeout: int = CONNECT_TIMEOUT_S,
) -> psycopg.Connection:
    """A connection of its own to the PostgreSQL warehouse at `url`; the caller closes it.

    `purpose` names it in pg_stat_activity (opsconsole-<purpose>); `utc` pins the
    session time zone. WarehouseUnreachable when the server does not answer."""
    warehouse = config.parse(url)
    try:
        return psycopg.connect(
            warehouse.conninfo,
            autocommit=autocommit,
            connect_timeout=connect_timeout,
            application_name=application_name(purpose),
            row_factory=dict_row if dict_rows else tuple_row,
            **({"options": "-c TimeZone=UTC"} if utc else {}),
        )
    except psycopg.OperationalError as exc:
        raise WarehouseUnreachable(f"{warehouse.label} is unreachable: {reason(exc)}") from exc


def application_name(purpose: str) -> str:
    """opsconsole-<purpose>: how pg_stat_activity names the console's sessions."""
    return f"{APPLICATION_NAME}-{purpose}" if purpose else APPLICATION_NAME


@contextmanager
def session(url: str, **kwargs) -> Iterator[psycopg.Connection]:
    """connect(), closed on exit."""
    conn = connect(url, **kwargs)
    try:
        yield conn
    finally:
        conn.close()


def ping(url: str) -> config.Reachable:
    """What /readyz shows for a PostgreSQL warehouse: its version and whether the login
    is a superuser, or an exception."""
    with session(url, purpose="readyz", connect_timeout=1) as conn:
        version, superuser = conn.execute(
            "SELECT current_setting('server_version'), rolsuper"
            " FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
    return config.Reachable(f"PostgreSQL {version}", superuser=superuser)


# --- the Queries module's named connections -----------------------------------


@contextmanager
def open_warehouse(name: str, *, own_session: bool = False) -> Iterator[psycopg.Connection]:
    """An autocommit, dict-row connection to PostgreSQL warehouse `name`.

    Pooled unless `own_session` (hypopg's hypothetical indexes and long index builds
    live in their session). Unknown name, unreachable server, missing privileges and
    other server errors become the console's errors with a readable message."""
    url = config.postgres_url(name)
    with _translated(name, url):
        if own_session:
            with session(url, purpose="queries", dict_rows=True) as conn:
                yield conn
        else:
            with _pooled(name, url) as conn:
                yield conn


@contextmanager
def _pooled(name: str, url: str) -> Iterator[psycopg.Connection]:
    pool = _pool(url)
    try:
        with pool.connection(timeout=CONNECT_TIMEOUT_S) as conn:
            yield conn
    except PoolTimeout:
        # The pool only says it waited; a direct attempt says why.
        connect(url, purpose="queries").close()
        raise WarehouseUnreachable(
            f"all {POOL_MAX_SIZE} pooled connections stayed busy for {CONNECT_TIMEOUT_S} s"
        ) from None


def _pool(url: str) -> ConnectionPool:
    with _pools_lock:
        pool = _pools.get(url)
        if pool is None:
            # A first connection now: an unreachable server fails here with its reason.
            connect(url, purpose="queries").close()
            pool = ConnectionPool(
                config.parse(url).conninfo,
                min_size=0,
                max_size=POOL_MAX_SIZE,
                max_idle=POOL_MAX_IDLE_S,
                num_workers=1,
                kwargs={
                    "autocommit": True,
                    "connect_timeout": CONNECT_TIMEOUT_S,
                    "application_name": application_name("queries"),
                    "row_factory": dict_row,
                    # No server-side prepared statements on lent connections: the
                    # reset between borrowers drops them, and a long borrower (an index
                    # build's watcher) must never find one gone.
                    "prepare_threshold": None,
                },
                check=ConnectionPool.check_connection,
                reset=_reset,
                name=config.safe_label(url),
                open=True,
            )
            _pools[url] = pool
        return pool


def _reset(conn: psycopg.Connection) -> None:
    # Settings, roles and prepared statements of one page do not reach the next.
    conn.execute("DISCARD ALL")


def close_pools() -> None:
    """Close every pool (settings changed, or the process ends)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()


def _on_setting_changed(setting: str, **kwargs) -> None:
    if setting == "WAREHOUSES":
        close_pools()


setting_changed.connect(_on_setting_changed)
atexit.register(close_pools)


@contextmanager
def _translated(name: str, url: str) -> Iterator[None]:
    try:
        yield
    except WarehouseUnreachable as exc:
        raise WarehouseUnreachable(
            f"Warehouse {name!r} ({config.safe_label(url)}) is unreachable: "
            f"{reason(exc.__cause__ or exc)}"
        ) from None
    except psycopg.errors.InsufficientPrivilege as exc:
        raise PermissionDenied(
            f"Warehouse {name!r} refused the console's role: {exc.diag.message_primary}. "
            "Grant it pg_read_all_stats (statistics and other sessions' queries), "
            "pg_signal_backend (cancel, terminate) or EXECUTE on pg_stat_statements_reset."
        ) from None
    except psycopg.errors.ObjectNotInPrerequisiteState as exc:
        # pg_stat_statements created but not in shared_preload_libraries.
        raise ExtensionMissing("pg_stat_statements", name, exc.diag.message_primary) from None
    except psycopg.OperationalError as exc:
        raise WarehouseUnreachable(
            f"Lost the connection to warehouse {name!r}: {reason(exc)}"
        ) from None
    except psycopg.Error as exc:
        raise WarehouseError(f"Warehouse {name!r} answered with an error: {reason(exc)}") from None


def reason(exc: BaseException) -> str:
    """The last meaningful line of a driver error: what the operator needs to read."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def installed_extensions(conn: psycopg.Connection) -> set[str]:
    with conn.cursor(row_factory=tuple_row) as cur:
        return {row[0] for row in cur.execute("SELECT extname FROM pg_extension")}


def require_extension(conn: psycopg.Connection, extension: str, warehouse: str) -> None:
    """ExtensionMissing (with how to enable it) unless `extension` is installed."""
    if extension not in installed_extensions(conn):
        raise ExtensionMissing(extension, warehouse)
