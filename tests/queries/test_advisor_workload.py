"""The advisor right by default: statements chosen by weight, the whole SQL read
(views, CTEs, ORDER BY by position or alias), system and tiny relations left alone."""

import pytest
from django.conf import settings
from psycopg import sql

from partitions.queries import advisor


def suggested(advice, schema):
    return {(s.table, tuple(s.columns)) for s in advice.suggestions if s.schema == schema}


def ddl(wh, schema, text):
    wh.execute(sql.SQL(text).format(s=sql.Identifier(schema)))


@pytest.mark.django_db
def test_it_finds_a_frequent_fast_statement_with_default_settings(shop, run_statement, wh):
    run_statement("SELECT * FROM {s}.orders WHERE customer_id = %s", shop, [42], times=60)
    mean_ms = wh.execute(
        "SELECT max(mean_exec_time) FROM pg_stat_statements "
        "WHERE strpos(query, %s) > 0 AND query LIKE 'SELECT * FROM%%'",
        [shop],
    ).fetchone()[0]
    assert mean_ms < settings.SLOW_QUERY_MS  # the old mean-time threshold never saw it
    advice = advisor.suggest_indexes("main", containing=shop)
    assert suggested(advice, shop) == {("orders", ("customer_id",))}
    assert advice.chosen_share >= 0.95
    assert advice.suggestions[0].helps[0].calls == 60


@pytest.mark.django_db
def test_it_never_suggests_on_a_system_schema(pg_schema, run_statement, wh):
    # A domain of the test's schema makes the statement (and its queryid) the test's own.
    ddl(wh, pg_schema, "CREATE DOMAIN {s}.ref AS oid")
    run_statement(
        "SELECT * FROM pg_catalog.pg_depend WHERE refobjid = %s::{s}.ref", pg_schema, [1259]
    )
    advice = advisor.suggest_indexes("main", containing=pg_schema, min_cost=0, min_table_rows=0)
    assert advice.suggestions == []
    assert advice.analysed == 1
    assert "pg_catalog.pg_depend belongs to the system" in advice.why_not[0].reason


@pytest.mark.django_db
def test_it_skips_a_tiny_relation(pg_schema, run_statement, wh):
    ddl(
        wh,
        pg_schema,
        "CREATE TABLE {s}.plans AS SELECT g AS id, g % 50 AS tier FROM generate_series(1, 2000) g",
    )
    ddl(wh, pg_schema, "ANALYZE {s}.plans")
    run_statement("SELECT * FROM {s}.plans WHERE id = %s", pg_schema, [7], times=20)
    advice = advisor.suggest_indexes("main", containing=pg_schema, min_cost=0)
    assert suggested(advice, pg_schema) == set()
    assert advice.why_not[0].reason.startswith("tiny table")


@pytest.mark.django_db
def test_it_skips_a_plan_under_the_cost_floor(pg_schema, run_statement, wh):
    ddl(wh, pg_schema, "CREATE TABLE {s}.plans AS SELECT g AS id FROM generate_series(1, 2000) g")
    ddl(wh, pg_schema, "ANALYZE {s}.plans")
    run_statement("SELECT * FROM {s}.plans WHERE id = %s", pg_schema, [7], times=5)
    advice = advisor.suggest_indexes("main", containing=pg_schema, min_table_rows=0)
    assert suggested(advice, pg_schema) == set()
    assert advice.why_not[0].reason.startswith("plan already cheap")


@pytest.mark.django_db
def test_it_reads_through_views_to_the_base_table(shop, run_statement, wh):
    ddl(
        wh,
        shop,
        "CREATE VIEW {s}.live_orders AS SELECT id, customer_id AS buyer, total "
        "FROM {s}.orders WHERE status <> 'void'",
    )
    ddl(wh, shop, "CREATE VIEW {s}.big_orders AS SELECT * FROM {s}.live_orders WHERE total > 10")
    run_statement("SELECT * FROM {s}.big_orders WHERE buyer = %s", shop, [42])
    advice = advisor.suggest_indexes("main", containing=shop)
    assert suggested(advice, shop) == {("orders", ("customer_id",))}
    helped = advice.suggestions[0].helps[0]
    assert helped.cost_after < helped.cost_before * 0.5


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["", "MATERIALIZED", "NOT MATERIALIZED"])
def test_it_reads_the_where_of_a_cte(shop, run_statement, kind):
    run_statement(
        "WITH mine AS " + kind + " (SELECT id, total FROM {s}.orders WHERE customer_id = %s) "
        "SELECT count(*), sum(total) FROM mine",
        shop,
        [42],
    )
    advice = advisor.suggest_indexes("main", containing=shop)
    assert suggested(advice, shop) == {("orders", ("customer_id",))}
    helped = advice.suggestions[0].helps[0]
    assert helped.cost_after < helped.cost_before * 0.5


@pytest.mark.django_db
@pytest.mark.parametrize(
    "order_by",
    ["ORDER BY 2 DESC", "ORDER BY made DESC"],
    ids=["position", "alias"],
)
def test_it_reads_order_by_position_and_alias(shop, run_statement, order_by):
    run_statement("SELECT id, created_at AS made FROM {s}.orders " + order_by + " LIMIT 10", shop)
    advice = advisor.suggest_indexes("main", containing=shop)
    assert suggested(advice, shop) == {("orders", ("created_at",))}
    helped = advice.suggestions[0].helps[0]
    assert helped.cost_after < helped.cost_before * 0.5


@pytest.mark.django_db
def test_it_reads_an_in_subquery_and_an_any_list(shop, run_statement):
    run_statement("SELECT id FROM {s}.orders WHERE customer_id = ANY(%s)", shop, [[1, 2, 3]])
    run_statement(
        "SELECT count(*) FROM {s}.customers c WHERE c.id IN "
        "(SELECT o.customer_id FROM {s}.orders o WHERE o.total = %s)",
        shop,
        [5],
    )
    advice = advisor.suggest_indexes("main", containing=shop)
    assert suggested(advice, shop) == {("orders", ("customer_id",)), ("orders", ("total",))}


def three_statements(shop, run_statement):
    run_statement("SELECT * FROM {s}.orders WHERE customer_id = %s", shop, [42])
    run_statement("SELECT id FROM {s}.orders WHERE total = %s", shop, [7])
    run_statement("SELECT id FROM {s}.orders ORDER BY created_at DESC LIMIT 10", shop)


@pytest.mark.django_db
def test_it_chooses_one_set_of_indexes_and_reports_what_it_saves(shop, run_statement):
    three_statements(shop, run_statement)
    advice = advisor.suggest_indexes("main", containing=shop)
    assert suggested(advice, shop) == {
        ("orders", ("customer_id",)),
        ("orders", ("total",)),
        ("orders", ("created_at",)),
    }
    assert all(len(s.helps) == 1 and s.helps[0].calls == 3 for s in advice.suggestions)
    assert 0.9 < advice.saved_share <= 1.0


@pytest.mark.django_db
def test_it_respects_the_budget(shop, run_statement):
    three_statements(shop, run_statement)
    one_per_table = advisor.suggest_indexes("main", containing=shop, max_per_table=1)
    assert len(suggested(one_per_table, shop)) == 1
    assert sum("left out by the budget" in w.reason for w in one_per_table.why_not) == 2
    tiny_budget = advisor.suggest_indexes("main", containing=shop, max_total_mb=0.1)
    assert tiny_budget.suggestions == []
    sizes = [s.size_bytes for s in one_per_table.suggestions]
    assert all(size > 0.1 * 1024 * 1024 for size in sizes)


@pytest.mark.django_db
def test_it_marks_an_index_on_a_write_heavy_column_not_worth_it(shop, run_statement):
    run_statement("UPDATE {s}.orders SET total = total + 1 WHERE id = %s", shop, [5], times=3000)
    run_statement("SELECT id FROM {s}.orders WHERE total = %s", shop, [7], times=1)
    run_statement("SELECT * FROM {s}.orders WHERE customer_id = %s", shop, [42], times=1)
    # The 3,000 quick updates are most of the time: look at every statement.
    advice = advisor.suggest_indexes("main", containing=shop, workload_share=1.0)
    assert suggested(advice, shop) == {("orders", ("customer_id",))}
    (costly,) = advice.not_worth_it
    assert (costly.columns, costly.worth_it) == (["total"], False)
    assert costly.writes.updated_columns == ["total"] and costly.writes.updated_rows == 3000
    assert costly.writes.cost > costly.saved
    assert advice.suggestions[0].writes.updated_columns == []
    assert any(w.reason.startswith("not worth it") for w in advice.why_not)


@pytest.mark.django_db
def test_it_names_the_index_that_already_serves_a_statement(shop, run_statement, wh):
    ddl(wh, shop, "CREATE INDEX orders_by_customer ON {s}.orders (customer_id, total)")
    run_statement("SELECT * FROM {s}.orders WHERE customer_id = %s", shop, [42])
    advice = advisor.suggest_indexes("main", containing=shop)
    assert advice.suggestions == []
    assert [w.reason for w in advice.why_not] == [f"already indexed by {shop}.orders_by_customer"]
