"""manage.py queries: the CLI twin, with --json."""

import json

import pytest
from django.core.management import CommandError, call_command

from jobs.models import Run


def run_cli(capsys, *args) -> str:
    call_command("queries", *args)
    return capsys.readouterr().out


@pytest.mark.django_db
def test_it_lists_suggestions_as_json(capsys, shop, run_statement):
    run_statement("SELECT * FROM {s}.orders WHERE customer_id = %s", shop, [3])
    data = json.loads(
        run_cli(
            capsys, "indexes", "--warehouse", "main", "--json", "--min-ms", "0", "--schema", shop
        )
    )
    (suggestion,) = data["suggestions"]
    assert suggestion["table"] == "orders" and suggestion["columns"] == ["customer_id"]
    assert len(suggestion["statement_ids"]) == 1
    assert suggestion["cost_after"] < suggestion["cost_before"] / 2
    assert data["method"] == "hypopg" and "health" in data


@pytest.mark.django_db
def test_it_lists_slow_statements_as_json(capsys, shop, run_statement):
    run_statement("SELECT pg_sleep(0.02), id FROM {s}.customers WHERE id = %s", shop, [1])
    rows = json.loads(run_cli(capsys, "slow", "--json", "--min-ms", "15", "--schema", shop))
    assert any("pg_sleep" in r["query"] and shop in r["query"] for r in rows)


@pytest.mark.django_db
def test_it_explains_a_statement(capsys, shop):
    out = run_cli(capsys, "explain", f'SELECT * FROM "{shop}".orders WHERE total = 5')
    assert "Seq Scan on orders" in out and "sequential scan of a big table" in out


@pytest.mark.django_db
def test_it_fails_cleanly_on_bad_input(shop):
    with pytest.raises(CommandError, match="parser rejects"):
        call_command("queries", "explain", "SELEC 1")
    with pytest.raises(CommandError, match="No PostgreSQL warehouse named 'nope'"):
        call_command("queries", "slow", "--warehouse", "nope")


def test_it_applies_an_index_and_waits(celery_worker, capsys, shop, wh):
    out = run_cli(
        capsys,
        "apply",
        "--schema",
        shop,
        "--table",
        "orders",
        "--columns",
        "customer_id",
        "--confirm",
        "orders_customer_id_idx",
        "--wait",
        "--json",
    )
    data = json.loads(out)
    assert data["status"] == "succeeded"
    assert Run.objects.get(pk=data["run"]).actor_name.startswith("cli:")
    valid = wh.execute(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
        [shop, "orders_customer_id_idx"],
    ).fetchone()
    assert valid == (True,)


@pytest.mark.django_db
def test_it_takes_the_advisor_options(capsys, shop, run_statement):
    run_statement("SELECT * FROM {s}.orders WHERE customer_id = %s", shop, [3])
    run_statement("SELECT id FROM {s}.customers WHERE email = %s", shop, ["c5@example.com"])
    args = ["indexes", "--json", "--schema", shop, "--min-calls", "2", "--max-per-table", "1"]
    data = json.loads(run_cli(capsys, *args, "--exclude-table", f"{shop}.orders"))
    assert [s["table"] for s in data["suggestions"]] == []  # customers: 6,000 rows, tiny
    assert any("is excluded" in w["reason"] for w in data["why_not"])
    data = json.loads(run_cli(capsys, *args, "--min-cost", "0", "--include-table", "customers"))
    assert [(s["table"], s["columns"]) for s in data["suggestions"]] == []
    assert any("not among the included tables" in w["reason"] for w in data["why_not"])
    text = run_cli(capsys, "indexes", "--schema", shop)
    assert "estimated workload cost saved" in text and "calls served" in text
