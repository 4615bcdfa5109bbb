"""An index on a partitioned table: suggested on the parent, built the safe way
(ON ONLY the parent, CONCURRENTLY per partition, ATTACH PARTITION) and rolled back."""

import pytest
from psycopg import sql

from jobs.models import Run
from opsconsole.models import AuditEvent
from partitions.queries import advisor

from .test_apply import apply_form, index, wait


@pytest.fixture
def events(pg_schema, wh):
    """events partitioned by id in three partitions of 20,000 rows; account_id selective."""
    s = sql.Identifier(pg_schema)
    statements = [
        "CREATE TABLE {s}.events (id bigint NOT NULL, account_id int NOT NULL, "
        "kind text NOT NULL) PARTITION BY RANGE (id)",
    ]
    for n in range(3):
        statements.append(
            f"CREATE TABLE {{s}}.events_p{n} PARTITION OF {{s}}.events "
            f"FOR VALUES FROM ({n * 20000}) TO ({(n + 1) * 20000})"
        )
    statements += [
        "INSERT INTO {s}.events SELECT g, g % 4000, 'k' || g % 7 FROM generate_series(0, 59999) g",
        "ANALYZE {s}.events",
    ]
    for statement in statements:
        wh.execute(sql.SQL(statement).format(s=s))
    return pg_schema


def attached(wh, schema, parent_index):
    rows = wh.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s) ORDER BY 1",
        [f'"{schema}".{parent_index}'],
    ).fetchall()
    return [r[0] for r in rows]


@pytest.mark.django_db
def test_it_suggests_the_parent_index_the_safe_way(events, run_statement):
    run_statement("SELECT * FROM {s}.events WHERE account_id = %s", events, [42])
    advice = advisor.suggest_indexes("main", containing=events)
    (suggestion,) = advice.suggestions
    assert (suggestion.table, suggestion.columns, suggestion.partitioned) == (
        "events",
        ["account_id"],
        True,
    )
    assert suggestion.helps[0].cost_after < suggestion.helps[0].cost_before * 0.5
    assert suggestion.create_statement.startswith(
        f'CREATE INDEX "events_account_id_idx" ON ONLY "{events}"."events"'
    )


def test_it_builds_a_partitioned_index_and_rolls_it_back(celery_worker, client_as, events, wh):
    # One partition already has its index (an earlier attempt built it): reused, not rebuilt.
    wh.execute(
        sql.SQL("CREATE INDEX events_p1_account_id_idx ON {}.events_p1 (account_id)").format(
            sql.Identifier(events)
        )
    )
    form = apply_form(events, table="events", columns="account_id", name="events_account_id_idx")
    client_as("operator").post("/queries/indexes/apply/", form)
    run = wait(Run.objects.get(name="queries.apply_index"), seconds=60)
    assert run.status == "succeeded", run.error
    assert index(wh, events, "events_account_id_idx") == (True,)
    partition_indexes = [f"events_p{n}_account_id_idx" for n in range(3)]
    assert attached(wh, events, "events_account_id_idx") == partition_indexes
    assert sorted(run.result["partitions"]) == partition_indexes
    assert "building events_p0_account_id_idx" in run.log_tail
    assert "building events_p1_account_id_idx" not in run.log_tail
    assert (run.progress_done, run.progress_total) == (1, 1)
    created = AuditEvent.objects.get(action="queries.index.create")
    assert created.outcome == "ok" and created.params["partitions"] == run.result["partitions"]

    client_as("admin").post(
        f"/queries/indexes/applied/{run.pk}/rollback/", {"confirm": "events_account_id_idx"}
    )
    rollback = wait(Run.objects.get(name="queries.rollback_index"))
    assert rollback.status == "succeeded", rollback.error
    assert index(wh, events, "events_account_id_idx") is None
    assert [index(wh, events, name) for name in partition_indexes] == [None, None, None]
    dropped = AuditEvent.objects.get(action="queries.index.drop")
    assert dropped.outcome == "ok" and dropped.params["partitioned"] is True
