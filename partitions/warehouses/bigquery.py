"""BigQuery warehouse clients: the only place the console builds one.

A URL with ?endpoint= (the emulator) gets anonymous credentials and that API
endpoint; without it, Google's endpoint and the environment's credentials.
"""

from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from . import config
from .errors import WarehouseUnreachable

PING_RETRY = bigquery.DEFAULT_RETRY.with_deadline(5)


def client(warehouse: config.Warehouse) -> bigquery.Client:
    """A client for the warehouse's project; the caller closes it."""
    if warehouse.endpoint:
        return bigquery.Client(
            project=warehouse.project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=warehouse.endpoint),
        )
    return bigquery.Client(project=warehouse.project)


def ping(url: str) -> config.Reachable:
    """What /readyz shows for a BigQuery warehouse: the dataset it reads, or an exception."""
    warehouse = config.parse(url)
    bq = client(warehouse)
    try:
        bq.get_dataset(f"{warehouse.project}.{warehouse.dataset}", timeout=5, retry=PING_RETRY)
    except (gexc.ServiceUnavailable, gexc.RetryError, OSError) as exc:
        raise WarehouseUnreachable(f"{warehouse.label} is unreachable: {exc}") from exc
    finally:
        bq.close()
    return config.Reachable(f"BigQuery {warehouse.project}.{warehouse.dataset}")
