"""Expression indexes, LIKE prefixes with their operator class, OR and scalar subqueries:
each suggestion priced by hypopg, then really built to show the planner uses it."""

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from partitions.queries import advisor, parsing, pg
from partitions.queries.candidates import Catalog, candidates
from partitions.queries.forms import ApplyIndexForm


def suggested(advice, schema):
    return {(s.table, tuple(s.columns)) for s in advice.suggestions if s.schema == schema}


def ddl(wh, schema, text):
    wh.execute(sql.SQL(text).format(s=sql.Identifier(schema)))


@pytest.fixture
def people(pg_schema, wh):
    """50,000 people: mixed-case distinct emails, a distinct `seen` timestamp (no zone),
    and rows as wide as real ones (a seq scan reads 1,700 pages)."""
    ddl(
        wh,
        pg_schema,
        """CREATE TABLE {s}.people AS
           SELECT g AS id, 'User' || g || '@Example.com' AS email,
                  timestamp '2026-01-01' + g * interval '7 minutes' AS seen,
                  repeat('x', 200) AS bio
           FROM generate_series(1, 50000) g""",
    )
    ddl(wh, pg_schema, "ANALYZE {s}.people")
    return pg_schema


def uses_index(wh, schema, query: str, index: str) -> bool:
    plan = wh.execute(
        sql.SQL("EXPLAIN (FORMAT JSON) " + query).format(s=sql.Identifier(schema))
    ).fetchone()[0]
    return f'"Index Name": "{index}"' in str(plan).replace("'", '"')


@pytest.mark.django_db
def test_it_suggests_an_expression_index_the_planner_uses(people, run_statement, wh):
    run_statement("SELECT * FROM {s}.people WHERE lower(email) = %s", people, ["user7@example.com"])
    advice = advisor.suggest_indexes("main", containing=people)
    assert suggested(advice, people) == {("people", ("lower(email)",))}
    (suggestion,) = advice.suggestions
    assert suggestion.name == "people_lower_email_idx"
    assert suggestion.cost_after < suggestion.cost_before * 0.5
    assert "(pg_catalog.lower(email))" in suggestion.create_statement
    pg.create_index_concurrently(wh, people, "people", suggestion.columns, suggestion.name)
    ddl(wh, people, "ANALYZE {s}.people")
    query = "SELECT * FROM {s}.people WHERE lower(email) = 'user7@example.com'"
    assert uses_index(wh, people, query, suggestion.name)
    # built: the same expression is now "already indexed", not suggested again
    again = advisor.suggest_indexes("main", containing=people)
    assert again.suggestions == []
    assert again.why_not[0].reason == f"already indexed by {people}.{suggestion.name}"


@pytest.mark.django_db
def test_it_suggests_a_like_prefix_with_the_pattern_operator_class(
    people, run_statement, wh, warehouse_db
):
    ddl(
        wh,
        people,
        "CREATE VIEW {s}.user777 AS SELECT * FROM {s}.people WHERE email LIKE 'User777%%'",
    )
    run_statement("SELECT id FROM {s}.user777 WHERE bio <> %s", people, ["-"])
    with psycopg.connect(warehouse_db, row_factory=dict_row) as catalog:
        oid = pg.resolve_table(catalog, people, "people")["oid"]
        opclass = pg.pattern_opclass(catalog, oid, "email")  # "" under the C collation
    expected = "email" if opclass == "" else f"email {opclass}"
    advice = advisor.suggest_indexes("main", containing=people)
    assert suggested(advice, people) == {("people", (expected,))}
    pg.create_index_concurrently(wh, people, "people", [expected], "people_prefix_idx")
    ddl(wh, people, "ANALYZE {s}.people")
    query = "SELECT id FROM {s}.user777 WHERE bio <> '-'"
    assert uses_index(wh, people, query, "people_prefix_idx")


@pytest.mark.django_db
def test_it_says_why_not_for_a_leading_wildcard_like(people, run_statement, wh):
    ddl(wh, people, "CREATE VIEW {s}.any777 AS SELECT * FROM {s}.people WHERE email LIKE '%%777%%'")
    run_statement("SELECT id FROM {s}.any777", people)
    advice = advisor.suggest_indexes("main", containing=people)
    assert advice.suggestions == []
    assert advice.why_not[0].reason.startswith("leading-wildcard LIKE on email")


@pytest.mark.django_db
def test_it_serves_or_on_one_column_with_one_index(shop, run_statement):
    run_statement(
        "SELECT * FROM {s}.orders WHERE customer_id = %s OR customer_id = %s", shop, [4, 5]
    )
    advice = advisor.suggest_indexes("main", containing=shop)
    assert suggested(advice, shop) == {("orders", ("customer_id",))}


@pytest.mark.django_db
def test_it_suggests_an_index_per_branch_of_an_or_across_columns_together(shop, run_statement, wh):
    query = "SELECT * FROM {s}.orders WHERE customer_id = %s OR total = %s"
    run_statement(query, shop, [4, 5])
    advice = advisor.suggest_indexes("main", containing=shop)
    assert suggested(advice, shop) == {("orders", ("customer_id",)), ("orders", ("total",))}
    by_name = {s.name: s for s in advice.suggestions}
    assert by_name["orders_customer_id_idx"].together_with == ["orders_total_idx"]
    assert by_name["orders_total_idx"].together_with == ["orders_customer_id_idx"]
    assert all(s.size_bytes > 0 for s in advice.suggestions)
    for s in advice.suggestions:
        pg.create_index_concurrently(wh, shop, "orders", s.columns, s.name)
    ddl(wh, shop, "ANALYZE {s}.orders")
    plan = str(
        wh.execute(
            sql.SQL(
                "EXPLAIN (FORMAT JSON) " + query.replace("%s", "4", 1).replace("%s", "5")
            ).format(s=sql.Identifier(shop))
        ).fetchone()[0]
    )
    assert "BitmapOr" in plan


@pytest.mark.django_db
def test_it_suggests_neither_when_one_branch_of_an_or_cannot_use_an_index(shop, run_statement):
    run_statement("SELECT * FROM {s}.orders WHERE customer_id = %s OR status = %s", shop, [4, "x"])
    advice = advisor.suggest_indexes("main", containing=shop)
    assert advice.suggestions == []  # all or nothing: status (3 values) needs a seq scan
    assert advice.why_not[0].reason.startswith("the planner prefers its current plan")


@pytest.mark.django_db
def test_it_reads_a_scalar_subquery_in_the_select_list(shop, run_statement):
    run_statement(
        "SELECT c.id, (SELECT count(*) FROM {s}.orders o WHERE o.customer_id = c.id) "
        "FROM {s}.customers c WHERE c.id > %s",
        shop,
        [5900],
    )
    advice = advisor.suggest_indexes("main", containing=shop)
    assert suggested(advice, shop) == {("orders", ("customer_id",))}


@pytest.mark.django_db
def test_the_apply_form_takes_an_expression_and_refuses_a_user_function():
    base = {"warehouse": "main", "schema": "s", "table": "people", "name": "i", "confirm": "i"}
    form = ApplyIndexForm({**base, "columns": "lower(email), seen"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["columns"] == ["lower(email)", "seen"]
    form = ApplyIndexForm({**base, "columns": "public.evil(email)"})
    assert not form.is_valid()
    assert "built-in functions" in form.errors["columns"][0]


@pytest.mark.django_db
def test_it_offers_a_multi_column_join_key_as_one_candidate(pg_schema, wh, warehouse_db):
    ddl(
        wh,
        pg_schema,
        "CREATE TABLE {s}.lines AS SELECT g AS id, g % 1000 AS part, g % 97 AS supplier "
        "FROM generate_series(1, 100000) g",
    )
    ddl(wh, pg_schema, "CREATE TABLE {s}.supply (id int PRIMARY KEY, part int, supplier int)")
    ddl(wh, pg_schema, "ANALYZE {s}.lines")
    shape = parsing.shape_of(
        f'SELECT count(*) FROM "{pg_schema}".supply s JOIN "{pg_schema}".lines l '
        "ON l.part = s.part AND l.supplier = s.supplier WHERE s.id = $1"
    )
    with psycopg.connect(warehouse_db, autocommit=True, row_factory=dict_row) as conn:
        found = [columns for _, columns in candidates(shape, Catalog(conn))]
    # part (1,000 values) leads supplier (97): the key's columns by selectivity
    assert ("part", "supplier") in found and ("part",) in found and ("supplier",) in found


@pytest.mark.django_db
def test_it_says_when_hypopg_cannot_price_an_expression_on_a_later_table(people, run_statement, wh):
    ddl(wh, people, "CREATE TABLE {s}.teams AS SELECT g AS id FROM generate_series(0, 9) g")
    ddl(wh, people, "ANALYZE {s}.teams")
    run_statement(
        "SELECT p.id FROM {s}.teams t JOIN {s}.people p ON p.id %% 10 = t.id "
        "WHERE lower(p.email) = %s",
        people,
        ["user7@example.com"],
    )
    advice = advisor.suggest_indexes("main", containing=people)
    assert advice.suggestions == []  # a missed suggestion, never a wrong one
    assert "cannot be priced by hypopg" in advice.why_not[0].reason
