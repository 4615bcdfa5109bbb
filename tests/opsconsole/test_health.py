import pytest

CLOSED_PORT = "redis://127.0.0.1:1/0"


def test_healthz_needs_nothing(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_503_and_names_redis_when_it_is_down(client_as, settings):
    settings.CELERY_BROKER_URL = CLOSED_PORT
    settings.CACHE_TARGETS = {"main": CLOSED_PORT}
    response = client_as("viewer").get("/readyz")  # details need a login
    assert response.status_code == 503
    checks = {c["name"]: c for c in response.json()["checks"]}
    assert checks["database"]["ok"] is True
    assert checks["broker"]["ok"] is False and "Connection" in checks["broker"]["detail"]
    assert checks["cache:main"]["ok"] is False
    assert checks["worker"]["ok"] is False


def test_readyz_is_200_with_everything_up(client_as, celery_worker, warehouse_db):
    response = client_as("viewer").get("/readyz")  # details need a login
    body = response.json()
    assert response.status_code == 200, body
    assert {c["name"] for c in body["checks"]} == {
        "database",
        "broker",
        "worker",
        "cache:main",
        "warehouse:main",
    }
    assert all(c["latency_ms"] >= 0 for c in body["checks"])


@pytest.mark.django_db
def test_pages_render_with_a_banner_when_redis_is_down(client_as, settings):
    from opsconsole import context_processors

    settings.CELERY_BROKER_URL = CLOSED_PORT
    context_processors._BROKER_STATE["checked_at"] = 0.0
    try:
        response = client_as("viewer").get("/audit/")
    finally:
        context_processors._BROKER_STATE["checked_at"] = 0.0
    assert response.status_code == 200
    assert b"Redis (the job broker) is unreachable" in response.content
