import pytest
from django.core.management import call_command
from django.db import connection

from opsconsole import audit
from opsconsole.models import AuditEvent, AuditImmutable

pytestmark = pytest.mark.django_db


def test_it_records_one_event_with_its_fields(make_user):
    user = make_user("operator")
    with audit.record(
        user, "cache.invalidate_key", "main:user:1", ip_address="10.0.0.5", key="user:1"
    ) as ev:
        ev.params["deleted"] = 1
    event = AuditEvent.objects.get()
    assert (event.actor, event.actor_name, event.action) == (
        user,
        user.username,
        "cache.invalidate_key",
    )
    assert event.target == "main:user:1"
    assert event.params == {"key": "user:1", "deleted": 1}
    assert event.outcome == "ok" and event.error == ""
    assert event.ip_address == "10.0.0.5"


def test_it_records_the_failure_and_reraises(make_user):
    with pytest.raises(ValueError), audit.record(make_user("admin"), "x.do", "t"):
        raise ValueError("boom")
    event = AuditEvent.objects.get()
    assert event.outcome == "failed"
    assert event.error == "ValueError: boom"


def test_it_refuses_update_and_delete():
    event = audit.write("cli:root", "x.do", "t")
    event.target = "changed"
    with pytest.raises(AuditImmutable):
        event.save()
    with pytest.raises(AuditImmutable):
        event.delete()
    with pytest.raises(AuditImmutable):
        AuditEvent.objects.filter(pk=event.pk).update(target="changed")
    with pytest.raises(AuditImmutable):
        AuditEvent.objects.all().delete()


def test_verify_passes_then_names_the_altered_row(capsys):
    events = [audit.write("cli:root", "x.do", f"t{i}", params={"i": i}) for i in range(5)]
    call_command("audit", "verify")
    assert "5 events, chain intact" in capsys.readouterr().out

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE opsconsole_auditevent SET target = %s WHERE id = %s", ["forged", events[2].pk]
        )
    with pytest.raises(SystemExit) as exit_info:
        call_command("audit", "verify")
    assert exit_info.value.code == 1
    assert f"event {events[2].pk}" in capsys.readouterr().err


def test_the_chain_links_each_event_to_the_previous():
    first = audit.write("a", "x.do")
    second = audit.write("b", "x.do")
    assert first.prev_hash == "0" * 64
    assert second.prev_hash == first.hash
