"""The console's own long actions: the runbooks (each runs as a job of kind runbook)."""

from .runbooks import library  # noqa: F401  (registers the runbooks)
