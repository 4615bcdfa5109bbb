"""The warmer registry: product code registers how to fill a namespace ahead of traffic.

    from cachemgr.registry import warmer

    @warmer("user_profile", description="Profiles of active customers")
    def user_profiles(limit):
        for row in fetch_rows(limit):
            yield row.id, {"name": row.name}            # or (key, value, ttl)

A warmer is a callable taking `limit` (None = everything) and yielding (key, value) or
(key, value, ttl) rows. Apps declare warmers in a `warmers` module (auto-imported).
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.utils.module_loading import autodiscover_modules

Row = tuple[Any, Any] | tuple[Any, Any, int | None]


class UnknownWarmer(LookupError):
    pass


@dataclass(frozen=True)
class Warmer:
    name: str
    namespace: str
    func: Callable[[int | None], Iterable[Row]]
    description: str = ""
    schedule: Any = None  # seconds or a celery crontab: warmed by beat
    tags: tuple[str, ...] = ()

    @property
    def schedule_text(self) -> str:
        """The schedule in operator words: "cron 15 * * * *", "every 600 s" or "on demand"."""
        if self.schedule is None:
            return "on demand"
        if isinstance(self.schedule, int | float):
            return f"every {self.schedule:g} s"
        fields = ("_orig_minute", "_orig_hour", "_orig_day_of_month", "_orig_month_of_year")
        parts = [str(getattr(self.schedule, f, "*")) for f in (*fields, "_orig_day_of_week")]
        return "cron " + " ".join(parts)


WARMERS: dict[str, Warmer] = {}


def warmer(namespace: str, *, name: str | None = None, description: str = "", schedule=None):
    """Register the decorated generator as the warmer `name` (default: the namespace)."""

    def register(func: Callable) -> Callable:
        label = name or namespace
        doc = (func.__doc__ or "").strip().split("\n")[0]
        WARMERS[label] = Warmer(label, namespace, func, description or doc, schedule)
        return func

    return register


def get(name: str) -> Warmer:
    try:
        return WARMERS[name]
    except KeyError:
        known = ", ".join(sorted(WARMERS)) or "none"
        raise UnknownWarmer(f"Unknown warmer {name!r} (known: {known}).") from None


def discover() -> None:
    autodiscover_modules("warmers")
