"""The audit rule (docs/architecture.md), checked on every registered action and job.

Every service function that changes something is registered with
`opsconsole.actions.audited_action`; every long action is a job of the jobs
registry. This module runs an example of each against the real services and
checks its events: a quick action writes one event carrying its outcome; a long
one writes exactly one accepted event linked to its run and, when the run ends,
one `job.end` event linked to the same run. An action or job without an example
here fails the suite.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from django.urls import get_resolver
from django_celery_beat.models import PeriodicTask

from cachemgr import registry as warmers
from cachemgr.services import analysis, invalidation, keys, warming
from jobs import registry as jobs_registry
from jobs import runner, schedules
from jobs.models import Run
from opsconsole import users
from opsconsole.accounts import services as accounts
from opsconsole.actions import ACTIONS
from opsconsole.forms import NewUserForm
from opsconsole.models import AuditEvent, RunbookRequest
from opsconsole.notifications import services as notify
from opsconsole.runbooks import get, register
from opsconsole.runbooks import services as runbooks
from opsconsole.tokens import services as tokens
from partitions import retention, services
from partitions.queries import activity, apply, drops, slow
from tests.cachemgr.conftest import scratch  # noqa: F401  (fixture)
from tests.jobs import testjobs
from tests.jobs.conftest import release_slow_jobs, wait_for  # noqa: F401  (fixture)
from tests.partitions.conftest import payments  # noqa: F401  (fixture)
from tests.queries.conftest import own_database, shop, warehouses, wh  # noqa: F401  (fixtures)

assert get_resolver().url_patterns  # imports every view, hence every service module
MONTHLY = {"column": "created_at", "granularity": "month"}


@dataclass
class World:
    """What an example needs: users, fixtures on demand, and a scratch namespace."""

    request: pytest.FixtureRequest
    admin: Any
    operator: Any

    def fixture(self, name: str) -> Any:
        return self.request.getfixturevalue(name)

    @property
    def scratch(self):
        return self.fixture("scratch")

    def warmer(self) -> str:
        name = f"rule_{self.scratch.id}"
        namespace = self.scratch.ns("rule")

        @warmers.warmer(namespace, name=name, description="three rows")
        def three(limit):
            yield from ((i, {"n": i}) for i in range(3))

        self.request.addfinalizer(lambda: warmers.WARMERS.pop(name, None))
        return name

    def channel(self):
        url = "https://hooks.example.test/rule"
        return notify.create_channel(self.admin, f"rule-{uuid4().hex[:6]}", "slack", {"url": url})

    def key(self) -> bytes:
        key = f"{self.scratch.prefix}k".encode()
        self.scratch.redis.set(key, b"x")
        return key

    def migration(self, start: bool = False):
        schema = self.fixture("payments")
        migration = services.plan_migration(self.admin, "main", schema, "payments", MONTHLY)
        if start:
            services.start_migration(self.admin, migration, confirm="payments", reason="rule")
            migration.refresh_from_db()
            assert wait_for(migration.run, timeout=60).status == "succeeded"
            migration.refresh_from_db()
        return migration

    def index_build(self) -> Run:
        schema, name = self.fixture("shop"), f"rule_{uuid4().hex[:6]}"
        params = {"warehouse": "main", "schema": schema, "table": "orders"}
        params |= {"columns": "customer_id", "name": name, "confirm": name}
        return apply.start_apply(self.admin, params)

    def index_drop_params(self) -> dict:
        """An index of this test's own that nothing needs: the drop job may take it."""
        schema, name = self.fixture("shop"), f"rule_{uuid4().hex[:6]}"
        with psycopg.connect(self.fixture("warehouse_db"), autocommit=True) as conn:
            conn.execute(f'CREATE INDEX "{name}" ON "{schema}".orders (status)')
        return {"warehouse": "main", "schema": schema, "name": name, "confirm": name}

    def failed_runbook(self) -> Run:
        settings = self.fixture("settings")
        settings.CACHE_TARGETS = {**settings.CACHE_TARGETS, "gone": "redis://127.0.0.1:1/0"}
        run = wait_for(
            runbooks.launch(get("health_sweep"), {}, self.operator, assume_yes=True), timeout=30
        )
        settings.CACHE_TARGETS = {k: v for k, v in settings.CACHE_TARGETS.items() if k != "gone"}
        assert run.status == "failed"
        return run

    def slow_run(self) -> Run:
        self.fixture("release_slow_jobs")  # released (and ended) after the test
        return runner.start("test_slow", {}, self.operator)

    def own_warehouse(self) -> str:
        """The main warehouse becomes a database of this test's own (nothing shared to touch)."""
        self.fixture("warehouses")(main=self.fixture("own_database"))
        return "main"

    def backend_pid(self) -> int:
        conn = psycopg.connect(self.fixture("warehouse_db"), autocommit=True)
        self.request.addfinalizer(conn.close)
        return conn.info.backend_pid


def _four_eyes_request(w: World) -> RunbookRequest:
    book = get("health_sweep_four_eyes") or register(
        replace(get("health_sweep"), name="health_sweep_four_eyes", needs_approval=True)
    )
    return runbooks.launch(book, {}, w.operator, reason="rule", assume_yes=True)


def _new_user_form() -> NewUserForm:
    password = "a-long-enough-Passw0rd"
    form = NewUserForm(
        {"username": f"u{uuid4().hex[:8]}", "role": "viewer"}
        | {"password1": password, "password2": password}
    )
    assert form.is_valid(), form.errors
    return form


def _schedule() -> PeriodicTask:
    schedules.install_default_schedules()
    return PeriodicTask.objects.get(name="job: table_sync")


def _reset_stats(w: World) -> None:
    slow.reset_stats(w.admin, w.own_warehouse(), "main")


CRONTAB = {"minute": "*/15", "hour": "*", "day_of_month": "*"}
CRONTAB |= {"month_of_year": "*", "day_of_week": "1-5"}

# One example call per registered action (module.qualname of its service function).
EXAMPLES: dict[str, Callable[[World], Any]] = {
    "cachemgr.services.keys.delete_key": lambda w: keys.delete_key("main", w.key(), w.admin),
    "cachemgr.services.keys.set_ttl": lambda w: keys.set_ttl("main", w.key(), 60, w.admin),
    "cachemgr.services.invalidation.start_pattern_invalidation": lambda w: (
        invalidation.start_pattern_invalidation(
            "main", f"{w.scratch.prefix}*", w.operator, assume_yes=True
        )
    ),
    "cachemgr.services.invalidation.invalidate_pattern": lambda w: invalidation.invalidate_pattern(
        "main", f"{w.scratch.prefix}*", w.operator
    ),
    "cachemgr.services.analysis.start_analysis": lambda w: analysis.start_analysis(
        "main", w.operator
    ),
    "cachemgr.services.invalidation.invalidate_key": lambda w: invalidation.invalidate_key(
        "main", w.key(), w.operator
    ),
    "cachemgr.services.invalidation.invalidate_tag": lambda w: invalidation.invalidate_tag(
        "main", f"tag_{w.scratch.id}", w.operator
    ),
    "cachemgr.services.invalidation.bump_namespace": lambda w: invalidation.bump_namespace(
        "main", w.scratch.ns("bump"), w.operator
    ),
    "cachemgr.services.invalidation.restore_namespace_version": lambda w: (
        invalidation.restore_namespace_version("main", w.scratch.ns("back"), 1, w.operator)
    ),
    "cachemgr.services.warming.warm": lambda w: warming.warm("main", w.warmer(), w.operator),
    "cachemgr.services.warming.start_warm": lambda w: warming.start_warm(
        "main", w.warmer(), w.operator
    ),
    "partitions.retention.apply_retention": lambda w: retention.apply_retention(
        w.operator, dry_run=False
    ),
    "partitions.retention.start_retention": lambda w: retention.start_retention(w.operator),
    "partitions.services.plan_migration": lambda w: w.migration(),
    "partitions.services.start_migration": lambda w: services.start_migration(
        w.admin, w.migration(), confirm="payments", reason="rule"
    ),
    "partitions.services.rollback_migration": lambda w: services.rollback_migration(
        w.admin, w.migration(start=True), reason="rule"
    ),
    "partitions.services.drop_original": lambda w: services.drop_original(
        w.admin, w.migration(start=True), confirm="payments"
    ),
    "partitions.queries.apply.start_apply": lambda w: w.index_build(),
    "partitions.queries.apply.start_rollback": lambda w: apply.start_rollback(
        w.admin, built := wait_for(w.index_build(), timeout=60), built.result["index"]
    ),
    "partitions.queries.drops.start_drop": lambda w: drops.start_drop(
        w.admin, w.index_drop_params()
    ),
    "partitions.queries.drops.start_recreate": lambda w: drops.start_recreate(
        w.admin,
        dropped := wait_for(drops.start_drop(w.admin, w.index_drop_params()), timeout=60),
        dropped.result["dropped"],
    ),
    "partitions.queries.activity.cancel_backend": lambda w: activity.cancel_backend(
        w.admin, "main", pid := w.backend_pid(), str(pid)
    ),
    "partitions.queries.activity.terminate_backend": lambda w: activity.terminate_backend(
        w.admin, "main", pid := w.backend_pid(), str(pid)
    ),
    "partitions.queries.slow.reset_stats": _reset_stats,
    "jobs.runner.start": lambda w: runner.start("test_ok", {}, w.operator),
    "jobs.runner.cancel": lambda w: runner.cancel(w.slow_run(), w.operator),
    "jobs.runner.retry": lambda w: runner.retry(
        wait_for(runner.start("test_flaky", {"succeed_on": "9"}, w.operator)), w.operator
    ),
    "jobs.schedules.set_enabled": lambda w: schedules.set_enabled(_schedule(), True, w.admin),
    "jobs.schedules.set_crontab": lambda w: schedules.set_crontab(_schedule(), CRONTAB, w.admin),
    "opsconsole.users.create_user": lambda w: users.create_user(w.admin, _new_user_form()),
    "opsconsole.users.update_user": lambda w: users.update_user(
        w.admin, w.operator, role="viewer", is_active=True
    ),
    "opsconsole.users.reset_demo_admin": lambda w: users.reset_demo_admin(
        "cli:rule", f"demo{uuid4().hex[:6]}", None
    ),
    "opsconsole.tokens.services.create_token": lambda w: tokens.create_token(
        w.operator, w.operator, "rule", "viewer", 1
    ),
    "opsconsole.tokens.services.revoke_token": lambda w: tokens.revoke_token(
        w.operator, tokens.create_token(w.operator, w.operator, "rule", "viewer", 1).token
    ),
    "opsconsole.tokens.services.create_service_account": lambda w: tokens.create_service_account(
        w.admin, f"svc-{uuid4().hex[:6]}", "viewer"
    ),
    "opsconsole.accounts.services.create_sso_user": lambda w: accounts.create_sso_user(
        "https://idp.example.test", {"sub": uuid4().hex, "preferred_username": "sso-rule"}
    ),
    "opsconsole.accounts.services.sync_sso_user": lambda w: accounts.sync_sso_user(
        w.operator,
        {"sub": "x", "groups": []},  # no mapped group: the role goes
    ),
    "opsconsole.notifications.services.create_channel": lambda w: w.channel(),
    "opsconsole.notifications.services.set_muted": lambda w: notify.set_muted(
        w.admin, w.channel().channel, True
    ),
    "opsconsole.notifications.services.subscribe": lambda w: notify.subscribe(
        w.operator, w.operator, w.channel().channel, "run.failed"
    ),
    "opsconsole.notifications.services.unsubscribe": lambda w: notify.unsubscribe(
        w.operator, notify.subscribe(w.operator, w.operator, w.channel().channel, "run.lost")
    ),
    "opsconsole.runbooks.services.launch": lambda w: runbooks.launch(
        get("health_sweep"), {}, w.operator, confirm="health_sweep"
    ),
    "opsconsole.runbooks.services.decide": lambda w: runbooks.decide(
        _four_eyes_request(w), w.admin, approve=True
    ),
    "opsconsole.runbooks.services.retry_failed_step": lambda w: runbooks.retry_failed_step(
        w.failed_runbook(), w.operator
    ),
    "opsconsole.runbooks.services.undo": lambda w: runbooks.undo(w.failed_runbook(), w.operator),
    "opsconsole.runbooks.services.abandon": lambda w: runbooks.abandon(
        w.failed_runbook(), w.operator
    ),
}

# Parameters for a direct launch of every registered job (the runner's own rule).
JOB_PARAMS: dict[str, Callable[[World], dict]] = {
    "table_sync": lambda w: {
        "source": "main",
        "source_table": f"{w.fixture('pg_schema')}.missing",
        "target": "main",
        "target_table": f"{w.fixture('pg_schema')}.copy",
        "watermark": "updated_at",
    },
    "refresh_matviews": lambda w: {
        "warehouse": "main",
        "views": f"{w.fixture('pg_schema')}.missing",
    },
    "demo_payments_feed": lambda w: {"warehouse": w.own_warehouse(), "rows": 1},
    "demo_shop_orders": lambda w: {"warehouse": w.own_warehouse(), "schema": "shop", "orders": 10},
    "cache.invalidate_pattern": lambda w: {
        "target": "main",
        "pattern": (pattern := f"{w.scratch.prefix}*"),
        "approval": invalidation.approval_for("main", pattern),
    },
    "cache.warm": lambda w: {"target": "main", "warmer": w.warmer()},
    "cache.analyze": lambda w: {"target": "main"},
    "partition_migration": lambda w: {"migration_id": w.migration().pk},
    "partition_rollback": lambda w: {"migration_id": w.migration().pk},
    "partition_retention": lambda w: {"dry_run": True},
    "queries.apply_index": lambda w: {
        "warehouse": "main",
        "schema": w.fixture("shop"),
        "table": "orders",
        "columns": "customer_id",
        "name": "rule_idx",
        "confirm": "rule_idx",
    },
    "queries.drop_unneeded_index": lambda w: w.index_drop_params(),
    "queries.recreate_index": lambda w: {
        "warehouse": "main",
        "schema": w.fixture("pg_schema"),
        "name": "missing_idx",
        "confirm": "missing_idx",
        "drop_run": 1,
    },
    "queries.rollback_index": lambda w: {
        "warehouse": "main",
        "schema": w.fixture("pg_schema"),
        "name": "missing_idx",
        "confirm": "missing_idx",
        "apply_run": 1,
    },
}
RUNBOOK_PARAMS = {
    "cache_stampede": lambda w: {
        "target": "main",
        "warmer": w.warmer(),
        "min_hit_rate": 100,
        "within_minutes": 0.05,
    },
    "retry_failed_syncs": lambda w: {"job": "table_sync", "hours": 1, "wait_minutes": 1},
}


# The events that accept a long action (detail events of the work may also link to its run).
ACCEPTED_EVENTS = {action.event for action in ACTIONS.values() if action.long}


def registered_jobs() -> list[str]:
    """Every job the product registers (the test suite's own jobs are not the product's)."""
    return sorted(
        name
        for name, spec in jobs_registry.JOBS.items()
        if not spec.func.__module__.startswith("tests.")
    )


def test_every_registered_action_has_an_example():
    missing = sorted(set(ACTIONS) - set(EXAMPLES))
    assert not missing, f"audited actions without an example in {__name__}: {missing}"
    assert len(ACTIONS) >= 30  # the registry is filled: every service module was imported


def test_every_registered_job_has_an_example():
    missing = [name for name in registered_jobs() if _job_params(name) is None]
    assert not missing, f"jobs without example parameters in {__name__}: {missing}"


@pytest.fixture
def world(request, celery_worker, make_user, settings):
    settings.WAREHOUSES = {"main": request.getfixturevalue("warehouse_db")}
    assert testjobs  # registers test_ok / test_flaky, used by the runner's examples
    return World(request, admin=make_user("admin"), operator=make_user("operator"))


def _job_params(name: str) -> Callable[[World], dict] | None:
    """A runbook's own parameters, a scheduled job's beat parameters, or JOB_PARAMS."""
    if name.startswith("runbook."):
        book = RUNBOOK_PARAMS.get(name.removeprefix("runbook."), lambda w: {})
        return lambda w: {"params": book(w), "mode": "run"}
    spec = jobs_registry.JOBS[name]
    if name not in JOB_PARAMS and spec.schedule is not None:
        return lambda w: dict(spec.schedule_params)
    return JOB_PARAMS.get(name)


def _run_of(result: Any) -> Run:
    if isinstance(result, RunbookRequest):
        return result.run
    return result if isinstance(result, Run) else result.run


@pytest.mark.parametrize("key", sorted(EXAMPLES))
def test_the_action_writes_its_accepted_and_outcome_events(world, key):
    action = ACTIONS[key]
    before = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    result = EXAMPLES[key](world)
    written = AuditEvent.objects.filter(id__gt=before)
    if not action.long:
        own = written.filter(action=action.event)
        assert own.count() == 1, f"{key}: one {action.event} event, with its outcome"
        assert own.get().outcome in ("ok", "failed")
        return
    run = _run_of(result)
    accepted = written.filter(run=run, action__in=ACCEPTED_EVENTS)
    assert [e.action for e in accepted] == [action.event], f"{key}: one accepted event"
    _check_outcome(wait_for(run, timeout=60))


@pytest.mark.parametrize("name", registered_jobs())
def test_every_job_launch_is_accepted_then_ended(world, name):
    run = runner.start(name, _job_params(name)(world), world.admin)
    accepted = AuditEvent.objects.filter(run=run, action="job.start")
    assert accepted.count() == 1 and accepted.get().outcome == "ok"
    _check_outcome(wait_for(run, timeout=60))


def _check_outcome(run: Run) -> None:
    ended = AuditEvent.objects.filter(run=run, action="job.end")
    assert ended.count() == 1, f"run #{run.pk} ({run.name}) ended without its outcome event"
    event = ended.get()
    assert event.params["status"] == run.status
    assert event.outcome == ("ok" if run.status == "succeeded" else "failed")


def test_a_refused_runbook_decision_keeps_its_failed_event(transactional_db, make_user):
    requester = make_user("operator")
    book = get("health_sweep_four_eyes") or register(
        replace(get("health_sweep"), name="health_sweep_four_eyes", needs_approval=True)
    )
    request = runbooks.launch(book, {}, requester, reason="rule", assume_yes=True)
    with pytest.raises(runbooks.RunbookRefused, match="your own request"):
        runbooks.decide(request, requester, approve=True)
    event = AuditEvent.objects.get(action="runbook.approve")
    assert event.outcome == "failed" and "your own request" in event.error
    request.refresh_from_db()
    assert request.status == "pending" and not Run.objects.exists()


def test_an_admin_demoting_themself_is_refused_and_audited(transactional_db, make_user):
    admin = make_user("admin")
    with pytest.raises(users.UserRefused):
        users.update_user(admin, admin, role="viewer", is_active=True)
    admin.refresh_from_db()
    assert admin.is_active and admin.groups.filter(name="admin").exists()
    assert AuditEvent.objects.get(action="user.update").outcome == "failed"
