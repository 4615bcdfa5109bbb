"""The job registry: product code declares a long action and its policy once.

    @job("table_sync", retries=3, backoff=5, backoff_max=60, exclusive=True,
         soft_timeout=600, form=TableSyncForm, schedule=crontab(minute="*/5"))
    def table_sync(ctx, params): ...

The function receives a `RunContext` (progress, log, cancel checks) and the
validated parameters; what it returns is stored as the run's result.
"""

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django import forms


class UnknownJob(LookupError):
    pass


@dataclass(frozen=True)
class JobSpec:
    name: str
    func: Callable[..., dict | None]
    kind: str = "job"
    description: str = ""
    form: type[forms.Form] | None = None
    retries: int = 0
    backoff: float = 5.0
    backoff_max: float = 60.0
    jitter: float = 0.1
    soft_timeout: int | None = None
    hard_timeout: int | None = None
    exclusive: bool = False
    # Times a run whose worker died starts again by itself from its last checkpoint
    # (the reaper decides; 0: the run ends `lost` and an operator retries it).
    resumes: int = 2
    schedule: Any = None  # a celery crontab or seconds; copied to beat once
    schedule_params: dict = field(default_factory=dict)
    role: str = "operator"
    listed: bool = True  # shown on the "run a job" page

    @property
    def launchable(self) -> bool:
        """Plain jobs launch from the Jobs page and `jobs run`; other kinds (invalidation,
        migrations, …) have their own pages with preview and typed confirmation."""
        return self.listed and self.kind == "job"

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    def backoff_delay(self, attempt: int) -> float:
        """Delay before attempt `attempt + 1`: backoff·2^(attempt-1), capped, with jitter."""
        base = min(self.backoff_max, self.backoff * 2 ** max(0, attempt - 1))
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))

    def clean_params(self, params: dict | None) -> dict:
        """Validate parameters with the job's form; raises forms.ValidationError."""
        return clean_with_form(self.form, params)


def clean_with_form(form_class: type[forms.Form] | None, params: dict | None) -> dict:
    """Validate `params` with `form_class` into JSON-ready values.

    Fields left out take the form's initial values, as a page would show them;
    raises forms.ValidationError with one "field: problem" message per field.
    """
    params = dict(params or {})
    if form_class is None:
        return params
    defaults = {
        name: field.initial
        for name, field in form_class.base_fields.items()
        if field.initial is not None and not callable(field.initial)
    }
    form = form_class(data={**defaults, **params})
    if not form.is_valid():
        raise forms.ValidationError(
            [f"{name}: {' '.join(errors)}" for name, errors in form.errors.items()]
        )
    cleaned = {k: v for k, v in form.cleaned_data.items() if v not in (None, "")}
    return json.loads(json.dumps(cleaned, default=str))


JOBS: dict[str, JobSpec] = {}


def job(name: str, **policy) -> Callable:
    def register(func: Callable) -> Callable:
        if name in JOBS and JOBS[name].func is not func:
            raise ValueError(f"job {name!r} is registered twice")
        doc = (func.__doc__ or "").strip().split("\n")[0]
        policy.setdefault("description", doc)
        JOBS[name] = JobSpec(name=name, func=func, **policy)
        return func

    return register


def launchable() -> list[str]:
    return sorted(name for name, spec in JOBS.items() if spec.launchable)


def get(name: str) -> JobSpec:
    try:
        return JOBS[name]
    except KeyError:
        raise UnknownJob(f"Unknown job {name!r}.") from None
