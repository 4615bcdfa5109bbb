"""Slow statements from pg_stat_statements, their trend from snapshots, reset stats."""

import psycopg
import pytest

from opsconsole.models import AuditEvent
from partitions.queries import slow
from partitions.queries.models import StatementSnapshot
from partitions.queries.tasks import snapshot_statements
from partitions.warehouses import ExtensionMissing, PermissionDenied


@pytest.mark.django_db
def test_it_lists_statements_above_the_threshold_with_their_figures(shop, run_statement):
    run_statement("SELECT pg_sleep(0.03), * FROM {s}.customers WHERE id = %s", shop, [1], times=2)
    run_statement("SELECT email FROM {s}.customers WHERE id = %s", shop, [2], times=5)

    def lookups(**filters):
        rows = slow.slow_statements("main", containing=shop, **filters)
        return [r for r in rows if "customers WHERE id" in r["query"]]

    assert [r["calls"] for r in lookups(min_mean_ms=0, order="calls")] == [5, 2]
    slow_only = lookups(min_mean_ms=25)
    assert len(slow_only) == 1
    row = slow_only[0]
    assert "pg_sleep" in row["query"] and "$1" in row["query"]
    assert row["calls"] == 2 and row["mean_ms"] >= 25 and row["max_ms"] >= row["mean_ms"]
    assert row["share_percent"] > 0 and row["shared_blks_hit"] + row["shared_blks_read"] > 0


@pytest.mark.django_db
def test_it_takes_snapshots_and_draws_the_mean_per_interval(own_database, warehouses):
    warehouses(main=own_database)
    with psycopg.connect(own_database, autocommit=True) as conn:
        conn.execute("SELECT pg_sleep(0.01)")
        assert snapshot_statements()["main"].endswith("statements")
        for _ in range(3):
            conn.execute("SELECT pg_sleep(0.04)")
        slow.take_snapshot("main")
    (row,) = [r for r in slow.slow_statements("main", min_mean_ms=0) if "pg_sleep" in r["query"]]
    snaps = StatementSnapshot.objects.filter(queryid=row["queryid"])
    assert snaps.count() == 2
    first, second = row["trend"]
    assert 5 <= first < 30 and 35 <= second < 80  # the second interval's own mean
    assert len(row["sparkline"].split()) == 2


@pytest.mark.django_db
def test_it_resets_the_warehouse_stats_with_the_typed_name(own_database, warehouses, make_user):
    warehouses(main=own_database)
    admin = make_user("admin")
    with psycopg.connect(own_database, autocommit=True) as conn:
        conn.execute("SELECT pg_sleep(0.01)")
    assert [r for r in slow.slow_statements("main", min_mean_ms=0) if "pg_sleep" in r["query"]]
    with pytest.raises(slow.ConfirmationMismatch):
        slow.reset_stats(admin, "main", "mian")
    assert not AuditEvent.objects.filter(action="queries.reset_stats").exists()
    slow.reset_stats(admin, "main", "main")
    remaining = [r["query"] for r in slow.slow_statements("main", min_mean_ms=0)]
    assert not [q for q in remaining if "pg_sleep" in q]
    event = AuditEvent.objects.get(action="queries.reset_stats")
    assert (event.actor, event.target, event.outcome) == (admin, "main", "ok")


@pytest.mark.django_db
def test_it_says_how_to_enable_pg_stat_statements_when_missing(own_database, warehouses):
    warehouses(main=own_database)
    with psycopg.connect(own_database, autocommit=True) as conn:
        conn.execute("DROP EXTENSION pg_stat_statements")
    with pytest.raises(ExtensionMissing, match="CREATE EXTENSION pg_stat_statements"):
        slow.slow_statements("main")


@pytest.fixture
def limited_role(own_database):
    """A login role that may read but not reset pg_stat_statements."""
    name = f"q_limited_{own_database[-8:]}"
    with psycopg.connect(own_database, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN").format(psycopg.sql.Identifier(name)))
    yield own_database.replace("postgres@", f"{name}@")
    with psycopg.connect(own_database, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP OWNED BY {}").format(psycopg.sql.Identifier(name)))
        conn.execute(psycopg.sql.SQL("DROP ROLE {}").format(psycopg.sql.Identifier(name)))


@pytest.mark.django_db
def test_it_explains_a_refused_reset_instead_of_failing(limited_role, warehouses, make_user):
    warehouses(main=limited_role)
    with pytest.raises(PermissionDenied, match="refused the console.s role: permission denied"):
        slow.reset_stats(make_user("admin"), "main", "main")
    assert AuditEvent.objects.get(action="queries.reset_stats").outcome == "failed"


@pytest.mark.django_db
def test_it_hides_ddl_and_bulk_loads_unless_asked(shop, run_statement):
    run_statement("SELECT email FROM {s}.customers WHERE id = %s", shop, [3], times=2)
    run_statement(
        "INSERT INTO {s}.customers SELECT g + 1000000, 'x' FROM generate_series(1, %s) g",
        shop,
        [2],
        times=1,
    )
    run_statement("CREATE INDEX ON {s}.customers (email)", shop, times=1)

    def shown(**filters) -> set[str]:
        rows = slow.slow_statements("main", min_mean_ms=0, containing=shop, **filters)
        return {r["query"].split()[0] for r in rows}

    assert shown() == {"SELECT"}
    assert {"SELECT", "INSERT", "CREATE", "ANALYZE"} <= shown(housekeeping=True)
