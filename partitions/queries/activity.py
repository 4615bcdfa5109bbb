"""Live statements of a PostgreSQL warehouse (pg_stat_activity), and stopping one:
cancel its current statement or terminate its backend (admin, typed confirmation)."""

from opsconsole import audit
from opsconsole.actions import audited_action
from opsconsole.confirmation import require_typed
from partitions.warehouses.postgres import open_warehouse

from . import pg
from .errors import ConfirmationMismatch, QueriesError


def live_statements(warehouse: str) -> list[dict]:
    """Backends of the warehouse's database, longest running first. Changes nothing."""
    with open_warehouse(warehouse) as conn:
        return pg.activity(conn)


def _stop(actor, warehouse: str, pid: int, confirm: str, ip_address, *, terminate: bool) -> bool:
    require_typed(
        str(pid), confirm, f"Type the backend's pid {pid} to confirm.", error=ConfirmationMismatch
    )
    action = "queries.terminate_backend" if terminate else "queries.cancel_backend"
    with (
        audit.record(actor, action, f"{warehouse}:{pid}", ip_address=ip_address) as event,
        open_warehouse(warehouse) as conn,
    ):
        if not pg.backend_exists(conn, pid):
            raise QueriesError(f"No backend with pid {pid} in warehouse {warehouse!r}.")
        stop = pg.terminate_backend if terminate else pg.cancel_backend
        event.params["signalled"] = ok = stop(conn, pid)
    return ok


@audited_action("queries.cancel_backend")
def cancel_backend(actor, warehouse: str, pid: int, confirm: str, ip_address=None) -> bool:
    """Cancel the statement backend `pid` is running (the session stays). Audited as
    queries.cancel_backend. Not undoable: the client sees an error and may retry."""
    return _stop(actor, warehouse, pid, confirm, ip_address, terminate=False)


@audited_action("queries.terminate_backend")
def terminate_backend(actor, warehouse: str, pid: int, confirm: str, ip_address=None) -> bool:
    """Terminate backend `pid` (its transaction rolls back, the session ends). Audited as
    queries.terminate_backend. Not undoable: the client must reconnect."""
    return _stop(actor, warehouse, pid, confirm, ip_address, terminate=True)
