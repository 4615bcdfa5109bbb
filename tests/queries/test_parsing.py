"""pglast reads each statement's shape: kind, parameters, predicates, order."""

import pytest

from partitions.queries import parsing


def columns(uses):
    return [(u.table.name if u.table else None, u.column) for u in uses]


def test_it_reads_equality_range_and_order_by():
    shape = parsing.shape_of(
        "SELECT * FROM s.orders o WHERE o.customer_id = $1 AND created_at > $2 "
        "ORDER BY o.created_at DESC LIMIT $3"
    )
    assert shape.kind == "select" and shape.parameters == 3 and shape.read_only
    assert columns(shape.equality) == [("orders", "customer_id")]
    assert columns(shape.ranges) == [("orders", "created_at")]
    assert [(u.column, desc) for u, desc in shape.order_by] == [("created_at", True)]


def test_it_reads_join_columns_of_both_sides():
    shape = parsing.shape_of("SELECT 1 FROM a JOIN b ON b.a_id = a.id WHERE b.kind IN ($1, $2)")
    assert columns(shape.joins) == [("b", "a_id"), ("a", "id")]
    assert columns(shape.equality) == [("b", "kind")]


def test_it_reads_a_function_of_a_column_as_an_expression():
    shape = parsing.shape_of(
        "SELECT 1 FROM t o WHERE lower(o.email) = $1 AND date_trunc('day', ts) >= '2026-01-01'"
    )
    assert [(u.column, u.expression) for u in shape.equality] == [("email", "lower(email)")]
    computed = parsing.shape_of("SELECT 1 FROM t WHERE lower(email) = lower($1) AND d > $2 + 7")
    assert [(u.column, u.expression) for u in computed.equality] == [("email", "lower(email)")]
    assert [u.column for u in computed.ranges] == ["d"]
    assert [(u.column, u.expression) for u in shape.ranges] == [("ts", "date_trunc('day', ts)")]


def test_it_reads_a_prefix_like_as_a_range_and_says_why_for_the_others():
    shape = parsing.shape_of(
        "SELECT 1 FROM t WHERE name LIKE 'ab%' AND note LIKE '%x%' AND code LIKE $1 "
        "AND title ILIKE 'a%' AND date_trunc($2, ts) = $3"
    )
    assert [(u.column, u.prefix) for u in shape.ranges] == [("name", True)]
    assert columns(u.use for u in shape.unindexable) == [
        ("t", "note"),
        ("t", "code"),
        ("t", "title"),
        ("t", "ts"),
    ]
    reasons = [u.reason for u in shape.unindexable]
    assert reasons[0].startswith("leading-wildcard LIKE on note")
    assert reasons[1].startswith("LIKE with a $n pattern on code")
    assert reasons[2].startswith("ILIKE or NOT LIKE on title")
    assert reasons[3].startswith("a function of ts (with a $n argument)")
    assert shape.equality == []


def test_it_reads_or_on_one_column_as_equalities_and_or_across_columns_as_unservable():
    shape = parsing.shape_of("SELECT 1 FROM t WHERE (a = $1 OR a = $2) AND (b = $3 OR c > $4)")
    assert columns(shape.equality) == [("t", "a")]
    assert [columns(group) for group in shape.any_of] == [[("t", "b"), ("t", "c")]]
    assert "OR across columns b, c" in shape.unindexable[0].reason


def test_it_reads_scalar_subqueries_in_the_select_list_and_in_comparisons():
    shape = parsing.shape_of(
        "SELECT o.id, (SELECT max(p.paid_at) FROM payments p WHERE p.order_id = o.id) "
        "FROM orders o WHERE o.total > (SELECT avg(total) FROM orders WHERE region = $1)"
    )
    assert ("payments", "order_id") in columns(shape.joins)
    # unqualified inside the subquery: the advisor finds the one table that has it
    assert [u.column for u in shape.equality] == ["region"]
    assert ("orders", "total") not in columns(shape.ranges)  # compared to a subquery


def test_it_reads_in_lists_any_arrays_is_null_and_union_branches():
    shape = parsing.shape_of(
        "SELECT id FROM a WHERE k IN ($1, $2) AND m = ANY($3) AND deleted_at IS NULL "
        "UNION ALL SELECT id FROM b WHERE j = $4"
    )
    assert columns(shape.equality) == [("a", "k"), ("a", "m"), ("a", "deleted_at"), ("b", "j")]


def test_it_tells_a_select_that_writes_or_locks_from_a_plain_one():
    assert not parsing.shape_of("SELECT * FROM t FOR UPDATE").read_only
    assert not parsing.shape_of("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d").read_only
    assert not parsing.shape_of("SELECT * INTO copy FROM t").read_only


def test_it_classifies_ddl_and_dml():
    assert parsing.shape_of("CREATE TABLE t (id int)").kind == "ddl"
    assert parsing.shape_of("DROP TABLE t").kind == "ddl"
    assert parsing.shape_of("UPDATE t SET a = 1 WHERE id = $1").kind == "update"
    assert parsing.shape_of("VACUUM t").kind == "utility"


def test_it_rejects_unparsable_text_and_several_statements():
    with pytest.raises(parsing.UnparsableStatement, match="parser rejects"):
        parsing.shape_of("SELEC 1")
    with pytest.raises(parsing.UnparsableStatement, match="one statement"):
        parsing.shape_of("SELECT 1; DROP TABLE t")


@pytest.mark.parametrize(
    ("text", "housekeeping"),
    [
        ("SELECT * FROM shop.orders WHERE id = $1", False),
        ("INSERT INTO shop.orders (id) VALUES ($1)", False),
        ("UPDATE shop.orders SET note = $1 WHERE id = $2", False),
        ("SELECT pg_sleep($1)", False),
        ("INSERT INTO shop.orders SELECT g FROM generate_series($1, $2) g", True),
        ("CREATE INDEX orders_status_idx ON shop.orders (status)", True),
        ("VACUUM ANALYZE shop.orders", True),
        ("SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace", True),
        ("SELECT * FROM information_schema.columns WHERE table_name = $1", True),
        ("SELECT * FROM pg_catalog.pg_stat_activity a JOIN shop.orders o ON o.id = a.pid", False),
    ],
)
def test_it_tells_housekeeping_from_the_workload(text, housekeeping):
    assert parsing.is_housekeeping(text) is housekeeping
