"""The BigQuery backend, one layer per module:

grammar (names and parameters) → plan → run (steps, swap, undo) → backend.
Each module imports only the ones before it.
"""

from .backend import STEPS, BigQueryBackend
from .grammar import COLUMN_RE, GRANULARITIES, QUERY_TIMEOUT_S, RETRY, TABLE_RE, check, column

__all__ = [
    "COLUMN_RE",
    "GRANULARITIES",
    "QUERY_TIMEOUT_S",
    "RETRY",
    "STEPS",
    "TABLE_RE",
    "BigQueryBackend",
    "check",
    "column",
]
