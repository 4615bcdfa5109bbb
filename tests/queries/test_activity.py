"""Live statements, and cancel/terminate (admin, typed pid, audited)."""

import threading
import time

import psycopg
import pytest

from opsconsole.models import AuditEvent


@pytest.fixture
def sleeper(warehouse_db):
    """A backend running pg_sleep(30); yields (pid, outcome dict)."""
    conn = psycopg.connect(warehouse_db, autocommit=True, application_name="sleeper-test")
    pid = conn.info.backend_pid
    outcome = {}

    def sleep():
        try:
            conn.execute("SELECT pg_sleep(30)")
        except psycopg.Error as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=sleep, daemon=True)
    thread.start()
    time.sleep(0.3)
    yield pid, outcome, thread
    if thread.is_alive():
        with psycopg.connect(warehouse_db, autocommit=True) as other:
            other.execute("SELECT pg_cancel_backend(%s)", [pid])
    thread.join(timeout=5)
    conn.close()


@pytest.mark.django_db
def test_it_lists_a_running_statement_with_its_duration(client_as, sleeper):
    pid, _, _ = sleeper
    response = client_as("viewer").get("/queries/activity/?warehouse=main")
    page = response.content.decode()
    assert response.status_code == 200
    assert f"<td>{pid}</td>" in page and "SELECT pg_sleep(30)" in page


@pytest.mark.django_db
def test_it_cancels_a_statement_with_the_typed_pid(client_as, sleeper):
    pid, outcome, thread = sleeper
    admin = client_as("admin")
    admin.post(f"/queries/activity/{pid}/cancel/", {"warehouse": "main", "confirm": "1"})
    assert not AuditEvent.objects.filter(action="queries.cancel_backend").exists()
    assert thread.is_alive()
    admin.post(f"/queries/activity/{pid}/cancel/", {"warehouse": "main", "confirm": str(pid)})
    thread.join(timeout=5)
    assert isinstance(outcome["error"], psycopg.errors.QueryCanceled)
    event = AuditEvent.objects.get(action="queries.cancel_backend")
    assert (event.target, event.outcome, event.params["signalled"]) == (f"main:{pid}", "ok", True)


@pytest.mark.django_db
def test_it_terminates_a_backend(client_as, sleeper):
    pid, outcome, thread = sleeper
    client_as("admin").post(
        f"/queries/activity/{pid}/terminate/", {"warehouse": "main", "confirm": str(pid)}
    )
    thread.join(timeout=5)
    assert isinstance(outcome["error"], psycopg.OperationalError)
    assert AuditEvent.objects.get(action="queries.terminate_backend").outcome == "ok"


@pytest.mark.django_db
def test_it_refuses_an_operator_to_terminate(client_as, sleeper):
    pid, _, thread = sleeper
    response = client_as("operator").post(
        f"/queries/activity/{pid}/terminate/", {"warehouse": "main", "confirm": str(pid)}
    )
    assert response.status_code == 403
    assert thread.is_alive()


@pytest.mark.django_db
def test_it_reports_a_backend_that_is_gone(client_as):
    response = client_as("admin").post(
        "/queries/activity/999999/cancel/", {"warehouse": "main", "confirm": "999999"}, follow=True
    )
    assert "No backend with pid 999999" in response.content.decode()
    assert AuditEvent.objects.get(action="queries.cancel_backend").outcome == "failed"
