"""Statements that never finish reach the index advisor through pg_stat_activity samples
(pg_stat_statements records finished statements only)."""

import json
import threading
import time

import psycopg
import pytest
from django.core.management import call_command
from psycopg import sql

from partitions.queries import advisor, longrunning, parsing
from partitions.queries.models import LongExecution

# A correlated subquery: one scan of orders per customer, far past any timeout here,
# unless orders.customer_id is indexed.
NEVER_FINISHES = """
    SELECT count(*) FROM {s}.customers c
    WHERE (SELECT count(*) FROM {s}.orders o WHERE o.customer_id = c.id) > 5
"""


def running(wh, marker: str, min_ms: float) -> bool:
    return wh.execute(
        "SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND strpos(query, %s) > 0 "
        "AND pid <> pg_backend_pid() AND now() - query_start >= make_interval(secs => %s)",
        [marker, min_ms / 1000],
    ).fetchone()


class Cancelled(threading.Thread):
    """The statement in a session of its own, until its statement_timeout cancels it;
    `outcome` says how it ended."""

    def __init__(self, warehouse_db, query: sql.Composed, timeout_ms: int):
        super().__init__()
        self.url, self.query, self.timeout_ms = warehouse_db, query, timeout_ms
        self.outcome = None
        self.start()

    def run(self):
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("SET statement_timeout = {}").format(self.timeout_ms))
            try:
                conn.execute(self.query)
                self.outcome = "finished"
            except psycopg.errors.QueryCanceled:
                self.outcome = "cancelled"


@pytest.mark.django_db
def test_a_statement_cancelled_by_its_timeout_is_still_advised(shop, wh, warehouse_db, settings):
    settings.QUERIES_LONG_RUNNING_MS = 300
    query = sql.SQL(NEVER_FINISHES).format(s=sql.Identifier(shop))
    thread = Cancelled(warehouse_db, query, timeout_ms=4000)
    try:
        while not running(wh, shop, 400):
            assert thread.is_alive(), "the statement ended before it was sampled"
            time.sleep(0.05)
        assert longrunning.sample("main") >= 1
    finally:
        thread.join()
    assert thread.outcome == "cancelled"

    recorded = LongExecution.objects.get(warehouse="main", query__contains=shop)
    assert recorded.elapsed_ms >= 400
    assert recorded.fingerprint == parsing.fingerprint(query.as_string(wh))
    finished = wh.execute(
        "SELECT count(*) FROM pg_stat_statements WHERE strpos(query, %s) > 0 "
        "AND query LIKE '%%count(*) FROM%%customers%%'",
        [shop],
    ).fetchone()[0]
    assert finished == 0  # pg_stat_statements never saw it

    advice = advisor.suggest_indexes("main", containing=shop)
    by_index = {(s.table, tuple(s.columns)): s for s in advice.suggestions}
    assert ("orders", ("customer_id",)) in by_index, advice.as_dict()
    suggestion = by_index[("orders", ("customer_id",))]
    helped = next(h for h in suggestion.helps if h.seen_running)
    assert helped.calls == 1
    assert helped.mean_ms >= 400
    assert "customers" in helped.query


@pytest.mark.django_db
def test_sampling_again_keeps_one_row_per_execution_with_its_longest_time(
    shop, wh, warehouse_db, settings
):
    settings.QUERIES_LONG_RUNNING_MS = 200
    query = sql.SQL(NEVER_FINISHES).format(s=sql.Identifier(shop))
    thread = Cancelled(warehouse_db, query, timeout_ms=3000)
    try:
        while not running(wh, shop, 300):
            assert thread.is_alive(), "the statement ended before it was sampled"
            time.sleep(0.05)
        longrunning.sample("main")
        first = LongExecution.objects.get(warehouse="main", query__contains=shop).elapsed_ms
        while not running(wh, shop, first + 500):
            assert thread.is_alive(), "the statement ended before its second sample"
            time.sleep(0.05)
        longrunning.sample("main")
    finally:
        thread.join()
    assert thread.outcome == "cancelled"
    executions = LongExecution.objects.filter(warehouse="main", query__contains=shop)
    assert executions.count() == 1
    assert executions.get().elapsed_ms >= first + 500


def test_a_statement_that_also_finished_keeps_the_larger_weight_not_the_sum():
    finished = {
        "queryid": 7,
        "query": "SELECT * FROM t WHERE a = $1",
        "calls": 10,
        "rows": 10,
        "total_ms": 5_000.0,
        "mean_ms": 500.0,
    }
    other = {**finished, "queryid": 8, "query": "SELECT * FROM u", "total_ms": 9_000.0}
    seen = {
        "queryid": longrunning.queryid_of(parsing.fingerprint("SELECT * FROM t WHERE a = 3")),
        "fingerprint": parsing.fingerprint("SELECT * FROM t WHERE a = 3"),
        "query": "SELECT * FROM t WHERE a = 3",
        "calls": 4,
        "rows": 0,
        "total_ms": 12_000.0,
        "mean_ms": 3_000.0,
        "seen_running": True,
    }
    never = {
        **seen,
        "fingerprint": parsing.fingerprint("SELECT * FROM v WHERE b = 1"),
        "query": "SELECT * FROM v WHERE b = 1",
        "total_ms": 1_000.0,
    }
    merged = longrunning.with_unfinished([dict(finished), dict(other)], [seen, never])
    assert [r["query"] for r in merged] == [
        "SELECT * FROM t WHERE a = $1",  # 12 s now: the samples outweigh its finished runs
        "SELECT * FROM u",
        "SELECT * FROM v WHERE b = 1",  # never finished: added
    ]
    assert merged[0]["total_ms"] == 12_000.0 and merged[0]["calls"] == 10
    assert merged[0]["seen_running"] is True
    assert "seen_running" not in merged[1]


@pytest.mark.django_db
def test_the_cli_samples_and_lists_long_running_statements(
    capsys, shop, wh, warehouse_db, settings
):
    settings.QUERIES_LONG_RUNNING_MS = 200
    query = sql.SQL("SELECT pg_sleep(3), id FROM {s}.customers WHERE id = 1").format(
        s=sql.Identifier(shop)
    )
    thread = Cancelled(warehouse_db, query, timeout_ms=1500)
    try:
        while not running(wh, shop, 300):
            assert thread.is_alive(), "the statement ended before it was sampled"
            time.sleep(0.05)
        call_command("queries", "long-running", "--warehouse", "main", "--sample", "--json")
    finally:
        thread.join()
    assert thread.outcome == "cancelled"
    (listed,) = [r for r in json.loads(capsys.readouterr().out) if shop in r["query"]]
    assert listed["calls"] == 1 and listed["total_ms"] >= 300 and listed["seen_running"]
