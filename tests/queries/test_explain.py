"""EXPLAIN as a plan tree with findings; ANALYZE only for SELECT, rolled back."""

import pytest
from psycopg import sql

from partitions.queries.explain import NotExplainable, explain_statement


def q(template, schema):
    return template.format(s=f'"{schema}"')


@pytest.mark.django_db
def test_it_flags_a_sequential_scan_of_a_big_table(shop):
    result = explain_statement("main", q("SELECT * FROM {s}.orders WHERE total = 5", shop))
    assert result.mode == "plan for the statement as written"
    scan = next(n for n in result.nodes if n.relation == "orders")
    assert scan.node_type == "Seq Scan"
    assert any(f.startswith("sequential scan of a big table") for f in scan.flags)
    assert any(f.startswith("costly") for f in scan.flags)


@pytest.mark.django_db
def test_it_explains_a_parameterised_statement_with_a_generic_plan(shop):
    result = explain_statement(
        "main", q("SELECT * FROM {s}.orders WHERE customer_id = $1 LIMIT $2", shop)
    )
    assert "force_generic_plan" in result.mode
    assert [n.node_type for n in result.nodes][:1] == ["Limit"]


@pytest.mark.django_db
def test_it_explains_with_sample_values_as_a_custom_plan(shop):
    result = explain_statement(
        "main", q("SELECT * FROM {s}.orders WHERE total = $1", shop), values=["5"]
    )
    assert result.mode == "custom plan for the sample values given"
    assert "Filter: (orders.total = 5)" in result.nodes[-1].detail


@pytest.mark.django_db
def test_it_runs_explain_analyze_of_a_select_and_reports_actual_rows(shop):
    result = explain_statement(
        "main",
        q("SELECT count(*) FROM {s}.orders WHERE total = $1", shop),
        analyze=True,
        values=["5"],
    )
    assert result.analyze and result.execution_ms is not None
    scan = next(n for n in result.nodes if n.relation == "orders")
    assert scan.actual_rows == 60


@pytest.mark.django_db
def test_it_refuses_explain_analyze_of_anything_but_a_plain_select(shop, wh):
    for statement in (
        "DELETE FROM {s}.orders",
        "SELECT * FROM {s}.orders FOR UPDATE",
        "WITH d AS (DELETE FROM {s}.orders RETURNING id) SELECT count(*) FROM d",
    ):
        with pytest.raises(NotExplainable, match="only for plain SELECT"):
            explain_statement("main", q(statement, shop), analyze=True)
    count = wh.execute(sql.SQL("SELECT count(*) FROM {}.orders").format(sql.Identifier(shop)))
    assert count.fetchone()[0] == 60_000


@pytest.mark.django_db
def test_it_rolls_back_what_an_analyzed_select_would_write(shop, wh):
    s = sql.Identifier(shop)
    wh.execute(sql.SQL("CREATE TABLE {}.log (id int)").format(s))
    wh.execute(
        sql.SQL(
            "CREATE FUNCTION {}.write_log() RETURNS int LANGUAGE sql AS "
            "'INSERT INTO {}.log VALUES (1) RETURNING id'"
        ).format(s, s)
    )
    with pytest.raises(NotExplainable, match="write_log"):
        explain_statement("main", q("SELECT {s}.write_log()", shop), analyze=True)
    assert wh.execute(sql.SQL("SELECT count(*) FROM {}.log").format(s)).fetchone()[0] == 0


@pytest.mark.django_db
def test_it_stops_explain_analyze_at_the_statement_timeout(shop, settings):
    settings.QUERIES_EXPLAIN_TIMEOUT_MS = 200
    with pytest.raises(NotExplainable, match="200 ms statement timeout"):
        explain_statement("main", "SELECT pg_sleep(5)", analyze=True)


@pytest.mark.django_db
def test_it_refuses_ddl_and_unparsable_text():
    with pytest.raises(NotExplainable, match="ddl statement"):
        explain_statement("main", "DROP TABLE whatever")
    with pytest.raises(NotExplainable, match="parser rejects"):
        explain_statement("main", "SELEC 1")


@pytest.mark.django_db
def test_it_wants_sample_values_to_analyze_a_parameterised_statement(shop):
    with pytest.raises(NotExplainable, match="needs sample values"):
        explain_statement("main", q("SELECT * FROM {s}.orders WHERE id = $1", shop), analyze=True)
    with pytest.raises(NotExplainable, match="1 parameter"):
        explain_statement(
            "main", q("SELECT * FROM {s}.orders WHERE id = $1", shop), values=["1", "2"]
        )


@pytest.mark.django_db
def test_it_flags_a_row_estimate_miss_under_analyze(pg_schema, wh):
    s = sql.Identifier(pg_schema)
    # a and b always agree: the planner multiplies their selectivities and misses by 100x.
    wh.execute(
        sql.SQL(
            "CREATE TABLE {}.pairs AS SELECT g % 100 AS a, g % 100 AS b "
            "FROM generate_series(1, 20000) g"
        ).format(s)
    )
    wh.execute(sql.SQL("ANALYZE {}.pairs").format(s))
    result = explain_statement(
        "main", q("SELECT * FROM {s}.pairs WHERE a = 1 AND b = 1", pg_schema), analyze=True
    )
    scan = next(n for n in result.nodes if n.relation == "pairs")
    assert scan.actual_rows == 200
    assert f"row estimate off: planned {scan.plan_rows:.0f}, got 200" in scan.flags
    assert scan.plan_rows <= 20
