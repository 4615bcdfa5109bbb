"""The audit log cannot be rewound or rewritten by someone with write access to the
console database but without AUDIT_KEY: each attack is raw SQL, and `audit verify`
names the first bad event."""

import hashlib
import importlib
import json

import pytest
import redis
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from opsconsole import audit
from opsconsole.models import AuditChainHead, AuditEvent

pytestmark = pytest.mark.django_db
legacy_migration = importlib.import_module("opsconsole.migrations.0004_audit_keyed_chain")


@pytest.fixture
def anchor():
    """The Redis anchor of this test process, empty at the start."""
    conn = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    conn.delete(audit.anchor_key())
    yield conn
    conn.delete(audit.anchor_key())
    conn.close()


@pytest.fixture
def events(anchor, django_capture_on_commit_callbacks):
    """Five events, written the normal way (their heads anchored after commit)."""
    with django_capture_on_commit_callbacks(execute=True):
        return [audit.write("cli:root", "x.do", f"t{i}", params={"i": i}) for i in range(5)]


def sql(statement: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, list(params))


def verify(capsys, *args) -> str:
    """Run `audit verify`; the failure text, or "" when intact."""
    try:
        call_command("audit", "verify", *args)
    except SystemExit as exit_info:
        assert exit_info.code == 1
        return capsys.readouterr().err
    capsys.readouterr()
    return ""


def rehash_without_key(event: AuditEvent, **changes) -> str:
    """What a forger without the key can do: change fields, recompute a plain SHA-256."""
    for name, value in changes.items():
        setattr(event, name, value)
    return hashlib.sha256((event.prev_hash + event.canonical_content()).encode()).hexdigest()


def test_an_intact_chain_verifies_with_its_anchor(events, anchor, capsys):
    assert verify(capsys, "--anchor") == ""
    assert anchor.hgetall(audit.anchor_key())["event_id"] == str(events[-1].pk)
    assert all(e.key_id == settings.AUDIT_KEY_ID for e in events)


def test_an_edited_row_is_named(events, capsys):
    sql("UPDATE opsconsole_auditevent SET target = %s WHERE id = %s", ["forged", events[2].pk])
    err = verify(capsys)
    assert f"event {events[2].pk} " in err and "does not match its keyed hash" in err


def test_a_deleted_middle_row_names_the_event_after_it(events, capsys):
    sql("DELETE FROM opsconsole_auditevent WHERE id = %s", [events[2].pk])
    err = verify(capsys)
    assert f"event {events[3].pk} " in err and "link to the previous event" in err


def test_deleting_the_newest_rows_is_detected_by_the_signed_head(events, capsys):
    sql("DELETE FROM opsconsole_auditevent WHERE id >= %s", [events[3].pk])
    err = verify(capsys)
    assert f"names event {events[4].pk} as the newest" in err
    assert f"ends at event {events[2].pk}" in err


def test_moving_the_head_back_without_the_key_is_detected(events, capsys):
    sql("DELETE FROM opsconsole_auditevent WHERE id >= %s", [events[3].pk])
    sql(
        "UPDATE opsconsole_auditchainhead SET last_event_id = %s, last_hash = %s",
        [events[2].pk, events[2].hash],
    )
    assert "head's signature does not match" in verify(capsys)


def test_a_replayed_old_head_is_caught_by_the_anchor(events, anchor, capsys):
    # The forger saved the signed head after event 3 and puts it back after
    # deleting events 4 and 5: the database alone looks consistent again.
    old = audit.verify()  # intact
    assert old.intact
    head = AuditChainHead.objects.get()
    sql("DELETE FROM opsconsole_auditevent WHERE id >= %s", [events[3].pk])
    saved = AuditChainHead(last_event_id=events[2].pk, last_hash=events[2].hash, key_id=head.key_id)
    saved.signature = saved.compute_signature(settings.AUDIT_KEY.encode())  # the saved copy
    sql(
        "UPDATE opsconsole_auditchainhead SET last_event_id = %s, last_hash = %s, signature = %s",
        [saved.last_event_id, saved.last_hash, saved.signature],
    )
    assert verify(capsys) == ""
    err = verify(capsys, "--anchor")
    assert f"anchor names event {events[4].pk}" in err and "truncated or rewritten" in err


def test_a_rewrite_with_recomputed_plain_hashes_is_detected(events, capsys):
    prev = events[1].hash
    for event in events[2:]:
        event.prev_hash = prev
        changes = {"key_id": ""} if event is not events[2] else {"key_id": "", "target": "x"}
        prev = rehash_without_key(event, **changes)
        sql(
            "UPDATE opsconsole_auditevent SET target = %s, key_id = '', prev_hash = %s, "
            "hash = %s WHERE id = %s",
            [event.target, event.prev_hash, prev, event.pk],
        )
    sql("UPDATE opsconsole_auditchainhead SET last_hash = %s", [prev])
    err = verify(capsys)
    assert f"event {events[2].pk} " in err and "unkeyed hash after the keyed chain began" in err


def test_a_rewrite_under_a_guessed_key_is_detected(events, capsys):
    forged = events[1]
    forged.target = "forged"
    forged_hash = forged.compute_hash(b"guessed-key")
    sql(
        "UPDATE opsconsole_auditevent SET target = %s, hash = %s WHERE id = %s",
        ["forged", forged_hash, forged.pk],
    )
    err = verify(capsys)
    assert f"event {forged.pk} " in err


def test_a_rotated_key_still_verifies_old_events_while_it_is_kept(events, capsys, settings):
    old_id, old_key = settings.AUDIT_KEY_ID, settings.AUDIT_KEY
    settings.AUDIT_KEY_ID, settings.AUDIT_KEY = "2", "a-new-key-" + "n" * 30
    settings.AUDIT_KEYS = {old_id: old_key}
    newer = audit.write("cli:root", "x.after_rotation")
    assert newer.key_id == "2"
    assert verify(capsys) == ""
    settings.AUDIT_KEYS = {}
    err = verify(capsys)
    assert f"event {events[0].pk} " in err and "not configured (AUDIT_KEYS)" in err


def test_the_migration_keeps_the_legacy_prefix_and_protects_it(capsys):
    legacy, prev = [], audit.GENESIS
    for i in range(3):
        event = AuditEvent(
            created_at=audit.timezone.now(),
            actor_name="old",
            action="x.old",
            outcome="ok",
            target=f"l{i}",
            prev_hash=prev,
        )
        event.hash = event.compute_hash()  # plain SHA-256, as before keyed hashes
        event.save()
        legacy.append(event)
        prev = event.hash
    legacy_migration.mark_legacy_prefix(apps, None)
    keyed = audit.write("cli:root", "x.new")
    assert verify(capsys) == ""
    # Rewrite the whole legacy prefix with recomputed plain hashes: the first keyed
    # event's HMAC covers the old last legacy hash, so the link breaks there.
    prev = audit.GENESIS
    for event in legacy:
        event.prev_hash = prev
        prev = rehash_without_key(event, target="forged")
        sql(
            "UPDATE opsconsole_auditevent SET target = 'forged', prev_hash = %s, hash = %s "
            "WHERE id = %s",
            [event.prev_hash, prev, event.pk],
        )
    err = verify(capsys)
    assert f"event {keyed.pk} " in err and "link to the previous event" in err


def test_verify_json_names_the_first_bad_event(events, capsys):
    sql("DELETE FROM opsconsole_auditevent WHERE id = %s", [events[4].pk])
    with pytest.raises(SystemExit):
        call_command("audit", "verify", "--json")
    report = json.loads(capsys.readouterr().out)
    assert report["broken_id"] == events[4].pk and report["checked"] == 4
