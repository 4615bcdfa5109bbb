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


def test_it_marks_like_and_functions_of_a_column_unindexable():
    shape = parsing.shape_of("SELECT 1 FROM t WHERE name LIKE '%x%' AND lower(email) = $1")
    assert columns(shape.unindexable) == [("t", "name"), ("t", "email")]
    assert shape.equality == []


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
