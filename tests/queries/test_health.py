"""Index health: duplicate, prefix-redundant, unused, invalid indexes, unindexed
foreign keys and possible N+1 statements, read from a real schema."""

import psycopg
import pytest
from psycopg import sql

from partitions.queries import health


def execute(wh, template, schema):
    wh.execute(sql.SQL(template).format(s=sql.Identifier(schema)))


@pytest.mark.django_db
def test_it_reports_a_duplicate_and_a_prefix_redundant_index(shop, wh):
    execute(wh, "CREATE INDEX orders_total_a ON {s}.orders (total)", shop)
    execute(wh, "CREATE INDEX orders_total_b ON {s}.orders (total)", shop)
    execute(wh, "CREATE INDEX orders_status ON {s}.orders (status)", shop)
    execute(wh, "CREATE INDEX orders_status_total ON {s}.orders (status, total)", shop)
    report = health.index_health("main", schema=shop)
    found = {(r["name"], r["reason"], r["covered_by"]) for r in report.redundant}
    assert found == {
        ("orders_total_b", "duplicate of", "orders_total_a"),
        ("orders_status", "prefix of", "orders_status_total"),
    }


@pytest.mark.django_db
def test_it_reports_an_unused_index_but_not_a_used_one_or_a_primary_key(shop, wh):
    execute(wh, "CREATE INDEX orders_note ON {s}.orders (note)", shop)
    execute(wh, "CREATE INDEX orders_customer ON {s}.orders (customer_id)", shop)
    execute(wh, "SELECT * FROM {s}.orders WHERE customer_id = 5", shop)
    # The cumulative statistics system publishes a backend's counters when it goes idle.
    with psycopg.connect(wh.info.dsn, autocommit=True) as other:
        other.execute("SELECT pg_stat_force_next_flush()")
    wh.execute("SELECT pg_stat_force_next_flush()")
    wh.execute("SELECT pg_stat_clear_snapshot()")
    report = health.index_health("main", schema=shop)
    unused = {r["name"] for r in report.unused}
    assert "orders_note" in unused
    assert "orders_customer" not in unused
    assert "orders_pkey" not in unused


@pytest.mark.django_db
def test_it_reports_a_foreign_key_without_a_supporting_index(shop, wh):
    execute(
        wh,
        "ALTER TABLE {s}.orders ADD CONSTRAINT orders_customer_fk "
        "FOREIGN KEY (customer_id) REFERENCES {s}.customers (id)",
        shop,
    )
    assert [f["name"] for f in health.index_health("main", schema=shop).unindexed_foreign_keys] == [
        "orders_customer_fk"
    ]
    execute(wh, "CREATE INDEX ON {s}.orders (customer_id, created_at)", shop)
    assert health.index_health("main", schema=shop).unindexed_foreign_keys == []


@pytest.mark.django_db
def test_it_reports_an_invalid_index(shop, wh):
    execute(wh, "INSERT INTO {s}.customers VALUES (6001, 'c1@example.com')", shop)
    with pytest.raises(psycopg.errors.UniqueViolation):
        execute(
            wh, "CREATE UNIQUE INDEX CONCURRENTLY customers_email ON {s}.customers (email)", shop
        )
    report = health.index_health("main", schema=shop)
    assert [i["name"] for i in report.invalid] == ["customers_email"]
    assert "customers_email" not in {r["name"] for r in report.unused}


@pytest.mark.django_db
def test_it_flags_a_primary_key_lookup_called_in_a_loop_as_possible_n_plus_one(shop, wh, settings):
    settings.QUERIES_N_PLUS_ONE_CALLS = 300
    query = sql.SQL("SELECT email FROM {}.customers WHERE id = %s").format(sql.Identifier(shop))
    for customer in range(1, 301):
        wh.execute(query, [customer])
    many_rows = sql.SQL("SELECT id FROM {}.orders WHERE customer_id = %s").format(
        sql.Identifier(shop)
    )
    for customer in range(1, 301):
        wh.execute(many_rows, [customer])
    report = health.index_health("main", schema=shop)
    assert [(n["table"], n["calls"], n["rows_per_call"]) for n in report.n_plus_one] == [
        (f"{shop}.customers", 300, 1.0)
    ]
