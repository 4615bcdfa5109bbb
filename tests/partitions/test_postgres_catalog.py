"""Catalog text read with PostgreSQL's own parser (pglast), never searched as text."""

from datetime import date

import pytest

from partitions.backends.postgres.catalog import filters_on, range_bounds


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELECT * FROM s.payments WHERE created_at >= $1 AND created_at < $2", True),
        ("UPDATE s.payments SET status = $1 WHERE p.created_at < $2", True),
        ("DELETE FROM s.payments WHERE id IN (SELECT id FROM t WHERE created_at < $1)", True),
        ("SELECT created_at FROM s.payments WHERE id = $1", False),  # read, not filtered
        ("SELECT * FROM s.payments ORDER BY created_at", False),
        ("SELECT 'x where created_at' FROM s.payments", False),  # text inside a literal
        ("SELECT * FROM s.payments WHERE", False),  # cut short by pg_stat_statements
    ],
)
def test_it_knows_which_statements_filter_on_the_partition_column(query, expected):
    assert filters_on(query, "created_at") is expected


def test_it_reads_range_bounds_as_dates_and_skips_the_rest():
    stamp = "FOR VALUES FROM ('2024-01-01 00:00:00+00') TO ('2024-02-01 00:00:00+00')"
    assert range_bounds(stamp) == (date(2024, 1, 1), date(2024, 2, 1))
    assert range_bounds("FOR VALUES FROM ('2024-03-04') TO ('2024-03-11')") == (
        date(2024, 3, 4),
        date(2024, 3, 11),
    )
    assert range_bounds("DEFAULT") is None
    assert range_bounds("FOR VALUES FROM (MINVALUE) TO ('2024-02-01')") is None
