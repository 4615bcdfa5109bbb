"""BigQuery slow jobs: the INFORMATION_SCHEMA.JOBS query the console runs.

Jobs are grouped by BigQuery's own normalized-query hash
(query_info.query_hashes.normalized_literals), so the same statement with other
literals is one row: bytes processed, slot ms, duration, referenced tables and
users. Names are validated and backtick-quoted; figures travel as named query
parameters (@days, @min_ms, @limit). Only SQL generation lives here: running it
belongs to partitions/backends/bigquery.py.
"""

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

PROJECT_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
REGION_RE = re.compile(r"^[a-z]+(-[a-z0-9]+)*$")
ORDERS = {
    "slot_ms": "total_slot_ms DESC",
    "bytes": "total_bytes_processed DESC",
    "duration": "mean_duration_ms DESC",
    "jobs": "job_count DESC",
}


class InvalidBigQueryTarget(ValueError):
    pass


@dataclass(frozen=True)
class BigQueryTarget:
    project: str
    dataset: str
    region: str  # e.g. "us", "eu", "europe-west1"


def parse_target(url: str) -> BigQueryTarget:
    """bigquery://project/dataset[?location=EU] → a validated target."""
    parts = urlsplit(url)
    if parts.scheme != "bigquery":
        raise InvalidBigQueryTarget(f"not a bigquery:// URL: {url!r}")
    project = parts.netloc
    dataset = parts.path.strip("/")
    region = (parse_qs(parts.query).get("location") or ["US"])[0].lower()
    if not PROJECT_RE.match(project):
        raise InvalidBigQueryTarget(f"invalid BigQuery project id {project!r}")
    if not REGION_RE.match(region):
        raise InvalidBigQueryTarget(f"invalid BigQuery location {region!r}")
    return BigQueryTarget(project=project, dataset=dataset, region=region)


def slow_jobs_sql(
    target: BigQueryTarget,
    *,
    order: str = "slot_ms",
    days: int = 7,
    min_mean_ms: float = 0,
    limit: int = 50,
) -> tuple[str, dict]:
    """The JOBS query and its named parameters, most expensive groups first."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}")
    view = f"`{target.project}`.`region-{target.region}`.INFORMATION_SCHEMA.JOBS"
    # Names are validated (PROJECT_RE, REGION_RE) and backtick-quoted, the order comes
    # from the fixed ORDERS map, and every figure is a named query parameter.
    text = f"""
WITH jobs AS (
  SELECT
    query_info.query_hashes.normalized_literals AS query_hash,
    query,
    user_email,
    total_bytes_processed,
    total_slot_ms,
    TIMESTAMP_DIFF(end_time, start_time, MILLISECOND) AS duration_ms,
    ARRAY(
      SELECT CONCAT(t.project_id, '.', t.dataset_id, '.', t.table_id)
      FROM UNNEST(referenced_tables) AS t
    ) AS tables
  FROM {view}
  WHERE creation_time >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL @days DAY)
    AND job_type = 'QUERY'
    AND state = 'DONE'
    AND (statement_type IS NULL OR statement_type != 'SCRIPT')
)
SELECT
  query_hash,
  ANY_VALUE(query) AS sample_query,
  COUNT(*) AS job_count,
  SUM(total_bytes_processed) AS total_bytes_processed,
  SUM(total_slot_ms) AS total_slot_ms,
  AVG(duration_ms) AS mean_duration_ms,
  MAX(duration_ms) AS max_duration_ms,
  ARRAY_AGG(DISTINCT user_email IGNORE NULLS) AS users,
  ARRAY(SELECT DISTINCT name FROM UNNEST(ARRAY_CONCAT_AGG(tables)) AS name) AS referenced_tables
FROM jobs
GROUP BY query_hash
HAVING AVG(duration_ms) >= @min_ms
ORDER BY {ORDERS[order]}
LIMIT @limit
"""  # noqa: S608
    text = text.strip()
    return text, {"days": int(days), "min_ms": float(min_mean_ms), "limit": int(limit)}
