"""The runbooks the console knows; each registered runbook is also a job of kind "runbook"."""

from jobs.registry import JOBS, job

from .book import Runbook
from .engine import execute_runbook

RUNBOOKS: dict[str, Runbook] = {}


def register(book: Runbook) -> Runbook:
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
