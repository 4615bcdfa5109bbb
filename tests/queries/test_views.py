"""The Queries pages render for a viewer, and faults become messages, never a 500."""

import time

import pytest

from jobs.models import Run

ANALYSING = "Analysing the workload in a worker"


def analysed_report(client, query: str, timeout_s: float = 60) -> str:
    """The index report once the worker's analysis of these options is there."""
    deadline = time.monotonic() + timeout_s
    while True:
        page = client.get(f"/queries/indexes/report/?{query}").content.decode()
        if ANALYSING not in page or time.monotonic() > deadline:
            return page
        time.sleep(0.2)


@pytest.mark.django_db
def test_it_shows_slow_queries_to_a_viewer(client_as, shop, run_statement):
    run_statement("SELECT pg_sleep(0.02), id FROM {s}.customers WHERE id = %s", shop, [1])
    response = client_as("viewer").get(
        f"/queries/?warehouse=main&min_ms=15&order=mean&schema={shop}"
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "pg_sleep" in page and "Explain</a>" in page
    assert "Reset stats" not in page  # admin only


@pytest.mark.django_db
def test_it_answers_htmx_with_the_rows_partial(client_as):
    response = client_as("viewer").get("/queries/?warehouse=main", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith('<section class="card" id="slow-rows">')


@pytest.mark.django_db
def test_it_says_when_a_warehouse_is_unreachable(client_as, warehouses):
    warehouses(main="postgres://postgres@127.0.0.1:1/nowhere")
    response = client_as("viewer").get("/queries/")
    assert response.status_code == 200
    assert "is unreachable" in response.content.decode()
    report = client_as("viewer").get("/queries/indexes/report/")
    assert "is unreachable" in report.content.decode()


@pytest.mark.django_db(transaction=True)
def test_it_shows_suggestions_with_their_create_statement(
    client_as, shop, run_statement, celery_worker
):
    run_statement("SELECT * FROM {s}.orders WHERE customer_id = %s", shop, [3])
    page = analysed_report(client_as("operator"), f"min_ms=0&schema={shop}")
    assert (
        f"CREATE INDEX CONCURRENTLY &quot;orders_customer_id_idx&quot; ON &quot;{shop}&quot;"
        in page
    )
    assert "Apply…" in page


@pytest.mark.django_db(transaction=True)
def test_it_takes_the_advisor_options_and_says_why_not(
    client_as, shop, run_statement, celery_worker
):
    run_statement("SELECT * FROM {s}.orders WHERE customer_id = %s", shop, [3])
    run_statement("SELECT id FROM {s}.orders WHERE total = %s", shop, [7])
    page = analysed_report(client_as("viewer"), f"schema={shop}&max_per_table=1")
    assert page.count("CREATE INDEX CONCURRENTLY") == 1
    assert "left out by the budget" in page
    assert "table writes" in page and "of the analysed statements" in page


@pytest.mark.django_db
def test_it_explains_a_listed_statement_for_a_viewer(client_as, shop):
    viewer = client_as("viewer")
    statement = f'SELECT * FROM "{shop}".orders WHERE total = $1'
    response = viewer.post("/queries/explain/", {"warehouse": "main", "statement": statement})
    page = response.content.decode()
    assert response.status_code == 200
    assert "force_generic_plan" in page and "Seq Scan" in page


@pytest.mark.django_db
def test_it_keeps_explain_analyze_for_operators(client_as, shop):
    form = {"warehouse": "main", "statement": "SELECT 1", "analyze": "on"}
    response = client_as("viewer").post("/queries/explain/", form)
    assert response.status_code == 400
    assert "needs the operator role" in response.content.decode()
    assert client_as("operator").post("/queries/explain/", form).status_code == 200


@pytest.mark.django_db
def test_it_previews_an_apply_with_the_statement_it_will_run(client_as):
    response = client_as("operator").get(
        "/queries/indexes/apply/?warehouse=main&schema=s&table=t&columns=a,b&name=t_a_b_idx"
    )
    assert (
        "CREATE INDEX CONCURRENTLY &quot;t_a_b_idx&quot; "
        "ON &quot;s&quot;.&quot;t&quot; (&quot;a&quot;, &quot;b&quot;)" in response.content.decode()
    )
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_it_previews_an_expression_index_with_its_checked_statement(client_as):
    columns = "date_trunc('day', seen),%20email%20text_pattern_ops"
    response = client_as("operator").get(
        f"/queries/indexes/apply/?warehouse=main&schema=s&table=t&columns={columns}&name=t_idx"
    )
    assert (
        "(pg_catalog.date_trunc(&#x27;day&#x27;, seen)), &quot;email&quot; text_pattern_ops"
        in response.content.decode()
    )


@pytest.mark.django_db
def test_it_lists_applied_indexes_for_a_viewer(client_as):
    assert client_as("viewer").get("/queries/indexes/applied/").status_code == 200


@pytest.mark.django_db
def test_it_prefills_explain_with_a_listed_statement(client_as, shop, run_statement, wh):
    text = run_statement("SELECT id FROM {s}.orders WHERE total = %s", shop, [3])
    normalized = text.replace("%s", "$1")
    queryid = wh.execute(
        "SELECT queryid FROM pg_stat_statements WHERE query = %s", [normalized]
    ).fetchone()[0]
    response = client_as("viewer").get(f"/queries/explain/?warehouse=main&queryid={queryid}")
    assert normalized.replace('"', "&quot;") in response.content.decode()
