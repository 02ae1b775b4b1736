"""Thin Airflow operators: read inputs from the request store, call the engine, write results back.

XCom carries counts only; rows, values and instructions live in the encrypted request store, so a clear
(which wipes XCom) loses nothing, and side effects (masking, emails) are recorded in a ledger and never
repeated.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseOperator, Context, ObjectStoragePath, Variable
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
    AirflowSkipException,
)
from airflow.sdk.log import mask_secret

from . import webhooks
from .access_package import package_chunks
from .config import PrivacyConfig
from .connectors.email import locatable, sample_instructions
from .connectors.sql import SqlConnector
from .deadlines import default_alert_message, due_soon
from .email.render import render_erasure_email
from .email.send import build_message, send
from .errors import ConfigError, DataSourceError, RequestError, TransientError
from .execution import access_collection, erase_collection, erasure_began
from .graph import CollectionAddress
from .masking import new_request_secrets
from .report import build_report
from .request import DERIVED_IDENTITY, PrivacyRequest, check_request, check_vendors, open_request
from .store import RequestStore

STORE_KEY_VARIABLE = "privacy_requests_store_key"


class PrivacyRequestOperator(BaseOperator):
    """Base of every checkpoint task: opens the request, maps engine errors onto Airflow's.

    Input and configuration errors fail at once (no retry); transient errors are retried with backoff.
    Every failure is recorded in the store, so the report says which checkpoint failed, when and why.
    """

    template_fields: Sequence[str] = ()
    ui_color = "#e8f4fa"

    def __init__(self, *, privacy_config: PrivacyConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.privacy_config = privacy_config

    def execute(self, context: Context) -> Any:
        request = self._open(context)
        try:
            return self.run(request, context)
        except (AirflowSkipException, AirflowFailException):
            raise
        except (RequestError, ConfigError, DataSourceError) as exc:
            self._record_failure(request, context, exc)
            raise AirflowFailException(str(exc)) from None
        except TransientError as exc:
            self._record_failure(request, context, exc)
            raise AirflowException(f"{exc} (will retry)") from None
        except Exception as exc:  # unforeseen: recorded, then Airflow retries as for any task
            self._record_failure(request, context, exc)
            raise

    def run(self, request: PrivacyRequest, context: Context) -> Any:
        raise NotImplementedError

    def _open(self, context: Context) -> PrivacyRequest:
        params = dict(context["params"])
        for value in (params.get("identity") or {}).values():
            if isinstance(value, str) and value.strip():
                mask_secret(value.strip())
        request = self._open_request(context, params)
        try:
            derived = request.store.get(DERIVED_IDENTITY) or {}
        except RequestError as exc:
            raise AirflowFailException(str(exc)) from None
        for value in derived.values():
            mask_secret(value)
        return request

    def _open_request(self, context: Context, params: dict[str, Any]) -> PrivacyRequest:
        try:
            key = Variable.get(STORE_KEY_VARIABLE)
        except Exception:
            raise AirflowFailException(
                f"no request store key: set the Airflow Variable '{STORE_KEY_VARIABLE}' (for example the "
                "environment variable AIRFLOW_VAR_PRIVACY_REQUESTS_STORE_KEY) to a Fernet key"
            ) from None
        try:
            return open_request(self.privacy_config, params, context["run_id"],
                                ObjectStoragePath(self.privacy_config.storage), key)
        except RequestError as exc:
            raise AirflowFailException(str(exc)) from None

    def _record_failure(self, request: PrivacyRequest, context: Context, exc: Exception) -> None:
        """An event, and report.json saying the request failed here (finalize rewrites it on success)."""
        known = isinstance(exc, (RequestError, ConfigError, DataSourceError, TransientError))
        try:
            failure = request.store.add_event(
                "checkpoint_failed", checkpoint=self.task_id, try_number=context["ti"].try_number,
                error=type(exc).__name__, message=str(exc) if known else "see the task log")
            request.store.write_public("report.json", [build_report(request, failure=failure).to_json()])
        except Exception:  # the store itself may be what failed; the task log still has the error
            self.log.warning("Could not record the failure of %s in the request store", self.task_id, exc_info=True)

    def _record_result(self, request: PrivacyRequest, context: Context, **result: Any) -> dict[str, Any]:
        """Per-task result for the report (counts and reasons, nothing personal)."""
        result = {"task_id": self.task_id, "try_number": context["ti"].try_number,
                  "time": datetime.now(UTC).isoformat(), **result}
        request.store.put(f"results/{self.task_id}.json", result)
        return result


class ValidateRequestOperator(PrivacyRequestOperator):
    """Checks the conf, the policy, reachability and vendor settings before anything is touched."""

    def run(self, request: PrivacyRequest, context: Context) -> dict[str, Any]:
        config = self.privacy_config
        problems = check_request(config, request.conf)
        if request.conf.policy in config.policies and request.policy.erasure_rules:
            problems += check_vendors(config)
            if config.email_datasets:
                problems += _check_smtp_connection(config)
        earlier = request.store.get("request.json")
        if earlier and earlier["run_id"] != context["run_id"]:
            problems.append(f"request id '{request.request_id}' is already used by run '{earlier['run_id']}': "
                            "give each request its own id")
        if problems:
            raise RequestError("request rejected: " + "; ".join(problems))
        if not request.store.exists("secrets.json"):
            request.store.put("secrets.json", new_request_secrets())
        received = (earlier or {}).get("received") or context["dag_run"].run_after.isoformat()
        request.store.put("request.json", {"request_id": request.request_id, "policy": request.conf.policy,
                                           "identity_types": sorted(request.conf.identity),
                                           "run_id": context["run_id"], "received": received})
        request.store.add_event("request_validated", policy=request.conf.policy,
                                identity_types=sorted(request.conf.identity))
        self.log.info("Request %s valid: policy %s, identity types %s", request.request_id, request.conf.policy,
                      sorted(request.conf.identity))
        return {"request_id": request.request_id, "policy": request.conf.policy}


def _check_smtp_connection(config: PrivacyConfig) -> list[str]:
    """The SMTP connection exists and a sender address is known (privacy.yml or the connection)."""
    from airflow.sdk import BaseHook

    conn_id = config.settings.smtp_conn_id
    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return [f"SMTP connection '{conn_id}' (smtp_conn_id in privacy.yml) does not exist"]
    except Exception as exc:  # the API server or a secrets backend could not answer: try again later
        raise TransientError(f"could not look up connection '{conn_id}': {type(exc).__name__}") from None
    if not (config.settings.email_from or connection.extra_dejson.get("from_email")):
        return [f"no sender address for vendor emails: set 'email_from' in privacy.yml or the 'from_email' "
                f"extra of the SMTP connection '{conn_id}'"]
    return []


class WebhooksOperator(PrivacyRequestOperator):
    """The policy's pre- or post-execution webhooks, in order; each call that succeeded is not repeated."""

    def __init__(self, *, step: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step = step

    def run(self, request: PrivacyRequest, context: Context) -> dict[str, int]:
        hooks = getattr(request.policy.webhooks, self.step)
        if not hooks:
            raise AirflowSkipException(f"policy '{request.conf.policy}' has no {self.step}-execution webhooks")
        store = request.store
        called = 0
        for webhook in hooks:
            ledger = f"ledger/webhook.{self.step}.{webhook.name}.json"
            if store.exists(ledger):
                self.log.info("Webhook %s was already called for this request: not calling again", webhook.name)
                continue
            payload = {"request_id": request.request_id, "policy": request.conf.policy, "step": self.step,
                       "direction": webhook.direction, "identity": request.identity}
            status, seconds, answer = webhooks.call(webhook, payload)
            derived = answer.get("derived_identity") or {}
            if derived:
                for value in derived.values():
                    mask_secret(value)
                store.put(DERIVED_IDENTITY, {**(store.get(DERIVED_IDENTITY) or {}), **derived})
            store.put(ledger, {"status": status, "try_number": context["ti"].try_number})
            store.add_event("webhook_called", step=self.step, webhook=webhook.name, direction=webhook.direction,
                            status=status, seconds=seconds, derived_identity_types=sorted(derived))
            self.log.info("Webhook %s (%s): HTTP %d in %.2f s%s", webhook.name, webhook.direction, status, seconds,
                          f", derived identity types {sorted(derived)}" if derived else "")
            called += 1
        return {"called": called}


class CollectionOperator(PrivacyRequestOperator):
    """A task for one collection of the graph."""

    def __init__(self, *, address: CollectionAddress, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.address = address


class AccessCollectionOperator(CollectionOperator):
    """Finds the subject's rows in one collection: one query over the values arriving on its edges."""

    def run(self, request: PrivacyRequest, context: Context) -> dict[str, int]:
        outcome = access_collection(request, self.address, sql_connector)
        self._record_result(request, context, **outcome.as_dict())
        return {"rows": outcome.rows}


def sql_connector(conn_id: str) -> SqlConnector:
    """A connector on the SQLAlchemy engine of an Airflow connection's hook (any SQL provider)."""
    from airflow.sdk import BaseHook

    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise RequestError(f"connection '{conn_id}' does not exist (privacy.yml maps a dataset to it)") from None
    except Exception as exc:  # the API server or a secrets backend could not answer: try again later
        raise TransientError(f"could not look up connection '{conn_id}': {type(exc).__name__}") from None
    try:
        hook = connection.get_hook()
    except Exception as exc:
        raise RequestError(f"connection '{conn_id}' ({connection.conn_type}) has no usable hook: {exc}") from None
    if not hasattr(hook, "get_sqlalchemy_engine"):
        raise RequestError(f"connection '{conn_id}' ({type(hook).__name__}) does not provide a SQLAlchemy engine")
    return SqlConnector(hook.get_sqlalchemy_engine())


class UploadAccessPackageOperator(PrivacyRequestOperator):
    """Writes ``access_package.json``: rows filtered to the access rules' categories, empty ones left out."""

    def run(self, request: PrivacyRequest, context: Context) -> dict[str, Any]:
        policy = request.policy
        if not policy.access_rules:
            raise AirflowSkipException(f"policy '{policy.key}' has no access rules: no access package")
        if erasure_began(request.store) and request.store.exists("access_package.json"):
            self.log.info("Erasure has already masked data for this request: the access package written "
                          "before it is kept as it is")
            return {"kept": True}
        counts: dict[str, int] = {}
        path = request.store.write_public("access_package.json",
                                          package_chunks(self.privacy_config, policy, request.store, counts))
        self.log.info("Access package written to %s: %d collection(s), %d row(s)", path, len(counts),
                      sum(counts.values()))
        request.store.add_event("access_package_uploaded", location=str(path), collections=counts)
        self._record_result(request, context, collections=counts, location=str(path))
        return {"collections": len(counts), "rows": sum(counts.values())}


class ErasureCollectionOperator(CollectionOperator):
    """Masks the rows found during access (SQL), or records the vendor's instruction (email)."""

    def run(self, request: PrivacyRequest, context: Context) -> dict[str, Any]:
        if not request.policy.erasure_rules:
            raise AirflowSkipException(f"policy '{request.policy.key}' has no erasure rules")
        outcome = erase_collection(request, self.address, sql_connector, context["ti"].try_number)
        self._record_result(request, context, **outcome.as_dict())
        return {"masked": outcome.masked}


class EmailSendOperator(PrivacyRequestOperator):
    """Sends one vendor one email with the instructions of all its collections, exactly once."""

    def __init__(self, *, dataset: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset

    def run(self, request: PrivacyRequest, context: Context) -> dict[str, Any]:
        config = self.privacy_config
        if not request.policy.erasure_rules:
            raise AirflowSkipException(f"policy '{request.policy.key}' has no erasure rules: no vendor email")
        mapping = config.mapping(self.dataset)
        assert mapping.email is not None
        if mapping.access == "read":
            raise AirflowSkipException(f"dataset '{self.dataset}' is read-only (access: read): no email")
        store = request.store
        ledger, sending = f"ledger/email.{self.dataset}.json", f"ledger/email.{self.dataset}.sending.json"
        sent = store.get(ledger)
        if sent:
            self.log.info("Email for '%s' was already sent at %s (Message-ID %s): not sending again",
                          self.dataset, sent["time"], sent["message_id"])
            return {"message_id": sent["message_id"]}
        began = store.get(sending)
        if began:
            raise RequestError(
                f"an earlier try began sending the email for '{self.dataset}' (Message-ID {began['message_id']}) "
                f"at {began['time']} and stopped before recording the outcome: check the SMTP server's log for "
                f"that Message-ID; to send anyway, delete {store.base / sending} and clear this task")
        instructions = [store.get(n) for n in store.list(f"instructions/{self.dataset}")]
        if not instructions:
            raise AirflowSkipException(f"no instruction was recorded for '{self.dataset}': no email")
        found = locatable(instructions)
        if not any(i["erase"] for i in instructions if i["collection"] in found):
            raise AirflowSkipException(f"no collection of '{self.dataset}' has anything to erase that the vendor "
                                       "can locate with what we hold: no email")
        rendered = render_erasure_email(organization=config.settings.organization, request_id=request.request_id,
                                        vendor_name=mapping.email.vendor_name, instructions=instructions)
        message = build_message(rendered, sender=_sender(config), to=mapping.email.to)
        try_number = context["ti"].try_number
        store.put(sending, {"message_id": message["Message-ID"], "time": datetime.now(UTC).isoformat(),
                            "try_number": try_number})
        try:
            refused = send(message, conn_id=config.settings.smtp_conn_id)
        except (RequestError, TransientError):
            store.delete(sending)  # the server said no: nothing went out, a retry may send
            raise
        recipients = [r for r in mapping.email.to if r not in refused]
        entry = {"dataset": self.dataset, "recipients": recipients, "refused": sorted(refused),
                 "message_id": message["Message-ID"], "subject": rendered.subject,
                 "time": datetime.now(UTC).isoformat(), "try_number": try_number, "collections": len(instructions)}
        store.put(ledger, entry)
        store.put(f"ledger/email.{self.dataset}.message.json", {"html": rendered.html, "text": rendered.text})
        store.delete(sending)
        store.add_event("email_sent", dataset=self.dataset, recipients=recipients, refused=sorted(refused),
                        message_id=entry["message_id"], try_number=try_number)
        if refused:
            self.log.warning("The SMTP server refused %s for '%s'", ", ".join(sorted(refused)), self.dataset)
        self.log.info("Erasure email for '%s' sent to %s (Message-ID %s, %d collection(s))", self.dataset,
                      ", ".join(recipients), entry["message_id"], len(instructions))
        return {"message_id": entry["message_id"]}


def _sender(config: PrivacyConfig) -> str:
    """privacy.yml's email_from, else the SMTP connection's from_email (validate_request checked one is set)."""
    from airflow.sdk import BaseHook

    if config.settings.email_from:
        return config.settings.email_from
    return BaseHook.get_connection(config.settings.smtp_conn_id).extra_dejson.get("from_email", "")


class FinalizeOperator(PrivacyRequestOperator):
    """Writes ``report.json`` and deletes the intermediate rows; the ledger and deliverables stay."""

    def run(self, request: PrivacyRequest, context: Context) -> dict[str, Any]:
        report = build_report(request)
        path = request.store.write_public("report.json", [report.to_json()])
        removed = request.store.delete_intermediate()
        self.log.info("Report written to %s; %d intermediate object(s) deleted", path, removed)
        return report.summary


class VendorTestEmailOperator(BaseOperator):
    """Sends a vendor's test recipient a sample erasure email (dummy data), to check SMTP and template."""

    template_fields: Sequence[str] = ("dataset",)

    def __init__(self, *, privacy_config: PrivacyConfig, dataset: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.privacy_config = privacy_config
        self.dataset = dataset

    def execute(self, context: Context) -> dict[str, Any]:
        config = self.privacy_config
        if self.dataset not in config.email_datasets:
            raise AirflowFailException(f"'{self.dataset}' is not a vendor (email) dataset; vendors: "
                                       f"{', '.join(config.email_datasets) or 'none'}")
        target = config.mapping(self.dataset).email
        assert target is not None
        if not target.test_to:
            raise AirflowFailException(f"dataset '{self.dataset}' has no test recipient: add email.test_to "
                                       "to its mapping in privacy.yml")
        problems = check_vendors(config) + _check_smtp_connection(config)
        if problems:
            raise AirflowFailException("; ".join(problems))
        rendered = render_erasure_email(organization=config.settings.organization, request_id="test",
                                        vendor_name=target.vendor_name, instructions=sample_instructions(),
                                        test=True)
        message = build_message(rendered, sender=_sender(config), to=[target.test_to])
        try:
            send(message, conn_id=config.settings.smtp_conn_id)
        except RequestError as exc:
            raise AirflowFailException(str(exc)) from None
        except TransientError as exc:
            raise AirflowException(str(exc)) from None
        self.log.info("Test email for '%s' sent to %s (Message-ID %s)", self.dataset, target.test_to,
                      message["Message-ID"])
        return {"message_id": message["Message-ID"]}


class DeadlineCheckOperator(BaseOperator):
    """Notifies about requests still open ``days_before_due`` before their legal due date, once each.

    It reads the request store, not Airflow's metadata, so it sees every request, however it ended.
    """

    template_fields: Sequence[str] = ()

    def __init__(self, *, privacy_config: PrivacyConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.privacy_config = privacy_config

    def execute(self, context: Context) -> dict[str, int]:
        config = self.privacy_config
        alert = config.settings.deadline_alert
        assert alert is not None
        key = Variable.get(STORE_KEY_VARIABLE)
        due = due_soon(config, ObjectStoragePath(config.storage), key, datetime.now(UTC), alert.days_before_due)
        if not due:
            self.log.info("No open request is due within %d day(s)", alert.days_before_due)
            return {"alerted": 0}
        module, _, name = alert.notifier.rpartition(".")
        try:
            notifier_class = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError):
            raise AirflowFailException(f"deadline_alert.notifier '{alert.notifier}' (privacy.yml) cannot be "
                                       "imported") from None
        notifier = notifier_class(**{**default_alert_message(due, alert.days_before_due), **alert.kwargs})
        notifier({**context, "privacy_requests_due": due})
        for item in due:
            RequestStore(ObjectStoragePath(config.storage), item["request_id"], key).put(
                "ledger/deadline_alert.json", {"time": datetime.now(UTC).isoformat(), "due": item["due"]})
        self.log.info("Alerted about %d request(s) due soon: %s", len(due), ", ".join(i["request_id"] for i in due))
        return {"alerted": len(due)}
