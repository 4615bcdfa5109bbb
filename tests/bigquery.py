"""The BigQuery emulator (PyPI bqemulator, installed by scripts/setup.sh) for the tests
that run BigQuery end to end: a session subprocess and a fresh dataset per test."""

import pytest

BQ_PROJECT = "demo-proj"


def emulator_binary() -> str:
    import os
    import shutil
    from pathlib import Path

    candidates = [
        os.environ.get("BQEMULATOR", ""),
        str(Path(__file__).resolve().parents[1] / ".venv" / "bqemulator" / "bin" / "bqemulator"),
        shutil.which("bqemulator") or "",
    ]
    found = next((c for c in candidates if c and Path(c).exists()), None)
    assert found, "bqemulator is not installed: run scripts/setup.sh"
    return found


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def bq_emulator():
    """The BigQuery emulator as a subprocess on a free port; its REST endpoint."""
    import subprocess
    import time
    import urllib.request

    port, grpc = free_port(), free_port()
    proc = subprocess.Popen(
        [
            emulator_binary(),
            "start",
            "--rest-port",
            str(port),
            "--grpc-port",
            str(grpc),
            "--project",
            BQ_PROJECT,
            "--log-level",
            "error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(
                f"{endpoint}/bigquery/v2/projects/{BQ_PROJECT}/datasets", timeout=1
            )
            break
        except OSError:
            assert proc.poll() is None, "the BigQuery emulator exited at start"
            assert time.monotonic() < deadline, "the BigQuery emulator did not start in 60 s"
            time.sleep(0.2)
    yield endpoint
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def bq_dataset(bq_emulator, settings):
    """A fresh dataset with a payments table and a view on it, as warehouse "bq"."""
    import uuid

    from partitions import warehouses
    from partitions.backends.bigquery import BigQueryBackend

    name = f"ds_{uuid.uuid4().hex[:8]}"
    backend = BigQueryBackend(
        warehouses.parse(f"bigquery://{BQ_PROJECT}/{name}?endpoint={bq_emulator}")
    )
    backend.client.create_dataset(f"{BQ_PROJECT}.{name}")
    table = backend.name("payments")
    backend.query(
        f"CREATE TABLE {table} (id INT64, customer_id INT64, amount_cents INT64,"
        " currency STRING, status STRING, description STRING, created_at TIMESTAMP,"
        " updated_at TIMESTAMP)"
    )
    backend.query(
        f"INSERT INTO {table} SELECT x, MOD(x, 50), x * 7, 'EUR',"
        " IF(MOD(x, 2) = 0, 'COMPLETED', 'PENDING'), IF(MOD(x, 10) = 0, NULL, 'order'),"
        " CASE WHEN MOD(x, 97) = 0 THEN NULL"
        "      WHEN MOD(x, 89) = 0 THEN TIMESTAMP '2024-03-01 00:00:00+00'"
        "      ELSE TIMESTAMP_ADD(TIMESTAMP '2024-01-01 00:00:00+00', INTERVAL x * 170 MINUTE) END,"
        " TIMESTAMP '2024-01-01 00:00:00+00' FROM UNNEST(GENERATE_ARRAY(1, 1500)) AS x"
    )
    backend.query(
        f"CREATE VIEW {backend.name('payments_by_status')} AS"
        f" SELECT status, COUNT(*) AS n FROM {table} GROUP BY status"
    )
    settings.WAREHOUSES = {
        **settings.WAREHOUSES,
        "bq": f"bigquery://{BQ_PROJECT}/{name}?endpoint={bq_emulator}",
    }
    yield backend
    backend.client.delete_dataset(f"{BQ_PROJECT}.{name}", delete_contents=True, not_found_ok=True)
    backend.close()


def bq_checksum(backend, table: str) -> tuple[int, str]:
    return tuple(
        backend.query(
            "SELECT COUNT(*), CAST(COALESCE(SUM(CAST(FARM_FINGERPRINT(TO_JSON_STRING(t))"
            f" AS BIGNUMERIC)), 0) AS STRING) FROM {backend.name(table)} AS t"
        )[0]
    )
