"""Notifications delivered by the real worker to real receivers: a signed webhook, a
Slack-compatible hook and an SMTP server; retries, failures, mutes and the log."""

import io
import json
import time

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from jobs import runner, schedules
from jobs.models import Run
from opsconsole import audit, health
from opsconsole.models import AuditEvent
from opsconsole.notifications import dispatch, readiness, services
from opsconsole.notifications.models import Channel, Delivery
from opsconsole.notifications.senders import sign
from tests.jobs import testjobs
from tests.jobs.conftest import wait_for

assert testjobs  # registers test_slow (fails on demand) and test_ok


@pytest.fixture
def fast_retries(settings):
    settings.NOTIFY_MAX_ATTEMPTS = 3
    settings.NOTIFY_RETRY_BACKOFF_S = 0.2
    settings.NOTIFY_RETRY_BACKOFF_MAX_S = 0.5


def failing_run(actor) -> Run:
    run = runner.start("test_slow", {"seconds": "0", "fail": "1"}, actor)
    return wait_for(run)


def settled(count: int = 1, timeout: float = 20.0) -> list[Delivery]:
    """The deliveries once `count` of them are sent or failed for good."""
    deadline = time.monotonic() + timeout
    while True:
        done = list(Delivery.objects.filter(status__in=["sent", "failed"]).order_by("id"))
        if len(done) >= count:
            return done
        assert time.monotonic() < deadline, list(Delivery.objects.values("status", "last_error"))
        time.sleep(0.05)


def webhook(admin, receiver, name="hook") -> Channel:
    created = services.create_channel(admin, name, "webhook", {"url": receiver.url})
    receiver.secret = created.signing_secret
    return created.channel


def test_a_failed_run_is_posted_signed_to_the_webhook(celery_worker, make_user, http_receiver):
    admin, operator = make_user("admin"), make_user("operator")
    channel = webhook(admin, http_receiver)
    services.subscribe(operator, operator, channel, "run.failed", "test_slow")
    run = failing_run(operator)
    assert run.status == "failed"
    [delivery] = settled()
    [request] = http_receiver.wait_for(1)
    assert request["signature_ok"], request["headers"]
    assert request["body"]["event"] == "run.failed" and request["body"]["target"] == "test_slow"
    assert f"/jobs/runs/{run.pk}/" in request["body"]["link"]
    assert delivery.status == "sent" and delivery.attempts == 1


def test_a_forged_body_does_not_verify(http_receiver):
    http_receiver.secret = "s3cret"
    body = json.dumps({"event": "x"}).encode()
    ts = str(int(time.time()))
    good = {"X-OpsConsole-Timestamp": ts, "X-OpsConsole-Signature": sign("s3cret", ts, body)}
    assert http_receiver.verify(good, body)
    assert not http_receiver.verify(good, body.replace(b"x", b"y"))
    assert not http_receiver.verify({**good, "X-OpsConsole-Timestamp": "1"}, body)


def test_slack_gets_a_text_message(celery_worker, make_user, http_receiver):
    admin = make_user("admin")
    channel = services.create_channel(admin, "chat", "slack", {"url": http_receiver.url}).channel
    services.subscribe(admin, admin, channel, "run.failed")
    failing_run(admin)
    settled()
    [request] = http_receiver.wait_for(1)
    assert set(request["body"]) == {"text"} and "test_slow failed" in request["body"]["text"]


def test_an_email_reaches_the_smtp_server(celery_worker, make_user, smtp_server):
    admin = make_user("admin")
    operator = make_user("operator")
    operator.email = "oncall@example.com"
    operator.save()
    values = {"host": "127.0.0.1", "port": smtp_server.port, "from_email": "console@example.com"}
    channel = services.create_channel(admin, "mail", "email", values).channel
    services.subscribe(operator, operator, channel, "run.failed")
    failing_run(operator)
    [delivery] = settled()
    assert delivery.status == "sent" and delivery.recipient == "oncall@example.com"
    [message] = smtp_server.messages
    assert message.rcpt_tos == ["oncall@example.com"]
    assert "Subject: [OpsConsole] Run #" in message.content.decode()


def test_a_receiver_that_fails_once_gets_it_on_the_retry(
    celery_worker, make_user, http_receiver, fast_retries
):
    admin = make_user("admin")
    http_receiver.fail_first = 1
    services.subscribe(admin, admin, webhook(admin, http_receiver), "run.failed")
    failing_run(admin)
    [delivery] = settled()
    assert delivery.status == "sent" and delivery.attempts == 2
    assert delivery.last_error.startswith("attempt 1: HTTP 500")
    assert [r["status"] for r in http_receiver.wait_for(2)] == [500, 200]


def test_a_dead_receiver_is_retried_then_marked_failed_without_blocking_the_run(
    celery_worker, make_user, http_receiver, fast_retries, client_as
):
    admin = make_user("admin")
    http_receiver.fail_first = -1
    services.subscribe(admin, admin, webhook(admin, http_receiver), "run.failed")
    started = time.monotonic()
    run = failing_run(admin)
    assert time.monotonic() - started < 5  # the run ended on its own schedule
    assert AuditEvent.objects.filter(run=run, action="job.end").count() == 1
    [delivery] = settled(timeout=30)
    assert delivery.status == "failed" and delivery.attempts == 3
    assert "HTTP 500: receiver down" in delivery.last_error
    assert len(http_receiver.received) == 3
    log_page = client_as("viewer").get("/notifications/deliveries/").content.decode()
    assert "failed" in log_page and "attempt 3: HTTP 500: receiver down" in log_page


def test_a_muted_channel_and_another_target_get_nothing(celery_worker, make_user, http_receiver):
    admin = make_user("admin")
    channel = webhook(admin, http_receiver)
    services.subscribe(admin, admin, channel, "run.failed", "some_other_job")
    muted = webhook(admin, http_receiver, name="muted")
    services.subscribe(admin, admin, muted, "run.failed")
    services.set_muted(admin, muted, True)
    failing_run(admin)
    runner.start("test_ok", {}, admin)
    time.sleep(0.5)
    assert not Delivery.objects.exists() and http_receiver.received == []


def test_secrets_are_never_shown_and_not_stored_in_clear(client_as, http_receiver):
    client = client_as("admin")
    url = http_receiver.url + "?token=very-secret"
    response = client.post(
        "/notifications/channels/new/", {"name": "h", "kind": "webhook", "url": url}
    )
    assert response.status_code == 200
    signing = response.context["new_channel"].signing_secret
    assert signing in response.content.decode()  # shown once
    page = client.get("/notifications/").content.decode()
    assert "very-secret" not in page and signing not in page
    assert "http://127.0.0.1" in page  # the hint
    row = Channel.objects.get(name="h")
    assert "very-secret" not in row.secrets and signing not in row.secrets
    event = AuditEvent.objects.get(action="notify.channel_create")
    assert "very-secret" not in json.dumps(event.params)


def test_an_operator_cannot_add_channels(client_as):
    response = client_as("operator").post(
        "/notifications/channels/new/", {"name": "h", "kind": "slack", "url": "https://x.test/"}
    )
    assert response.status_code == 403 and not Channel.objects.exists()


def test_the_readiness_watch_tells_once_after_the_delay(
    celery_worker, make_user, http_receiver, settings
):
    settings.NOTIFY_READINESS_AFTER_S = 120
    admin = make_user("admin")
    services.subscribe(admin, admin, webhook(admin, http_receiver), "readiness.failing")
    down = [health.Check("database", False, 1.0, "connection refused")]
    now = time.time()
    assert readiness.watch(now, down) == "failing"
    assert readiness.watch(now + 60, down) == "failing"
    assert readiness.watch(now + 121, down) == "notified"
    assert readiness.watch(now + 180, down) == "failing"  # told already
    [request] = http_receiver.wait_for(1)
    assert "database (connection refused)" in request["body"]["summary"]
    assert readiness.watch(now + 200, [health.Check("database", True, 1.0)]) == "ok"


@pytest.mark.django_db
def test_the_outcomes_map_to_the_issues_events(make_user):
    admin = make_user("admin")
    events = {
        "partitions.plan": "migration.waiting",
        "partitions.swapped": "migration.swapped",
        "partitions.auto_rollback": "migration.rolled_back",
        "runbook.request": "approval.requested",
        "runbook.approve": "approval.decided",
        "runbook.reject": "approval.decided",
    }
    for action, expected in events.items():
        written = audit.write(admin, action, "main:public.payments", params={"migration_id": 1})
        assert [n.event for n in dispatch.notices_for(written)] == [expected], action


@pytest.mark.django_db
def test_the_command_adds_a_channel_from_stdin_and_shows_the_log(make_user, capsys, http_receiver):
    make_user("admin", username="ops")
    call_command(
        "notifications", "add-channel", "hook", "--kind", "webhook", "--secrets-from-stdin",
        "--json", stdin=io.StringIO(http_receiver.url + "\n"),
    )  # fmt: skip
    created = json.loads(capsys.readouterr().out)
    assert created["signing_secret"] and http_receiver.url not in json.dumps(created)
    call_command("notifications", "subscribe", "--user", "ops", "--channel", "hook",
                 "--event", "run.failed", "--json")  # fmt: skip
    assert json.loads(capsys.readouterr().out)["event"] == "run.failed"
    call_command("notifications", "mute", "hook", "--json")
    assert json.loads(capsys.readouterr().out)["muted"] is True
    call_command("notifications", "deliveries", "--json")
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.django_db
def test_the_readiness_watch_is_a_default_beat_schedule():
    schedules.install_default_schedules()
    task = PeriodicTask.objects.get(name="notifications: readiness watch")
    assert task.task == readiness.WATCH_TASK and task.interval.every == 60


def test_a_four_eyes_request_and_its_approval_reach_the_subscribers(
    celery_worker, make_user, http_receiver
):
    from dataclasses import replace

    from opsconsole.runbooks import get, register
    from opsconsole.runbooks import services as runbooks

    book = get("health_sweep_four_eyes") or register(
        replace(get("health_sweep"), name="health_sweep_four_eyes", needs_approval=True)
    )
    admin, requester, approver = make_user("admin"), make_user("operator"), make_user("operator")
    channel = webhook(admin, http_receiver)
    for event in ("approval.requested", "approval.decided"):
        services.subscribe(approver, approver, channel, event)
    request = runbooks.launch(book, {}, requester, reason="quarterly check", assume_yes=True)
    request = runbooks.decide(request, approver, approve=True)
    assert wait_for(request.run, timeout=30).status == "succeeded"

    received = {r["body"]["event"]: r for r in http_receiver.wait_for(2)}
    asked, decided = received["approval.requested"], received["approval.decided"]
    assert asked["signature_ok"] and decided["signature_ok"]
    assert asked["body"]["summary"] == (
        f"{requester.username} asks for approval to run health_sweep_four_eyes"
    )
    assert f"{approver.username} approved" in decided["body"]["summary"]
    assert [d.status for d in settled(2)] == ["sent", "sent"]
