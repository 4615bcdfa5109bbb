"""The demo workload gives the Queries pages something real to show."""

import pytest

from partitions.queries import advisor, demo, health


@pytest.mark.django_db
def test_it_seeds_a_workload_with_suggestions_and_findings(pg_schema):
    outcome = demo.seed(schema=pg_schema, orders=40_000)
    assert outcome["created"] and outcome["statements_run"] > 1000
    advice = advisor.suggest_indexes("main", min_mean_ms=0, containing=pg_schema)
    tables = {(s.table, s.columns[0]) for s in advice.suggestions}
    assert ("orders", "customer_id") in tables
    assert ("orders", "lower(note)") in tables  # an expression index
    by_default = advisor.suggest_indexes("main", containing=pg_schema)  # no threshold given
    assert ("orders", "customer_id") in {(s.table, s.columns[0]) for s in by_default.suggestions}
    assert {s.schema for s in by_default.suggestions} == {pg_schema}
    report = health.index_health("main", schema=pg_schema)
    assert {r["name"] for r in report.redundant} == {"orders_created_idx", "orders_status_idx"}
    assert [f["name"] for f in report.unindexed_foreign_keys] == ["orders_customer_id_fkey"]
    assert len(report.n_plus_one) == 1
    assert demo.seed(schema=pg_schema, orders=40_000)["created"] is False
