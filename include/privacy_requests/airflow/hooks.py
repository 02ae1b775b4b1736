"""Hooks own connections: the SQL engine from a connection's DbApiHook, SMTP through SmtpHook, HTTP through
HttpHook, the store key from a Variable. Provider hooks are imported when first used, never while a DAG
file is parsed. Lookup failures are classified for the engine: a missing connection is the user's to fix
(no retry), a secrets backend or server that did not answer is transient (retried)."""

from __future__ import annotations

import logging
import smtplib
import time
from email.message import EmailMessage
from typing import Any

from airflow.sdk import BaseHook, Connection, Variable, conf
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException
from sqlalchemy import Engine

from ..connectors.base import Connector, ConnectorFor
from ..connectors.manual import ManualConnector
from ..connectors.preflight import erasure_preflight
from ..connectors.sql import SqlConnector
from ..connectors.vendor import VendorConnector
from ..drop.api import DropApi
from ..errors import DataSourceError, RequestError, TransientError
from ..model.drop_settings import DropSettings
from ..model.policy import Policy, Webhook
from ..model.settings import PrivacyConfig
from ..outbound.vendor_confirmation import Links, signing_key
from ..outbound.vendor_email import Send
from ..outbound.webhooks import Reply
from ..request.asking import Answer, Ask
from .constants import CONFIRM_PAGE, STORE_KEY_VARIABLE, confirming_vendors

log = logging.getLogger(__name__)


def store_key() -> str:
    try:
        return Variable.get(STORE_KEY_VARIABLE)
    except Exception:
        raise AirflowFailException(
            f"no request store key: set the Airflow Variable '{STORE_KEY_VARIABLE}' (for example the environment "
            "variable AIRFLOW_VAR_PRIVACY_REQUESTS_STORE_KEY) to a Fernet key") from None


def _connection(conn_id: str, what: str, kind: str = "") -> Connection:
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise RequestError(f"{kind}connection '{conn_id}' ({what}) does not exist") from None
    except Exception as exc:  # the API server or a secrets backend could not answer: try again later
        raise TransientError(f"could not look up connection '{conn_id}': {type(exc).__name__}") from None


def sql_connector(conn_id: str) -> SqlConnector:
    """A connector on the SQLAlchemy engine of an Airflow connection's hook (any SQL provider), looked up when
    the connector first needs it."""
    return SqlConnector(lambda: sql_engine(conn_id))


def sql_engine(conn_id: str) -> Engine:
    connection = _connection(conn_id, "privacy.yml maps a dataset to it")
    try:
        hook = connection.get_hook()
    except Exception as exc:
        raise RequestError(f"connection '{conn_id}' ({connection.conn_type}) has no usable hook: {exc}") from None
    if not hasattr(hook, "get_sqlalchemy_engine"):
        raise RequestError(f"connection '{conn_id}' ({type(hook).__name__}) does not provide a SQLAlchemy engine")
    options = _engine_options(connection)
    return hook.get_sqlalchemy_engine(options) if options else hook.get_sqlalchemy_engine()


def _engine_options(connection: Connection) -> dict[str, Any]:
    """What a provider's hook does not take from its connection but its driver needs. The Snowflake hook passes
    the extras ``host`` and ``port`` on but not ``protocol``: a server on plain HTTP (an emulator such as
    fakesnow on 127.0.0.1) is reached with the extra ``protocol: http``; a Snowflake account is HTTPS, the
    default."""
    if connection.conn_type != "snowflake":
        return {}
    protocol = (connection.extra_dejson or {}).get("protocol")
    return {"connect_args": {"protocol": protocol}} if protocol else {}


def saas_connector(config: PrivacyConfig, dataset: str) -> Connector:
    """A SaaS dataset's connector: connector params from the Airflow connection (extras by name, and host,
    login, password ... where privacy.yml's ``params`` says), an httpx client; both made at the first request.
    Sensitive values are registered with the secret masker; none is ever logged by the connector."""
    from ..connectors.saas import SaasConnector
    from ..connectors.saas_http import resolve_params

    target = config.mapping(dataset).saas
    assert target is not None
    saas = config.saas[dataset]

    def params() -> dict[str, Any]:
        connection = _connection(target.conn_id, f"privacy.yml maps dataset '{dataset}' to it")
        given: dict[str, Any] = dict(connection.extra_dejson or {})
        for name, attribute in target.params.items():
            value = getattr(connection, attribute, None)
            if attribute == "host" and value and connection.port:
                value = f"{value}:{connection.port}"
            if value not in (None, ""):
                given[name] = value
        resolved = resolve_params(saas, given, target.conn_id)
        _mask([resolved[p.name] for p in saas.connector_params if p.sensitive and p.name in resolved]
              + [connection.password or ""])
        return resolved

    def client() -> Any:
        import httpx

        # httpx logs every request's full URL at INFO: a query or a path can hold an email address (URL-encoded,
        # so the secret masker would not recognise it). The connector logs path templates instead.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        return httpx.Client(timeout=target.timeout_seconds, follow_redirects=False)

    return SaasConnector(config=saas, dataset=dataset, params=params, client=client,
                         declared=config.saas_declared.get(dataset, {}), protocol=target.protocol,
                         erase_by=target.erase_by, concurrency=target.concurrency)


def _mask(values: list[Any]) -> None:
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - the masker moved
        return
    for value in values:
        if value:
            mask_secret(str(value))


def connectors(config: PrivacyConfig, ask: Ask, answer: Answer | None = None) -> ConnectorFor:
    """Each dataset's connector, by its mapping in privacy.yml: the one place that tells the kinds apart."""

    def connector_for(dataset: str) -> Connector:
        mapping = config.mapping(dataset)
        if mapping.kind == "manual":
            return ManualConnector(ask=ask, answer=answer)
        if mapping.kind == "email":
            return VendorConnector()
        if mapping.kind == "saas":
            return saas_connector(config, dataset)
        if mapping.kind == "mongo":
            from ..connectors.mongo import MongoConnector  # pymongo only where a MongoDB dataset is used

            return MongoConnector(lambda: mongo_database(mapping.mongo_conn_id or ""))
        return sql_connector(mapping.conn_id or "")

    return connector_for


def mongo_database(conn_id: str) -> Any:
    """The MongoDB database of an Airflow connection (its schema, "Default DB"), through the provider's hook."""
    from airflow.providers.mongo.hooks.mongo import MongoHook

    connection = _connection(conn_id, "privacy.yml maps a dataset to it (mongo_conn_id)")
    if not connection.schema:
        raise RequestError(f"MongoDB connection '{conn_id}' names no database: set its schema (Default DB)")
    return MongoHook(mongo_conn_id=conn_id).get_conn()[connection.schema]


def erasure_problems(config: PrivacyConfig, policy: Policy, *, dry_run: bool = False) -> list[str]:
    """What would make a request fail half-way, checked before anything is touched: the SMTP connection for
    vendor emails and an access package delivered by email, the SaaS connections (a dry run sends no
    ``test_request``: the engine records it as planned), and every erasure target's real column type against
    its strategy (preflight)."""
    engines: list[Engine] = []

    def engine_for(conn_id: str) -> Engine:
        engines.append(sql_engine(conn_id))
        return engines[-1]

    emails = config.email_datasets or policy.access_package.deliver
    problems = (smtp_problems(config) if emails else []) + saas_problems(config, send=not dry_run)
    if config.email_datasets:
        problems += confirmation_problems(config)
    try:
        return problems + erasure_preflight(config, policy, engine_for)
    except TransientError as exc:
        # Nothing can be touched while the database is down either: the access step meets the outage and is
        # retried, and erasure still refuses a value that does not fit (DataSourceError, no retry).
        log.warning("Column types not checked before erasure: %s", exc)
        return problems
    finally:
        for engine in engines:
            engine.dispose()


def saas_problems(config: PrivacyConfig, send: bool = True) -> list[str]:
    """Each SaaS dataset's connection exists, gives every connector param, and its credentials pass the config's
    ``test_request``; an API that cannot be reached now is left to the access steps (they retry). With ``send``
    False (a dry run) the test requests are prepared, not sent."""
    problems = []
    for dataset in sorted(config.saas):
        connector = saas_connector(config, dataset)
        try:
            connector.test_connection(send=send)  # type: ignore[attr-defined]
        except TransientError as exc:
            log.warning("SaaS dataset %s not checked before the request: %s", dataset, exc)
        except (RequestError, DataSourceError) as exc:
            problems.append(str(exc))
    return problems


def smtp_problems(config: PrivacyConfig) -> list[str]:
    """The SMTP connection exists and a sender address is known (privacy.yml or the connection)."""
    conn_id = config.settings.smtp_conn_id
    try:
        connection = _connection(conn_id, "smtp_conn_id in privacy.yml", "SMTP ")
    except RequestError as exc:
        return [str(exc)]
    if not (config.settings.email_from or connection.extra_dejson.get("from_email")):
        return [f"no sender address for vendor emails: set 'email_from' in privacy.yml or the 'from_email' "
                f"extra of the SMTP connection '{conn_id}'"]
    return []


def smtp_sender(config: PrivacyConfig) -> str:
    """privacy.yml's email_from, else the SMTP connection's from_email extra (validate_request checked one is
    set). Read from the connection: ``SmtpHook.from_email`` answers only once an SMTP session is open, and the
    Message-ID, which names the sender's domain, is recorded before the session opens."""
    conn_id = config.settings.smtp_conn_id
    return config.settings.email_from or _connection(conn_id, "smtp_conn_id in privacy.yml").extra_dejson.get(
        "from_email", "")


def smtp_send(conn_id: str) -> Send:
    """The engine's ``send``: one message over the SMTP connection; returns the refused recipients.

    The provider's public ``send_email_smtp`` builds an HTML-only message; a vendor email is text + HTML
    (multipart/alternative), so the message goes over the hook's client, as the provider's own
    ``test_connection`` uses it: connection, TLS/SSL settings and login stay the provider's. Bad credentials
    or a refused sender are configuration errors (no retry); a server that cannot be reached or refuses every
    recipient is transient (Airflow retries).
    """
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    def send(message: EmailMessage) -> dict[str, Any]:
        try:
            with SmtpHook(smtp_conn_id=conn_id) as hook:
                return hook._smtp_client.send_message(message)
        except AirflowNotFoundException:  # nothing was sent: the "sending" marker goes, a clear may send
            raise RequestError(f"SMTP connection '{conn_id}' (smtp_conn_id in privacy.yml) does not exist") from None
        except (smtplib.SMTPAuthenticationError, smtplib.SMTPSenderRefused) as exc:
            raise RequestError(f"SMTP connection '{conn_id}' refused: {type(exc).__name__}: {exc}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientError(f"SMTP connection '{conn_id}': {type(exc).__name__}: {exc}") from None

    return send


def http_post(webhook: Webhook, payload: dict[str, Any], headers: dict[str, str] | None) -> Reply:
    """POST over the webhook's HTTP connection; network trouble is transient, a missing connection is not."""
    import requests
    from airflow.providers.http.hooks.http import HttpHook

    hook = HttpHook(method="POST", http_conn_id=webhook.conn_id)
    started = time.monotonic()
    try:
        response = hook.run(webhook.endpoint, json=payload, headers=headers,
                            extra_options={"check_response": False, "timeout": 30})
    except AirflowNotFoundException:
        raise RequestError(f"webhook '{webhook.name}': connection '{webhook.conn_id}' does not exist") from None
    except requests.RequestException as exc:
        raise TransientError(f"webhook '{webhook.name}': {type(exc).__name__}") from None
    return Reply(response.status_code, response.content, round(time.monotonic() - started, 3))


def confirmation_problems(config: PrivacyConfig) -> list[str]:
    """A vendor asked to confirm needs an absolute link to this Airflow: ``[api] base_url``."""
    asking = confirming_vendors(config)
    if asking and not _public_base():
        return [f"vendor(s) {', '.join(asking)} confirm through a link to this Airflow, but [api] base_url is "
                "not set (AIRFLOW__API__BASE_URL, the address vendors reach the api-server at)"]
    return []


def confirmation_links() -> Links:
    """The confirmation links: the plugin's page on ``[api] base_url``, signed with the store key's derivative."""
    base = _public_base()
    if not base:
        raise RequestError("a vendor confirms through a link to this Airflow, but [api] base_url is not set "
                           "(AIRFLOW__API__BASE_URL)")
    return Links(signing_key(store_key()), base + CONFIRM_PAGE)


def _public_base() -> str:
    return (conf.get("api", "base_url", fallback="") or "").rstrip("/")


def drop_api(settings: DropSettings) -> DropApi:
    """The DROP API client: the key is the connection's password; its extra ``base_url``, if set, overrides
    ``drop.api_base_url`` (the sandbox, or a local server in tests)."""
    connection = _connection(settings.api_conn_id or "", "drop.api_conn_id in privacy.yml")
    if not connection.password:
        raise RequestError(f"connection '{settings.api_conn_id}' has no password: put the DROP API key there")
    return DropApi(connection.extra_dejson.get("base_url") or settings.api_base_url, connection.password)
