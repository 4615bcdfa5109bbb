"""Runbooks: audited, one-click sequences of existing service calls.

A runbook is a list of steps. Each step calls a service (never re-implements
it), can preview itself (`describe`), may be a check, and may declare an undo.
Runbooks are declared in `opsconsole/runbooks/library.py` and registered with
`register()`; each becomes a job of kind "runbook", so it runs, resumes and is
listed like every other long action.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django import forms


class StepFailed(Exception):
    """A step, or a check, did not succeed; the message is what the operator reads."""


@dataclass
class StepContext:
    """What a step gets: the validated parameters, the acting user, outputs so far."""

    params: dict[str, Any]
    actor: Any
    run: Any
    outputs: dict[str, dict]
    progress: Callable[[str], None] = lambda message: None


@dataclass(frozen=True)
class Step:
    name: str
    action: Callable[[StepContext], dict | None]
    describe: Callable[[dict], str]
    undo: Callable[[StepContext], dict | None] | None = None
    undo_describe: str = ""
    check: bool = False
    # A step that must never run twice (a redelivered run stops instead of repeating it).
    idempotent: bool = True


@dataclass(frozen=True)
class Runbook:
    name: str
    title: str
    description: str
    steps: list[Step]
    form: type[forms.Form] | None = None
    role: str = "operator"
    needs_approval: bool = False
    soft_timeout: int = 3600
    tags: list[str] = field(default_factory=list)

    @property
    def job_name(self) -> str:
        return f"runbook.{self.name}"

    def clean(self, params: dict) -> dict:
        """Validate parameters with the runbook's form; raises forms.ValidationError."""
        from jobs.registry import clean_with_form

        return clean_with_form(self.form, params) if self.form else {}

    def preview(self, params: dict) -> list[dict]:
        """What each step will do with these parameters (the dry run)."""
        return [
            {
                "n": n,
                "name": step.name,
                "does": step.describe(params),
                "check": step.check,
                "undo": step.undo_describe if step.undo else "",
            }
            for n, step in enumerate(self.steps, start=1)
        ]


RUNBOOKS: dict[str, Runbook] = {}


def register(book: Runbook) -> Runbook:
    from jobs.registry import JOBS, job

    from .engine import execute_runbook

    RUNBOOKS[book.name] = book
    if book.job_name not in JOBS:
        job(
            book.job_name,
            kind="runbook",
            listed=False,
            soft_timeout=book.soft_timeout,
            description=book.title,
        )(lambda ctx, params, book=book: execute_runbook(book, ctx, params))
    return book


def get(name: str) -> Runbook | None:
    return RUNBOOKS.get(name)
