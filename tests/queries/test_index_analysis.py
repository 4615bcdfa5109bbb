"""The indexes page serves the last analysis and never waits on the advisor: a worker
computes it once for many viewers, the page says when, and Re-analyse starts anew."""

from datetime import timedelta

import pytest
from django.utils import timezone

from partitions.queries import analyses
from partitions.queries.models import IndexAnalysis

from .test_views import ANALYSING, analysed_report


def options(schema: str) -> dict:
    return {"containing": schema}


@pytest.mark.django_db(transaction=True)
def test_it_answers_at_once_and_a_worker_computes_the_analysis(
    client_as, shop, run_statement, celery_worker
):
    run_statement("SELECT * FROM {s}.orders WHERE customer_id = %s", shop, [3])
    viewer = client_as("viewer")
    first = viewer.get(f"/queries/indexes/report/?schema={shop}").content.decode()
    # the request answered before any analysis existed: it did not compute one itself
    assert "No analysis of these options yet." in first and "orders_customer_id_idx" not in first
    assert ANALYSING in first and 'hx-trigger="every 2s"' in first
    page = analysed_report(viewer, f"schema={shop}")
    assert "orders_customer_id_idx" in page and "Analysis computed" in page
    assert 'hx-trigger="every 2s"' not in page  # polling stops with the result
    (analysis,) = IndexAnalysis.objects.filter(options__containing=shop)
    assert analysis.advice["suggestions"][0]["columns"] == ["customer_id"]
    assert analysis.took_s > 0 and analysis.refreshing_since is None


@pytest.mark.django_db(transaction=True)
def test_it_serves_a_fresh_analysis_without_computing_again(
    client_as, shop, run_statement, celery_worker
):
    run_statement("SELECT * FROM {s}.orders WHERE customer_id = %s", shop, [3])
    viewer = client_as("viewer")
    analysed_report(viewer, f"schema={shop}")
    computed_at = IndexAnalysis.objects.get(options__containing=shop).computed_at
    page = viewer.get(f"/queries/indexes/report/?schema={shop}").content.decode()
    assert ANALYSING not in page and "orders_customer_id_idx" in page
    analysis = IndexAnalysis.objects.get(options__containing=shop)
    assert analysis.computed_at == computed_at and analysis.refreshing_since is None


@pytest.mark.django_db(transaction=True)
def test_many_viewers_start_one_analysis(shop, run_statement, celery_worker):
    run_statement("SELECT * FROM {s}.orders WHERE customer_id = %s", shop, [3])
    analysis = analyses.current("main", options(shop))
    assert analyses.request_refresh(analysis) is True
    assert analyses.request_refresh(analyses.current("main", options(shop))) is False
    assert IndexAnalysis.objects.filter(options__containing=shop).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_stale_analysis_is_shown_while_it_is_computed_again(
    client_as, shop, run_statement, celery_worker
):
    run_statement("SELECT * FROM {s}.orders WHERE customer_id = %s", shop, [3])
    viewer = client_as("viewer")
    analysed_report(viewer, f"schema={shop}")
    old = timezone.now() - timedelta(seconds=analyses.fresh_s() + 60)
    IndexAnalysis.objects.filter(options__containing=shop).update(computed_at=old)
    page = viewer.get(f"/queries/indexes/report/?schema={shop}").content.decode()
    assert ANALYSING in page and "orders_customer_id_idx" in page  # the last one, meanwhile
    analysed_report(viewer, f"schema={shop}")
    assert IndexAnalysis.objects.get(options__containing=shop).computed_at > old


@pytest.mark.django_db(transaction=True)
def test_re_analyse_starts_a_new_analysis(client_as, shop, run_statement, celery_worker):
    run_statement("SELECT * FROM {s}.orders WHERE customer_id = %s", shop, [3])
    viewer = client_as("viewer")
    analysed_report(viewer, f"schema={shop}")
    before = IndexAnalysis.objects.get(options__containing=shop).computed_at
    response = viewer.post(f"/queries/indexes/report/?schema={shop}", HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and ANALYSING in response.content.decode()
    analysed_report(viewer, f"schema={shop}")
    assert IndexAnalysis.objects.get(options__containing=shop).computed_at > before
