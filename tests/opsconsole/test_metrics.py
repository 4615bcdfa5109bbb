from jobs.models import Run
from opsconsole import audit


def test_it_exposes_runs_audit_and_readiness(celery_worker, client):
    Run.objects.create(name="table_sync", actor_name="x", status="failed", duration_ms=100)
    audit.write("cli:test", "x.do")
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'opsconsole_runs{job="table_sync",status="failed"} 1' in body
    assert 'opsconsole_audit_events{outcome="ok"} 1' in body
    assert 'opsconsole_ready{check="database"} 1' in body


def test_it_refuses_other_addresses_without_a_token(db, client):
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403


def test_it_needs_the_token_when_one_is_set(db, client, settings):
    settings.METRICS_TOKEN = "s3cret"
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    settings.READYZ_REQUIRE_WORKER = False
    right = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert right.status_code == 200
