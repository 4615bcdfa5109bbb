"""The warehouse layer: one URL grammar, one place that connects, pooled page reads."""

import pytest

from partitions import warehouses
from partitions.warehouses import postgres as connections


def test_one_bigquery_grammar_reads_endpoint_location_and_keeps_every_option():
    found = warehouses.parse(
        "bigquery://acme-prod/sales?location=EU&endpoint=http://127.0.0.1:9050&explain_role=r",
        "analytics",
    )
    assert (found.kind, found.project, found.dataset) == ("bigquery", "acme-prod", "sales")
    assert found.location == "eu"
    assert found.endpoint == "http://127.0.0.1:9050"
    assert found.options["explain_role"] == "r"
    assert warehouses.parse("bigquery://acme-prod/sales").location == "us"


@pytest.mark.parametrize(
    "url",
    [
        "bigquery://acme-prod\n/sales",
        "bigquery://acme-prod/sales\n",
        "bigquery://acme-prod/sales?location=eu%0A",
        "bigquery://x/sales",
        "bigquery://acme-prod/",
    ],
)
def test_names_are_checked_whole_so_a_trailing_newline_is_refused(url):
    with pytest.raises(warehouses.InvalidWarehouseURL):
        warehouses.parse(url)


def test_the_consoles_own_options_stay_out_of_the_libpq_url():
    found = warehouses.parse("postgres://u@h:5432/db?sslmode=disable&explain_role=reader")
    assert found.options == {"sslmode": "disable", "explain_role": "reader"}
    assert found.conninfo == "postgres://u@h:5432/db?sslmode=disable"


def test_an_unknown_name_is_the_consoles_error(settings):
    settings.WAREHOUSES = {"main": "postgres://postgres@127.0.0.1:5432/x"}
    with pytest.raises(warehouses.UnknownWarehouse, match="No PostgreSQL warehouse named 'nope'"):
        warehouses.postgres_url("nope")
    assert warehouses.default_postgres() == "main"


def test_page_reads_share_a_pooled_session_reset_between_pages(settings, warehouse_db):
    settings.WAREHOUSES = {"main": f"{warehouse_db}?explain_role=nobody"}
    with connections.open_warehouse("main") as conn:
        first = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
        conn.execute("SET statement_timeout = '1234ms'")
    with connections.open_warehouse("main") as conn:
        again = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
        timeout = conn.execute("SHOW statement_timeout").fetchone()["statement_timeout"]
        name = conn.execute("SHOW application_name").fetchone()["application_name"]
    assert again == first  # the pool lent the same session
    assert timeout != "1234ms"  # DISCARD ALL reset what the previous page set
    assert name == "opsconsole-queries"
    with connections.open_warehouse("main", own_session=True) as conn:
        own = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
    assert own != first


def test_an_unreachable_warehouse_says_why(settings):
    settings.WAREHOUSES = {"main": "postgres://postgres@127.0.0.1:1/nowhere"}
    with (
        pytest.raises(warehouses.WarehouseUnreachable, match="'main' .* is unreachable"),
        connections.open_warehouse("main"),
    ):
        pass
