"""BigQuery names and values as the console writes them into SQL.

Names are checked whole (fullmatch) and backtick-quoted; values travel as typed
query parameters. Everything above (plan, run, table_sync) writes SQL through these.
"""

import re
from datetime import UTC, date, datetime
from typing import Any

from google.cloud import bigquery

from ..base import PlanRefused

GRANULARITIES = ("DAY", "HOUR", "MONTH", "YEAR")
TABLE_RE = re.compile(r"[\w\- ]{1,1000}")
COLUMN_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,299}")
QUERY_TIMEOUT_S = 120
# An unreachable endpoint fails within this many seconds (the client's default retries ~10 min).
RETRY = bigquery.DEFAULT_RETRY.with_deadline(30)


def check(pattern: re.Pattern, value: str, what: str) -> str:
    """`value` if the whole of it matches `pattern`; PlanRefused otherwise."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise PlanRefused(f"invalid BigQuery {what}: {value!r}")
    return value


def column(name: str) -> str:
    """A column name, checked and backtick-quoted."""
    return f"`{check(COLUMN_RE, name, 'column name')}`"


def to_params(values: dict[str, Any]) -> list:
    """Named query parameters, typed from the Python values (or an explicit type)."""
    params = []
    for name, value in values.items():
        if isinstance(value, dict):  # {"type": "TIMESTAMP", "value": "…"}
            params.append(bigquery.ScalarQueryParameter(name, value["type"], value["value"]))
        elif isinstance(value, datetime):
            params.append(bigquery.ScalarQueryParameter(name, "TIMESTAMP", value))
        elif isinstance(value, date):
            params.append(bigquery.ScalarQueryParameter(name, "DATE", value))
        elif isinstance(value, int):
            params.append(bigquery.ScalarQueryParameter(name, "INT64", value))
        else:
            params.append(bigquery.ScalarQueryParameter(name, "STRING", value))
    return params


def now_tag() -> str:
    """A UTC timestamp for backup table names."""
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")
