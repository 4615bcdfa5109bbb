"""The INFORMATION_SCHEMA.JOBS query, checked by parsing it with sqlglot (BigQuery)."""

import pytest
import sqlglot
from sqlglot import exp

from partitions import warehouses
from partitions.queries import bigquery


def parsed(url="bigquery://acme-prod/sales?location=EU", **kwargs):
    text, params = bigquery.slow_jobs_sql(warehouses.parse(url), **kwargs)
    return sqlglot.parse_one(text, read="bigquery"), params


def test_it_reads_the_regional_jobs_view_of_the_project():
    tree, _ = parsed()
    tables = {t.sql("bigquery") for t in tree.find_all(exp.Table)}
    assert "`acme-prod`.`region-eu`.`INFORMATION_SCHEMA.JOBS` AS JOBS" in tables


def test_it_groups_by_the_normalized_query_hash_with_the_figures_operators_need():
    tree, _ = parsed()
    assert [g.sql("bigquery") for g in tree.args["group"].expressions] == ["query_hash"]
    names = {e.alias_or_name for e in tree.expressions}
    assert {
        "job_count",
        "total_bytes_processed",
        "total_slot_ms",
        "mean_duration_ms",
        "max_duration_ms",
        "users",
        "referenced_tables",
    } <= names


def test_it_passes_figures_as_named_parameters():
    tree, params = parsed(days=3, min_mean_ms=250, limit=10)
    assert {p.sql("bigquery") for p in tree.find_all(exp.Parameter)} == {
        "@days",
        "@min_ms",
        "@limit",
    }
    assert params == {"days": 3, "min_ms": 250.0, "limit": 10}


@pytest.mark.parametrize(
    ("order", "column"), [("bytes", "total_bytes_processed"), ("duration", "mean_duration_ms")]
)
def test_it_orders_by_the_chosen_cost(order, column):
    tree, _ = parsed(order=order)
    assert tree.args["order"].expressions[0].this.name == column


@pytest.mark.parametrize(
    "url",
    ["bigquery://x/sales", "bigquery://acme`; DROP/sales", "bigquery://acme-prod/s?location=eu`x"],
)
def test_it_refuses_names_that_are_not_bigquery_names(url):
    with pytest.raises(warehouses.InvalidWarehouseURL):
        warehouses.parse(url)
