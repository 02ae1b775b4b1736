"""The SQLAlchemy engine of a BigQuery dataset, built from an Airflow connection (hooks own connections).

Our own small hook, not the Google provider's ``BigQueryHook``: ``apache-airflow-providers-google`` 22.8.0 does
not install next to this project's pins (with them as constraints pip finds no resolution; without, it lifts
pydantic past fideslang's cap and brings ray, litellm, google-ads and the rest of Google Cloud), see
docs/warehouses-and-documents.md. This builds a ``google.cloud.bigquery.Client`` from the connection and hands it
to ``sqlalchemy-bigquery`` (``user_supplied_client``).

Connection (any type; ``google_cloud_platform`` or ``bigquery`` by convention): *schema* = the dataset, extras
``project`` (required), ``location``, ``keyfile_dict`` (a service account's JSON key, as a JSON string or an
object) and ``api_endpoint`` (another endpoint than Google's, e.g. a local emulator; with it and no key, the
client uses anonymous credentials). Without a key and an endpoint, Application Default Credentials apply.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, create_engine

from ..errors import RequestError

BIGQUERY_CONN_TYPES = ("google_cloud_platform", "gcpbigquery", "bigquery")


def bigquery_engine(conn_id: str, extra: dict[str, Any], dataset: str | None) -> Engine:
    """A SQLAlchemy engine on the connection's dataset: the connector names tables unqualified, and the client's
    default dataset resolves them."""
    from google.api_core.client_options import ClientOptions
    from google.cloud import bigquery

    project = extra.get("project") or extra.get("project_id")
    dataset = dataset or extra.get("dataset")
    if not project or not dataset:
        raise RequestError(f"BigQuery connection '{conn_id}' needs the extra 'project' and a dataset (its schema, "
                           "or the extra 'dataset')")
    endpoint = extra.get("api_endpoint")
    client = (_jobs_insert_client() if endpoint else bigquery.Client)(
        project=project, location=extra.get("location"), credentials=_credentials(conn_id, extra, endpoint),
        client_options=ClientOptions(api_endpoint=endpoint) if endpoint else None,
        default_query_job_config=bigquery.QueryJobConfig(default_dataset=f"{project}.{dataset}"))
    return create_engine(f"bigquery://{project}/{dataset}?user_supplied_client=True", connect_args={"client": client})


def _jobs_insert_client() -> Any:
    from google.cloud import bigquery

    class JobsInsertClient(bigquery.Client):
        """For another endpoint than Google's (a stand-in): every query as a job (``jobs.insert``), its DML count
        taken from the job. bqemulator 1.4.0's ``jobs.query``, the driver's fast path, ignores the default
        dataset; its ``getQueryResults`` leaves out the rows a DML statement changed."""

        def query_and_wait(self, query: str, **kwargs: Any) -> Any:
            page_size = kwargs.pop("page_size", None)
            job = self.query(query, **{k: v for k, v in kwargs.items() if k in ("job_config", "location", "project")})
            rows = job.result(page_size=page_size)
            rows._num_dml_affected_rows = job.num_dml_affected_rows
            return rows

    return JobsInsertClient


def _credentials(conn_id: str, extra: dict[str, Any], endpoint: str | None) -> Any:
    key = extra.get("keyfile_dict")
    if key:
        from google.oauth2 import service_account

        info = json.loads(key) if isinstance(key, str) else key
        try:
            return service_account.Credentials.from_service_account_info(info)
        except (ValueError, KeyError) as exc:
            raise RequestError(f"BigQuery connection '{conn_id}': the keyfile_dict extra is not a service "
                               f"account key ({type(exc).__name__})") from None
    if endpoint:
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()
    return None  # Application Default Credentials
