"""The index advisor's last analysis, served to the page instead of computed in the
request (an analysis EXPLAINs dozens of statements: seconds on a real workload).

One IndexAnalysis row per warehouse and set of options. The page shows what the row
holds and when it was computed; when it is older than QUERIES_ADVISOR_FRESH_S (300 s),
missing, or the operator asks to re-analyse, one Celery task (`queries.analyse_indexes`)
computes it again. Single flight: the row's `refreshing_since` is claimed by one atomic
UPDATE, so many viewers start one analysis; a claim older than STUCK_S (a worker that
died) can be taken again. Console state only, not a change to any warehouse: no audit
event, as for the statement snapshots.
"""

import hashlib
import json
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from opsconsole.celery import app as celery_app
from partitions.warehouses import WarehouseError

from . import advisor
from .models import IndexAnalysis

ANALYSE_TASK = "queries.analyse_indexes"
STUCK_S = 600


def fresh_s() -> int:
    return int(getattr(settings, "QUERIES_ADVISOR_FRESH_S", 300))


def _key(options: dict[str, Any]) -> tuple[dict, str]:
    """The options without their unset ones, and a digest naming them."""
    kept = {k: list(v) if isinstance(v, tuple) else v for k, v in options.items() if v is not None}
    text = json.dumps(kept, sort_keys=True)
    return kept, hashlib.sha256(text.encode()).hexdigest()


def current(warehouse: str, options: dict[str, Any]) -> IndexAnalysis:
    """The analysis row of these options (created empty the first time)."""
    kept, key = _key(options)
    analysis, _ = IndexAnalysis.objects.get_or_create(
        warehouse=warehouse, options_key=key, defaults={"options": kept}
    )
    return analysis


def is_fresh(analysis: IndexAnalysis) -> bool:
    if analysis.computed_at is None:
        return False
    return timezone.now() - analysis.computed_at < timedelta(seconds=fresh_s())


def request_refresh(analysis: IndexAnalysis) -> bool:
    """Start one analysis unless one is already under way; True when this call started
    it. The row is reloaded so the page shows the claim."""
    now = timezone.now()
    unclaimed = Q(refreshing_since__isnull=True) | Q(
        refreshing_since__lt=now - timedelta(seconds=STUCK_S)
    )
    claimed = IndexAnalysis.objects.filter(unclaimed, pk=analysis.pk).update(refreshing_since=now)
    if claimed:
        try:
            celery_app.send_task(ANALYSE_TASK, args=[analysis.pk])
        except Exception as exc:  # the broker is away: say so on the page, free the claim
            IndexAnalysis.objects.filter(pk=analysis.pk).update(
                refreshing_since=None, error=f"Could not start the analysis: {exc}"
            )
    analysis.refresh_from_db()
    return bool(claimed)


def refresh(analysis_id: int) -> IndexAnalysis:
    """Compute the analysis now (the Celery task's body) and store it with its time;
    a warehouse fault is stored as the row's error. Frees the claim either way."""
    analysis = IndexAnalysis.objects.get(pk=analysis_id)
    started = time.monotonic()
    try:
        advice = advisor.suggest_indexes(analysis.warehouse, **analysis.options)
        analysis.advice, analysis.error = advice.as_dict(), ""
        analysis.computed_at = timezone.now()
        analysis.took_s = round(time.monotonic() - started, 2)
    except WarehouseError as exc:
        analysis.error = str(exc)
    finally:
        analysis.refreshing_since = None
        analysis.save()
    return analysis
