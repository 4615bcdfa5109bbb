"""The BigQuery statements of table_sync: they parse as BigQuery, names only validated."""

import pytest
import sqlglot
from sqlglot import exp

from jobs.sync import SyncError
from jobs.sync_bigquery import (
    bigquery_type,
    checkpoint_sql,
    count_keys_sql,
    create_sql,
    delete_sql,
    insert_sql,
    valid,
)
from partitions import warehouses
from partitions.backends.base import PlanRefused
from partitions.backends.bigquery import COLUMN_RE, TABLE_RE, BigQueryBackend

# No client is made: nothing runs.
TARGET = BigQueryBackend(warehouses.parse("bigquery://demo-proj/analytics"))
NAMES = ["id", "line", "amount", "status", "updated_at"]
FIELDS = [
    ("id", "INT64"),
    ("line", "INT64"),
    ("amount", "NUMERIC"),
    ("status", "STRING"),
    ("updated_at", "TIMESTAMP"),
]


def statements(key):
    return [
        create_sql(TARGET, "pay ments-copy", FIELDS),
        checkpoint_sql(TARGET, "pay ments-copy", ["updated_at", *key]),
        delete_sql(TARGET, "pay ments-copy", key),
        insert_sql(TARGET, "pay ments-copy", NAMES),
        count_keys_sql(TARGET, "pay ments-copy", key),
    ]


@pytest.mark.parametrize("key", [["id"], ["id", "line"]])
def test_every_statement_parses_as_bigquery(key):
    for text in statements(key):
        tree = sqlglot.parse_one(text, dialect="bigquery")
        tables = {(t.catalog, t.db, t.name) for t in tree.find_all(exp.Table) if t.name}
        assert tables == {("demo-proj", "analytics", "pay ments-copy")}, (text, tables)
        params = {p.name for p in tree.find_all(exp.Parameter)}
        assert params <= {"keys", "rows"}, text


def test_the_statements_are_what_the_sync_runs():
    create, checkpoint, delete, insert, count = statements(["id"])
    table = "`demo-proj.analytics.pay ments-copy`"
    assert create == (
        f"CREATE TABLE IF NOT EXISTS {table} (`id` INT64, `line` INT64, `amount` NUMERIC,"
        " `status` STRING, `updated_at` TIMESTAMP)"
    )
    assert checkpoint == (
        f"SELECT `updated_at`, `id` FROM {table} ORDER BY `updated_at` DESC, `id` DESC LIMIT 1"
    )
    assert delete == f"DELETE FROM {table} AS tgt WHERE tgt.`id` IN UNNEST(@keys)"
    assert insert == (
        f"INSERT INTO {table} (`id`, `line`, `amount`, `status`, `updated_at`)"
        " SELECT r.`id`, r.`line`, r.`amount`, r.`status`, r.`updated_at` FROM UNNEST(@rows) AS r"
    )
    assert count == f"SELECT COUNT(*) FROM {table} AS tgt WHERE tgt.`id` IN UNNEST(@keys)"
    composite = delete_sql(TARGET, "t", ["id", "line"])
    assert composite.endswith(
        "WHERE EXISTS (SELECT 1 FROM UNNEST(@keys) AS k"
        " WHERE k.`id` = tgt.`id` AND k.`line` = tgt.`line`)"
    )


@pytest.mark.parametrize("bad", ["a`b", "x; DROP TABLE y", "ds.table", "", "a\nb"])
def test_invalid_table_names_never_reach_sql(bad):
    with pytest.raises(SyncError):
        valid(TABLE_RE, bad, "table name")
    with pytest.raises(PlanRefused):
        insert_sql(TARGET, bad, NAMES)


def test_a_final_newline_is_refused_too():
    # The backend's patterns end in `$`, which also matches before a final newline.
    with pytest.raises(SyncError):
        valid(TABLE_RE, "payments\n", "table name")
    with pytest.raises(SyncError):
        valid(COLUMN_RE, "id\n", "column name")


@pytest.mark.parametrize("bad", ["a`b", "1st", "a b", "x)--"])
def test_invalid_column_names_never_reach_sql(bad):
    with pytest.raises(PlanRefused):
        insert_sql(TARGET, "t", ["id", bad])
    with pytest.raises(PlanRefused):
        delete_sql(TARGET, "t", [bad])


def test_only_known_types_reach_ddl():
    with pytest.raises(SyncError, match="not a BigQuery type"):
        create_sql(TARGET, "t", [("id", "INT64) OPTIONS(x=1")])


@pytest.mark.parametrize(
    ("pg", "bq"),
    [
        ("bigint", "INT64"),
        ("integer", "INT64"),
        ("numeric", "NUMERIC"),
        ("numeric(12,2)", "NUMERIC"),
        ("numeric(38,9)", "NUMERIC"),
        ("text", "STRING"),
        ("character varying(20)", "STRING"),
        ("character(3)", "STRING"),
        ("timestamp with time zone", "TIMESTAMP"),
        ("timestamp(3) without time zone", "TIMESTAMP"),
        ("date", "DATE"),
        ("boolean", "BOOL"),
        ("jsonb", "STRING"),
        ("json", "STRING"),
    ],
)
def test_postgresql_types_map_to_bigquery(pg, bq):
    assert bigquery_type("c", pg) == bq


@pytest.mark.parametrize("pg", ["inet", "bytea", "integer[]", "interval", "numeric(40,2)"])
def test_unmappable_types_are_refused(pg):
    with pytest.raises(SyncError, match="Column 'c'"):
        bigquery_type("c", pg)
