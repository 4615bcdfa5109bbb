"""The Queries module's own refusals, beside the warehouse layer's errors.

Both are WarehouseError: pages and the `queries` command catch that one class and
show its message to the operator, never a 500.
"""

from partitions.warehouses import WarehouseError


class QueriesError(WarehouseError):
    """A request the Queries module refuses (no such table, index or backend, …)."""


class ConfirmationMismatch(QueriesError):
    """The typed confirmation does not match what the action names."""
