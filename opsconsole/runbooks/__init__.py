"""Runbooks: audited, one-click sequences of existing service calls.

A runbook is a list of steps. Each step calls a service (never re-implements
it), can preview itself (`describe`), may be a check, and may declare an undo.
Runbooks are declared in `opsconsole/runbooks/library.py` and registered with
`register()`; each becomes a job of kind "runbook", so it runs, resumes and is
listed like every other long action.
"""

from .book import Runbook, Step, StepContext, StepFailed
from .registry import RUNBOOKS, get, register

__all__ = ["RUNBOOKS", "Runbook", "Step", "StepContext", "StepFailed", "get", "register"]
