"""Dropping an unused or duplicate index as an audited job, undone by re-creating it."""

from psycopg import sql

from jobs.models import Run
from opsconsole.models import AuditEvent
from partitions.queries import drops

from .test_apply import index, wait


def definition(wh, schema, name):
    row = wh.execute("SELECT pg_get_indexdef(to_regclass(%s))", [f'"{schema}".{name}']).fetchone()
    return row[0]


def test_it_drops_an_unused_index_and_re_creates_it(celery_worker, make_user, shop, wh, settings):
    settings.QUERIES_UNUSED_MIN_DAYS = 0  # the test server's statistics are young
    s = sql.Identifier(shop)
    wh.execute(
        sql.SQL("CREATE INDEX orders_note_idx ON {}.orders (note) WHERE total > 5").format(s)
    )
    wh.execute(sql.SQL("CREATE INDEX orders_total_a ON {}.orders (total)").format(s))
    wh.execute(sql.SQL("CREATE INDEX orders_total_b ON {}.orders (total)").format(s))
    saved = definition(wh, shop, "orders_note_idx")

    found = {i["name"]: i["why"] for i in drops.drop_suggestions("main", schema=shop)}
    assert found["orders_note_idx"].startswith("no scan")
    assert found["orders_total_b"] == "duplicate of orders_total_a"
    assert "orders_pkey" not in found  # backs the primary key

    admin = make_user("admin")
    params = {"warehouse": "main", "schema": shop, "name": "orders_note_idx"}
    drop = wait(drops.start_drop(admin, {**params, "confirm": "orders_note_idx"}))
    assert drop.status == "succeeded", drop.error
    assert index(wh, shop, "orders_note_idx") is None
    assert drop.result["definition"] == saved
    event = AuditEvent.objects.get(action="queries.index.drop_unneeded")
    assert event.outcome == "ok" and event.params["definition"] == saved

    rebuilt = wait(drops.start_recreate(admin, drop, "orders_note_idx"))
    assert rebuilt.status == "succeeded", rebuilt.error
    assert index(wh, shop, "orders_note_idx") == (True,)
    assert definition(wh, shop, "orders_note_idx") == saved  # partial predicate kept
    assert AuditEvent.objects.get(action="queries.index.recreate").outcome == "ok"


def test_it_refuses_to_drop_an_index_that_backs_a_constraint(celery_worker, make_user, shop):
    admin = make_user("admin")
    params = {"warehouse": "main", "schema": shop, "name": "orders_pkey", "confirm": "orders_pkey"}
    run = wait(drops.start_drop(admin, params))
    assert run.status == "failed" and "enforces a constraint" in run.error
    assert Run.objects.filter(name=drops.RECREATE_JOB).count() == 0
