"""EXPLAIN ANALYZE cannot act: functions that reach beyond the rolled-back query are
refused by name, a second real session (the victim) survives, and each ANALYZE is
audited."""

import uuid

import psycopg
import pytest
from django.core.management import CommandError, call_command
from psycopg import sql

from opsconsole.models import AuditEvent
from partitions import warehouses
from partitions.queries.explain import ExplainRefused, NotExplainable, explain_statement


@pytest.fixture
def victim(warehouse_db):
    """Another session on the warehouse, as an operator's colleague would have."""
    with psycopg.connect(warehouse_db, autocommit=True) as conn:
        yield conn


def pid_of(conn) -> int:
    return conn.execute("SELECT pg_backend_pid()").fetchone()[0]


def advisory_locks(wh, key: int) -> int:
    row = wh.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s", [key]
    )
    return row.fetchone()[0]


@pytest.mark.django_db
def test_it_refuses_to_terminate_another_session_and_the_victim_lives(victim):
    pid = pid_of(victim)
    with pytest.raises(ExplainRefused, match=r"pg_catalog\.pg_terminate_backend is volatile"):
        explain_statement("main", f"SELECT pg_terminate_backend({pid})", analyze=True)
    assert victim.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.django_db
def test_it_refuses_a_session_advisory_lock_that_would_survive_the_rollback(wh):
    key = 90_000 + uuid.uuid4().int % 10_000
    with pytest.raises(ExplainRefused, match="pg_advisory_lock"):
        explain_statement("main", f"SELECT pg_advisory_lock({key})", analyze=True)
    assert advisory_locks(wh, key) == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "statement, named",
    [
        ("SELECT pg_cancel_backend(1)", "pg_cancel_backend"),
        ("SELECT pg_reload_conf()", "pg_reload_conf"),
        ("SELECT set_config('work_mem', '1GB', false)", "set_config"),
        ("SELECT pg_read_file('postgresql.conf')", "pg_read_file"),
        ("SELECT lo_import('/etc/passwd')", "lo_import"),
        ("SELECT query_to_xml('SELECT pg_reload_conf()', true, true, '')", "query_to_xml"),
        ("SELECT * FROM pg_ls_dir('.') AS f", "pg_ls_dir"),
        ("SELECT 1 WHERE (SELECT pg_notify('c', 'x')) IS NULL", "pg_notify"),
        ("SELECT dblink_exec('dbname=x', 'SELECT 1')", "dblink_exec is unknown"),
    ],
)
def test_it_refuses_each_function_that_acts_beyond_the_query(statement, named):
    with pytest.raises(ExplainRefused, match=named):
        explain_statement("main", statement, analyze=True)


@pytest.mark.django_db
def test_it_refuses_a_view_that_hides_a_volatile_function(pg_schema, wh, victim):
    s = sql.Identifier(pg_schema)
    wh.execute(
        sql.SQL(
            "CREATE VIEW {}.sessions AS SELECT pid, pg_terminate_backend(pid) AS gone "
            "FROM pg_stat_activity"
        ).format(s)
    )
    wh.execute(sql.SQL("CREATE VIEW {}.outer_view AS SELECT * FROM {}.sessions").format(s, s))
    with pytest.raises(ExplainRefused, match=r"view .*sessions calls function pg_catalog"):
        explain_statement("main", f'SELECT count(*) FROM "{pg_schema}".outer_view', analyze=True)
    assert victim.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.django_db
def test_it_refuses_a_function_that_lies_about_its_volatility(pg_schema, wh, victim):
    s = sql.Identifier(pg_schema)
    wh.execute(
        sql.SQL(
            "CREATE FUNCTION {}.harmless(p int) RETURNS boolean IMMUTABLE LANGUAGE plpgsql "
            "AS $$ BEGIN RETURN pg_terminate_backend(p); END $$"
        ).format(s)
    )
    wh.execute(
        sql.SQL("CREATE OPERATOR {}.=== (FUNCTION = {}.harmless, RIGHTARG = int)").format(s, s)
    )
    pid = pid_of(victim)
    with pytest.raises(ExplainRefused, match=r"harmless is outside the trusted schemas"):
        explain_statement("main", f'SELECT "{pg_schema}".harmless({pid})', analyze=True)
    with pytest.raises(ExplainRefused, match=r"operator .*=== is outside the trusted schemas"):
        explain_statement("main", f"SELECT OPERATOR({pg_schema}.===) {pid}", analyze=True)
    assert victim.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.django_db
def test_it_still_analyzes_reads_with_the_documented_volatile_allowlist(shop):
    result = explain_statement(
        "main",
        f'SELECT random(), clock_timestamp(), count(*) FROM "{shop}".orders WHERE total = 5',
        analyze=True,
    )
    assert result.execution_ms is not None


@pytest.mark.django_db
def test_it_audits_every_explain_analyze_with_its_fingerprint_and_outcome(shop, make_user):
    operator = make_user("operator")
    explain_statement("main", f'SELECT count(*) FROM "{shop}".orders', analyze=True, actor=operator)
    with pytest.raises(ExplainRefused):
        explain_statement("main", "SELECT pg_reload_conf()", analyze=True, actor=operator)
    explain_statement("main", "SELECT 1")  # plain EXPLAIN runs nothing: not audited
    events = list(AuditEvent.objects.filter(action="queries.explain_analyze").order_by("id"))
    assert [(e.outcome, e.actor_name, e.target) for e in events] == [
        ("ok", operator.username, "main"),
        ("denied", operator.username, "main"),
    ]
    assert len(events[0].params["fingerprint"]) == 16
    assert "pg_reload_conf" in events[1].params["reason"]
    assert "pg_reload_conf" not in str(events[1].params["fingerprint"])


@pytest.mark.django_db
def test_it_runs_as_the_explain_role_the_warehouse_url_names(shop, wh, settings):
    role = f"ops_explain_{uuid.uuid4().hex[:6]}"
    wh.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    try:
        settings.WAREHOUSES = {"main": f"{settings.WAREHOUSES['main']}?explain_role={role}"}
        # The role was granted nothing on the test's schema: PostgreSQL itself refuses.
        with pytest.raises(NotExplainable, match="permission denied"):
            explain_statement("main", f'SELECT count(*) FROM "{shop}".orders', analyze=True)
        event = AuditEvent.objects.filter(action="queries.explain_analyze").get()
        assert (event.outcome, event.params["role"]) == ("failed", role)
        wh.execute(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                sql.Identifier(shop), sql.Identifier(role)
            )
        )
        wh.execute(
            sql.SQL("GRANT SELECT ON {}.orders TO {}").format(
                sql.Identifier(shop), sql.Identifier(role)
            )
        )
        result = explain_statement("main", f'SELECT count(*) FROM "{shop}".orders', analyze=True)
        assert result.execution_ms is not None
    finally:
        wh.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        wh.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.mark.django_db
def test_the_page_refuses_an_operator_terminating_a_session(client_as, victim):
    client = client_as("operator")
    pid = pid_of(victim)
    response = client.post(
        "/queries/explain/",
        {"warehouse": "main", "statement": f"SELECT pg_terminate_backend({pid})", "analyze": "on"},
    )
    assert response.status_code == 400
    assert "pg_terminate_backend is volatile" in response.content.decode()
    assert victim.execute("SELECT 1").fetchone() == (1,)
    event = AuditEvent.objects.filter(action="queries.explain_analyze").get()
    assert (event.outcome, event.actor_id) == ("denied", client.user.pk)


@pytest.mark.django_db
def test_the_command_refuses_it_too(victim):
    pid = pid_of(victim)
    with pytest.raises(CommandError, match="pg_terminate_backend"):
        call_command(
            "queries",
            "explain",
            "--warehouse",
            "main",
            "--analyze",
            f"SELECT pg_terminate_backend({pid})",
        )
    assert victim.execute("SELECT 1").fetchone() == (1,)
    assert AuditEvent.objects.get(action="queries.explain_analyze").actor_name.startswith("cli:")


def test_the_warehouse_url_names_the_explain_role_and_libpq_never_sees_it():
    found = warehouses.parse("postgres://u@h:5432/db?sslmode=prefer&explain_role=ops_explain")
    assert found.options["explain_role"] == "ops_explain"
    assert found.conninfo == "postgres://u@h:5432/db?sslmode=prefer"
