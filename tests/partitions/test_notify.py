"""A real migration tells its subscribers when it waits for its start and when it swaps."""

from opsconsole.notifications import services as notify
from tests.opsconsole.receivers import http_receiver  # noqa: F401  (fixture)

from .conftest import relkind, run_inline
from .test_postgres_migration import plan_and_start


def test_a_migration_posts_waiting_then_swapped(
    celery_worker,
    make_user,
    warehouse_db,
    payments,
    http_receiver,  # noqa: F811
):
    admin, operator = make_user("admin"), make_user("operator")
    created = notify.create_channel(admin, "hook", "webhook", {"url": http_receiver.url})
    http_receiver.secret = created.signing_secret
    for event in ("migration.waiting", "migration.swapped"):
        notify.subscribe(operator, operator, created.channel, event)

    migration = plan_and_start(admin, payments)
    run_inline(migration)
    assert relkind(warehouse_db, payments, "payments") == "p"

    received = {r["body"]["event"]: r for r in http_receiver.wait_for(2)}
    target = f"main:{payments}.payments"
    for event in ("migration.waiting", "migration.swapped"):
        assert received[event]["signature_ok"]
        assert received[event]["body"]["target"] == target
        assert f"/partitions/migrations/{migration.pk}/" in received[event]["body"]["link"]
