"""The BigQuery inventory against the emulator, which leaves numRows/numBytes at 0 for
rows written by INSERT: the rows are counted (and say so), the size is not shown as 0."""

import pytest


def test_it_counts_the_rows_the_emulator_does_not_report(bq_dataset):
    raw = bq_dataset.client.get_table(bq_dataset.ref("payments"))
    assert (raw.num_rows, raw.num_bytes) == (0, 0)  # what the emulator says

    (payments,) = [t for t in bq_dataset.list_tables() if t.name == "payments"]

    assert payments.rows == 1500
    assert payments.rows_counted is True
    assert payments.bytes is None


@pytest.mark.django_db
def test_the_inventory_page_shows_counted_rows_and_no_false_size(bq_dataset, client_as):
    client = client_as("viewer")

    page = client.get("/partitions/", {"warehouse": "bq"}).content.decode()
    detail = client.get("/partitions/bq/table/", {"schema": "x", "table": "payments"})

    assert "1,500" in page and "counted" in page and "not reported" in page
    assert "0 bytes" not in page
    assert "1,500" in detail.content.decode() and "counted" in detail.content.decode()
