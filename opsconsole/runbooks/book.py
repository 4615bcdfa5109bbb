"""What a runbook is: its steps, their context, and how a step says it failed."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django import forms

from jobs.registry import clean_with_form


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


def confirm_message(book: Runbook) -> str:
    return f"Type {book.name} exactly."
