"""The PostgreSQL backend, one layer per module:

catalog → rules → render / swap / templates → plan → replay → run → retention → backend.
Each module imports only the ones before it.
"""

from .backend import APPLICATION_NAME, PostgresBackend

__all__ = ["APPLICATION_NAME", "PostgresBackend"]
