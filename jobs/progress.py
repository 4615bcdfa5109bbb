"""One reading of a run's progress for every long action (sync, warming, invalidation,
migration steps, index builds, runbooks): percent, rate, ETA and the current step, the
same on the pages (templates/partials/_progress.html) and in the CLI's --wait line."""

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from opsconsole.display import duration


@dataclass(frozen=True)
class Progress:
    done: int
    total: int | None
    percent: int | None
    rate: float | None  # items per second since the run started
    eta_s: float | None  # seconds left at that rate
    step: str

    @property
    def eta(self) -> str:
        return duration(self.eta_s) if self.eta_s is not None else ""

    @property
    def rate_text(self) -> str:
        return f"{self.rate:,.0f}/s" if self.rate else ""

    def line(self) -> str:
        """The CLI's one-line reading: `42% · 4,200 / 10,000 · 812/s · ETA 7.1 s · batch 3`."""
        parts = []
        if self.percent is not None:
            parts.append(f"{self.percent}%")
        parts.append(f"{self.done:,}" + (f" / {self.total:,}" if self.total else ""))
        if self.rate_text:
            parts.append(self.rate_text)
        if self.eta:
            parts.append(f"ETA {self.eta}")
        if self.step:
            parts.append(self.step)
        return " · ".join(parts)


def of(run, now: datetime | None = None) -> Progress:
    """How far `run` is, read from its committed progress fields."""
    done, total = run.progress_done or 0, run.progress_total or None
    if run.status == "succeeded":
        # It did all there was, whether or not it knew the total beforehand (a warmer
        # reads rows until they end): the bar is full, not blank.
        return Progress(done, total or done or None, 100, None, None, run.progress_message or "")
    percent = min(100, int(100 * done / total)) if total else None
    rate = eta = None
    if run.started_at and done and run.is_active:
        elapsed = ((now or timezone.now()) - run.started_at).total_seconds()
        if elapsed > 0:
            rate = done / elapsed
            if total and total > done:
                eta = (total - done) / rate
    return Progress(done, total, percent, rate, eta, run.progress_message or "")
