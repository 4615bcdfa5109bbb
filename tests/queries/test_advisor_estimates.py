"""The advisor does not take gains the planner would be wrong about: a range between two
parameters is priced at a realistic width (windows.py), and a plan rereading a table at
random through a scattered column is not a gain (scatter.py)."""

import psycopg
import pytest
from psycopg.rows import dict_row

from partitions.queries import advisor, parsing, scatter, windows
from partitions.queries.candidates import Catalog


@pytest.fixture
def dict_wh(warehouse_db):
    with psycopg.connect(warehouse_db, autocommit=True, row_factory=dict_row) as conn:
        yield conn


def catalog(conn):
    return Catalog(conn, min_table_rows=0, include_tables=(), exclude_tables=())


def suggested(advice, schema):
    return {(s.table, tuple(s.columns)) for s in advice.suggestions if s.schema == schema}


@pytest.mark.parametrize("column", ["total", "created_at"])
def test_a_two_sided_range_is_priced_at_the_window_its_histogram_gives(shop, dict_wh, column):
    text = (
        f"SELECT count(*) AS n FROM {shop}.orders "
        f"WHERE {column} >= $1 AND {column} < $2 AND status <> $3"
    )
    priced, parameters = windows.priced_text(
        dict_wh, text, parsing.shape_of(text), catalog(dict_wh), share=0.05
    )
    assert parameters == 1 and "status <> $1" in priced  # the rest stays a parameter
    dict_wh.execute(f"PREPARE priced AS {priced}")
    kept = dict_wh.execute("EXECUTE priced('none')").fetchone()["n"]
    assert 0.03 <= kept / 60_000 <= 0.08, priced  # about 5 % of the rows


def test_without_a_histogram_a_range_is_at_least_one_common_value_wide(pg_schema, dict_wh):
    dict_wh.execute(f"CREATE TABLE {pg_schema}.few (id int PRIMARY KEY, grade int NOT NULL)")
    dict_wh.execute(
        f"INSERT INTO {pg_schema}.few SELECT g, g % 11 FROM generate_series(1, 20000) g"
    )
    dict_wh.execute(f"ANALYZE {pg_schema}.few")
    text = f"SELECT id FROM {pg_schema}.few WHERE grade BETWEEN $1 AND $2"
    priced, parameters = windows.priced_text(
        dict_wh, text, parsing.shape_of(text), catalog(dict_wh)
    )
    assert parameters == 0
    share = dict_wh.execute(
        f"SELECT avg(({priced.split('WHERE ')[1]})::int)::float AS share FROM {pg_schema}.few"
    ).fetchone()["share"]
    assert share == pytest.approx(1 / 11, abs=0.01)


@pytest.mark.django_db
def test_a_wide_window_on_a_scattered_column_is_not_worth_an_index(shop, run_statement, settings):
    # Run with a narrow window, the generic plan's 0.5 % guess would call an index on
    # either column a win. Priced at the window the operator expects (10 % here), only
    # the column the table is ordered by (created_at, inserted in order) still pays off;
    # customer_id is spread over every page.
    settings.QUERIES_ADVISOR_RANGE_WINDOW = 0.1
    run_statement("SELECT * FROM {s}.orders WHERE customer_id BETWEEN %s AND %s", shop, [5, 6])
    run_statement(
        "SELECT * FROM {s}.orders WHERE created_at >= %s AND created_at < %s",
        shop,
        ["2026-01-01", "2026-01-02"],
    )
    advice = advisor.suggest_indexes("main", containing=shop)
    assert suggested(advice, shop) == {("orders", ("created_at",))}
    settings.QUERIES_ADVISOR_RANGE_WINDOW = 0.001  # the generic plan's guess, about
    advice = advisor.suggest_indexes("main", containing=shop)
    assert suggested(advice, shop) == {("orders", ("created_at",)), ("orders", ("customer_id",))}


def nested_loop(outer_rows: float, index: str, rows_per_lookup: float) -> dict:
    return {
        "Plan": {
            "Node Type": "Gather",
            "Workers Planned": 2,
            "Plan Rows": 10,
            "Plans": [
                {
                    "Node Type": "Nested Loop",
                    "Plan Rows": outer_rows * rows_per_lookup,
                    "Plans": [
                        {"Node Type": "Seq Scan", "Relation Name": "c", "Plan Rows": outer_rows},
                        {
                            "Node Type": "Index Scan",
                            "Relation Name": "orders",
                            "Index Name": index,
                            "Plan Rows": rows_per_lookup,
                        },
                    ],
                }
            ],
        }
    }


def test_fetches_count_every_loop_of_a_nested_loop_and_every_process():
    plan = nested_loop(400, "<1>btree_orders_customer_id", 200)
    assert scatter.random_fetches(plan["Plan"]) == [
        ("orders", "<1>btree_orders_customer_id", 400 * 200 * 3)
    ]


def test_a_plan_rereading_its_table_at_random_is_not_a_gain(shop, dict_wh):
    table = dict_wh.execute(
        "SELECT n.nspname AS schema, c.relname AS table, c.relpages FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %s::regclass",
        [f"{shop}.orders"],
    ).fetchone()
    pages = table["relpages"]
    many = nested_loop(pages, "<1>btree_orders_customer_id", 10)  # 30 fetches per page
    few = nested_loop(1, "<1>btree_orders_customer_id", 10)
    real = nested_loop(pages, "orders_pkey", 10)  # an index that exists: the planner's call
    assert scatter.rereads_table(dict_wh, many, [(table, ("customer_id",))])
    assert not scatter.rereads_table(dict_wh, few, [(table, ("customer_id",))])
    assert not scatter.rereads_table(dict_wh, real, [(table, ("customer_id",))])
    # created_at follows the table's order: its lookups read neighbouring rows
    assert not scatter.rereads_table(dict_wh, many, [(table, ("created_at",))])
