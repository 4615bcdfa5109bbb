"""Structured values read like an operator's notes: no Python reprs, no secrets."""

import pytest
from django.test import override_settings

from jobs.models import Run
from opsconsole.display import facts


def test_it_labels_formats_and_hides_secrets():
    html = facts(
        {
            "rows": 1234567,
            "bytes": 30646272,
            "duration_ms": 2500,
            "null_keys_go_to": "",
            "approval": "signed:token:abc",
            "run_id": 7,
            "partitions": [{"name": "p2024_01", "rows": 1000}],
        }
    )
    assert "<dt>Rows</dt><dd>1,234,567</dd>" in html
    assert "29.2\xa0MB" in html
    assert "2.5 s" in html
    assert "<dt>Null keys go to</dt><dd>—</dd>" in html
    assert "signed:token" not in html and "hidden" in html
    assert 'href="/jobs/runs/7/"' in html
    assert "<th>Name</th>" in html and "<td>p2024_01</td>" in html
    assert "{" not in html and "'" not in html


@override_settings(TIME_ZONE="Europe/Paris")
def test_it_shows_timestamps_in_the_operators_zone():
    assert "2026-12-02 14:00:00 CET" in facts({"at": "2026-12-02T13:00:00+00:00"})


def test_it_escapes_what_it_shows():
    html = facts({"<b>": "<script>alert(1)</script>"})
    assert "<script>" not in html and "&lt;script&gt;" in html


@pytest.mark.django_db
def test_the_run_page_shows_parameters_and_result_without_reprs(client_as):
    run = Run.objects.create(
        name="cache.invalidate_pattern",
        actor_name="x",
        status="succeeded",
        params={"target": "main", "pattern": "user:*", "approval": "sig-123"},
        result={"deleted": 162070, "seconds": 3.5},
    )
    page = client_as("viewer").get(f"/jobs/runs/{run.pk}/").content.decode()
    assert "sig-123" not in page
    assert "162,070" in page and "user:*" in page
    assert "{'" not in page and "&#x27;deleted&#x27;" not in page
