"""The web log on call: a refused request is one line, a server error keeps its traceback."""

import io
import logging

import pytest
from django.test import RequestFactory

from opsconsole.logfilters import RefusedRequestsWithoutTraceback


@pytest.fixture
def web_log():
    """What the configured console handler (settings.LOGGING) writes, as text."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


def test_it_logs_a_refused_request_as_one_line(client_as, web_log):
    client = client_as("viewer")

    response = client.get("/users/")

    assert response.status_code == 403
    about_it = [line for line in web_log.getvalue().splitlines() if "/users/" in line]
    assert about_it == [
        f"refused GET /users/ for {client.user.username} (role viewer): This needs the admin role."
    ]
    assert "Traceback" not in web_log.getvalue()


def test_it_logs_a_bad_host_header_as_one_line(client, web_log):
    response = client.get("/healthz", HTTP_HOST="evil.example")

    assert response.status_code == 400
    assert web_log.getvalue().splitlines() == [
        "Invalid HTTP_HOST header: 'evil.example'."
        " You may need to add 'evil.example' to ALLOWED_HOSTS."
    ]


def test_it_keeps_the_traceback_of_a_server_error():
    record = _record_with_exception(status_code=500)

    RefusedRequestsWithoutTraceback().filter(record)

    assert "Traceback" in logging.Formatter().format(record)


def test_it_drops_the_traceback_of_a_bad_request():
    record = _record_with_exception(status_code=400)

    assert RefusedRequestsWithoutTraceback().filter(record) is True

    assert logging.Formatter().format(record) == "Bad request: /x/"


def _record_with_exception(status_code: int) -> logging.LogRecord:
    try:
        raise ValueError("refused")
    except ValueError as exc:
        record = logging.LogRecord(
            "django.request",
            logging.WARNING,
            __file__,
            1,
            "Bad request: %s",
            ("/x/",),
            (type(exc), exc, exc.__traceback__),
        )
    record.status_code = status_code
    record.request = RequestFactory().get("/x/")
    return record
