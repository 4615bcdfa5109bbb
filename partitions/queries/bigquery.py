"""BigQuery slow jobs: the INFORMATION_SCHEMA.JOBS query the console runs.

Jobs are grouped by BigQuery's own normalized-query hash
(query_info.query_hashes.normalized_literals), so the same statement with other
literals is one row: bytes processed, slot ms, duration, referenced tables and
users. The project and location (?location=) come validated from the warehouse
layer and are backtick-quoted; figures travel as named query
parameters (@days, @min_ms, @limit). Only SQL generation lives here: running it
belongs to partitions/backends/bigquery/.
"""

from partitions.warehouses import Warehouse

ORDERS = {
    "slot_ms": "total_slot_ms DESC",
    "bytes": "total_bytes_processed DESC",
    "duration": "mean_duration_ms DESC",
    "jobs": "job_count DESC",
}


def slow_jobs_sql(
    target: Warehouse,
    *,
    order: str = "slot_ms",
    days: int = 7,
    min_mean_ms: float = 0,
    limit: int = 50,
) -> tuple[str, dict]:
    """The JOBS query and its named parameters, most expensive groups first."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}")
    view = f"`{target.project}`.`region-{target.location}`.INFORMATION_SCHEMA.JOBS"
    # Names are validated by the warehouse layer (whole-string) and backtick-quoted, the order comes
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
