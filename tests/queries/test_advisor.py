"""Index suggestions against a real workload: hypopg prices each candidate."""

import psycopg
import pytest
from psycopg import sql

from partitions.queries import advisor


def suggest(schema):
    return advisor.suggest_indexes("main", min_mean_ms=0, containing=schema)


def suggested(advice, schema):
    return {(s.table, tuple(s.columns)) for s in advice.suggestions if s.schema == schema}


@pytest.mark.django_db
def test_it_suggests_an_index_for_equality_on_a_selective_column(shop, run_statement):
    run_statement("SELECT * FROM {s}.orders WHERE customer_id = %s", shop, [42])
    advice = suggest(shop)
    assert suggested(advice, shop) == {("orders", ("customer_id",))}
    (suggestion,) = advice.suggestions
    assert suggestion.cost_after < suggestion.cost_before * 0.5
    assert suggestion.size_bytes > 0
    assert suggestion.create_statement == (
        f'CREATE INDEX CONCURRENTLY "orders_customer_id_idx" ON "{shop}"."orders" ("customer_id")'
    )


@pytest.mark.django_db
def test_it_suggests_a_composite_for_equality_then_order_by(shop, run_statement):
    run_statement(
        "SELECT id, total FROM {s}.orders WHERE total = %s ORDER BY created_at DESC LIMIT 10",
        shop,
        [7],
    )
    assert suggested(suggest(shop), shop) == {("orders", ("total", "created_at"))}


@pytest.mark.django_db
def test_it_suggests_nothing_for_a_low_selectivity_column(shop, run_statement):
    run_statement("SELECT * FROM {s}.orders WHERE status = %s", shop, ["paid"])
    assert suggested(suggest(shop), shop) == set()


@pytest.mark.django_db
def test_it_suggests_nothing_for_a_leading_wildcard_like(shop, run_statement):
    run_statement("SELECT count(*) FROM {s}.orders WHERE note LIKE %s", shop, ["%77%"])
    advice = suggest(shop)
    assert suggested(advice, shop) == set()
    assert advice.analysed == 1


@pytest.mark.django_db
def test_it_suggests_nothing_for_an_already_indexed_column(shop, run_statement, wh):
    wh.execute(sql.SQL("CREATE INDEX ON {}.orders (customer_id)").format(sql.Identifier(shop)))
    run_statement("SELECT * FROM {s}.orders WHERE customer_id = %s", shop, [42])
    assert suggested(suggest(shop), shop) == set()


@pytest.mark.django_db
def test_it_merges_statements_one_index_serves(shop, run_statement):
    run_statement("SELECT * FROM {s}.orders WHERE customer_id = %s", shop, [42])
    run_statement(
        "SELECT id FROM {s}.orders WHERE customer_id = %s AND status = %s", shop, [7, "open"]
    )
    run_statement(
        "SELECT o.id FROM {s}.orders o JOIN {s}.customers c ON c.id = o.customer_id "
        "WHERE c.id = %s",
        shop,
        [9],
    )
    advice = suggest(shop)
    # (customer_id) leads (customer_id, status): the wider index serves all three.
    assert suggested(advice, shop) == {("orders", ("customer_id", "status"))}
    assert len(advice.suggestions[0].helps) == 3
    assert all(h.cost_after < h.cost_before * 0.5 for h in advice.suggestions[0].helps)
    assert advice.as_dict()["suggestions"][0]["statement_ids"] == [
        h.queryid for h in advice.suggestions[0].helps
    ]


@pytest.mark.django_db
def test_it_orders_composite_columns_by_selectivity(shop, run_statement):
    run_statement(
        "SELECT id FROM {s}.orders WHERE status = %s AND total = %s AND customer_id > %s",
        shop,
        ["open", 5, 10],
    )
    columns = [s.columns for s in suggest(shop).suggestions]
    assert columns and columns[0][0] == "total"


@pytest.mark.django_db
def test_it_lists_statements_it_cannot_parse_as_skipped(shop, wh):
    advice = advisor.Advice(warehouse="main")
    row = {"queryid": 1, "query": "SELEC oops FROM nowhere", "calls": 1, "mean_ms": 1.0}
    assert advisor.choose_statements([row], advisor.Options(), advice) == []
    assert advice.skipped[0].reason.startswith("unparsable")


@pytest.mark.django_db
def test_it_falls_back_to_heuristics_without_hypopg(own_database, warehouses):
    with psycopg.connect(own_database, autocommit=True) as conn:
        conn.execute("DROP EXTENSION hypopg")
        conn.execute(
            "CREATE TABLE items AS "
            "SELECT g AS id, g % 5000 AS owner FROM generate_series(1, 50000) g"
        )
        conn.execute("ANALYZE items")
        for owner in range(3):
            conn.execute("SELECT * FROM items WHERE owner = %s", [owner])
    warehouses(main=own_database)
    advice = advisor.suggest_indexes("main", min_mean_ms=0)
    assert advice.hypopg is False
    assert "CREATE EXTENSION hypopg" in advice.notes[0]
    assert [(s.table, s.columns, s.method) for s in advice.suggestions] == [
        ("items", ["owner"], "heuristic")
    ]
    assert advice.suggestions[0].cost_after is None
