"""Thin Airflow operators: read inputs from the request store, call the engine, write results back.

XCom carries counts only; rows, values and instructions live in the encrypted request store, so a clear
(which wipes XCom) loses nothing, and side effects (masking, emails) are recorded in a ledger and never
repeated.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

from airflow.sdk import BaseOperator, Context, ObjectStoragePath, Param, SkipMixin, Variable
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
    AirflowSkipException,
    DownstreamTasksSkipped,
)
from airflow.sdk.log import mask_secret

from . import human, webhooks
from .access_package import package_chunks
from .config import PrivacyConfig
from .connectors import manual
from .connectors.email import locatable, sample_instructions
from .connectors.sql import SqlConnector
from .deadlines import default_alert_message, due_soon
from .email.render import render_erasure_email
from .email.send import build_message, send
from .errors import ConfigError, DataSourceError, ForeignRequestError, RequestError, TransientError
from .execution import (
    access_collection,
    access_inputs,
    erase_collection,
    erasure_began,
    manual_erasure_fields,
    manual_erasure_work,
    record_manual_entry,
    record_manual_erasure,
)
from .graph import CollectionAddress
from .lifecycle import start_request
from .policy import Webhook
from .report import build_report
from .request import (
    DERIVED_IDENTITY,
    PrivacyRequest,
    check_owner,
    check_vendors,
    open_request,
    release_subject,
)
from .store import RequestStore

STORE_KEY_VARIABLE = "privacy_requests_store_key"
APPROVAL_LEDGER = "ledger/approval.json"  # an approval is given once per request; clears do not ask again
HALTED = "halted.json"  # which pre-execution webhook halted the request, until it is resumed
RESUME = "Resume"
APPROVE, REJECT = "Approve", "Reject"
CONFIRM = "Confirm"


class PrivacyRequestOperator(BaseOperator):
    """Base of every checkpoint task: opens the request, maps engine errors onto Airflow's.

    Input and configuration errors fail at once (no retry); transient errors are retried with backoff.
    Every failure is recorded in the store, so the report says which checkpoint failed, when and why.
    """

    template_fields: Sequence[str] = ()
    ui_color = "#e8f4fa"
    claims_request = False  # only validate_request makes a run the owner of its request id

    def __init__(self, *, privacy_config: PrivacyConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.privacy_config = privacy_config

    def execute(self, context: Context) -> Any:
        return self._guarded(context, lambda request: self.run(request, context))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Airflow resumes a task here when the person it asked (``human.ask``) has answered."""
        return self._guarded(context, lambda request: self.answered(request, context, event))

    def _guarded(self, context: Context, step: Callable[[PrivacyRequest], Any]) -> Any:
        request = self._open(context)
        try:
            if not self.claims_request:
                check_owner(request, context["run_id"])
            return step(request)
        except (AirflowSkipException, AirflowFailException, DownstreamTasksSkipped):
            raise
        except ForeignRequestError as exc:  # another run's request: nothing may be written into its store
            raise AirflowFailException(str(exc)) from None
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

    def answered(self, request: PrivacyRequest, context: Context, event: dict[str, Any]) -> Any:
        raise NotImplementedError(f"{self.task_id} does not ask anyone")

    def _open(self, context: Context) -> PrivacyRequest:
        # The conf as the caller sent it, never merged with the Params' defaults: a request names its policy.
        conf = context["dag_run"].conf or {}
        identity = conf.get("identity") if isinstance(conf, dict) else None
        for value in (identity.values() if isinstance(identity, dict) else ()):
            if isinstance(value, str) and value.strip():
                mask_secret(value.strip())
        request = self._open_request(context, conf)
        try:
            derived = request.store.get(DERIVED_IDENTITY) or {}
        except RequestError as exc:
            raise AirflowFailException(str(exc)) from None
        for value in derived.values():
            mask_secret(value)
        return request

    def _open_request(self, context: Context, conf: Any) -> PrivacyRequest:
        try:
            key = Variable.get(STORE_KEY_VARIABLE)
        except Exception:
            raise AirflowFailException(
                f"no request store key: set the Airflow Variable '{STORE_KEY_VARIABLE}' (for example the "
                "environment variable AIRFLOW_VAR_PRIVACY_REQUESTS_STORE_KEY) to a Fernet key"
            ) from None
        try:
            return open_request(self.privacy_config, conf, context["run_id"],
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
    """Claims the request id, checks the conf, the policy, reachability and vendor settings, then claims the
    subject, all before anything is touched."""

    claims_request = True

    def run(self, request: PrivacyRequest, context: Context) -> dict[str, Any]:
        record = start_request(request, context["run_id"], context["dag_run"].run_after.isoformat(),
                               lambda: _check_smtp_connection(self.privacy_config))
        self.log.info("Request %s valid: policy %s, identity types %s", request.request_id, request.conf.policy,
                      record["identity_types"])
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


class ApproveRequestOperator(PrivacyRequestOperator, SkipMixin):
    """Waits for a person to approve or reject the request when its policy asks for manual approval.

    Reject ends the request before anything is touched: the rest of the run is skipped, and the report
    says who rejected it and why.
    """

    inherits_from_skipmixin = True

    def run(self, request: PrivacyRequest, context: Context) -> dict[str, bool]:
        policy = request.policy
        if not policy.manual_approval:
            raise AirflowSkipException(f"policy '{policy.key}' does not ask for manual approval")
        approved = request.store.get(APPROVAL_LEDGER)
        if approved:
            self.log.info("Approved by %s at %s: not asking again", approved["by"], approved["time"])
            return {"approved": True}
        received = (request.store.get("request.json") or {}).get("received")
        due = policy.due_date(datetime.fromisoformat(received)).date() if received else "unknown"
        access = sorted({t for r in policy.access_rules for t in r.targets})
        erasure = sorted({t for r in policy.erasure_rules for t in r.targets})
        human.ask(
            context, options=[APPROVE, REJECT], timeout=self.privacy_config.settings.wait_timeout,
            subject=f"Approve privacy request {request.request_id}?",
            body=f"**{policy.display_name}** (`{policy.key}`) for a subject identified by "
                 f"{', '.join(sorted(request.conf.identity))}; due {due}.\n\n"
                 f"- returns: {', '.join(access) or 'nothing'}\n- erases: {', '.join(erasure) or 'nothing'}\n\n"
                 "Nothing has been read or changed yet. A rejection ends the request; give the reason.",
            params={"reason": Param("", type=["null", "string"], title="Reason",
                                    description="Why (kept in the request's report).")})

    def answered(self, request: PrivacyRequest, context: Context, event: dict[str, Any]) -> dict[str, bool]:
        timeout = human.duration(self.privacy_config.settings.wait_timeout)
        answer = human.Answer.of(event, f"nobody approved or rejected the request within {timeout}; clear "
                                        "approve_request to ask again")
        reason = str(answer.values.get("reason") or "").strip() or None
        store = request.store
        if answer.option == APPROVE:
            store.put(APPROVAL_LEDGER, {"by": answer.by, "time": datetime.now(UTC).isoformat()})
            store.add_event("request_approved", by=answer.by, reason=reason)
            self.log.info("Request approved by %s", answer.by)
            return {"approved": True}
        store.add_event("request_rejected", by=answer.by, reason=reason or "no reason given")
        store.write_public("report.json", [build_report(request).to_json()])
        release_subject(request)
        self.log.info("Request rejected by %s: nothing was read or changed; the rest of the run is skipped",
                      answer.by)
        # Raises DownstreamTasksSkipped: this task succeeds and every task after it is skipped.
        self.skip(ti=context["ti"], tasks=context["task"].get_flat_relatives(upstream=False))
        raise AssertionError("approve_request has downstream tasks to skip")


class WebhooksOperator(PrivacyRequestOperator):
    """The policy's pre- or post-execution webhooks, in order; each call that succeeded is not repeated.

    A two-way pre-execution webhook that answers ``{"halt": true}`` parks this task (no worker slot held)
    until someone resumes it (Airflow UI or REST); the webhooks after it run then.
    """

    def __init__(self, *, step: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step = step

    def run(self, request: PrivacyRequest, context: Context) -> dict[str, int]:
        if not getattr(request.policy.webhooks, self.step):
            raise AirflowSkipException(f"policy '{request.conf.policy}' has no {self.step}-execution webhooks")
        return self._call_remaining(request, context)

    def _call_remaining(self, request: PrivacyRequest, context: Context) -> dict[str, int]:
        store = request.store
        called = 0
        for webhook in getattr(request.policy.webhooks, self.step):
            if store.exists(self._ledger(webhook)):
                self.log.info("Webhook %s was already called for this request: not calling again", webhook.name)
                continue
            payload = {"request_id": request.request_id, "policy": request.conf.policy, "step": self.step,
                       "direction": webhook.direction, "identity": request.identity}
            may_halt = self.step == "pre" and webhook.direction == "two_way"
            headers = {"reply-to": _airflow_url(human.resume_path(context))} if may_halt else None
            status, seconds, answer = webhooks.call(webhook, payload, headers)
            derived = answer.get("derived_identity") or {}
            self._add_derived(store, derived)
            halted = may_halt and bool(answer.get("halt"))
            store.add_event("webhook_called", step=self.step, webhook=webhook.name, direction=webhook.direction,
                            status=status, seconds=seconds, derived_identity_types=sorted(derived), halt=halted)
            self.log.info("Webhook %s (%s): HTTP %d in %.2f s%s", webhook.name, webhook.direction, status, seconds,
                          f", derived identity types {sorted(derived)}" if derived else "")
            if halted:
                self._halt(request, context, webhook)
            if answer.get("halt"):
                self.log.warning("Webhook %s asked to halt after execution: ignored, only a two-way "
                                 "pre-execution webhook can halt a request", webhook.name)
            store.put(self._ledger(webhook), {"status": status, "try_number": context["ti"].try_number})
            called += 1
        return {"called": called}

    def _ledger(self, webhook: Webhook) -> str:
        return f"ledger/webhook.{self.step}.{webhook.name}.json"

    def _add_derived(self, store: RequestStore, derived: dict[str, str]) -> None:
        if derived:
            for value in derived.values():
                mask_secret(value)
            store.put(DERIVED_IDENTITY, {**(store.get(DERIVED_IDENTITY) or {}), **derived})

    def _halt(self, request: PrivacyRequest, context: Context, webhook: Webhook) -> NoReturn:
        request.store.put(HALTED, {"webhook": webhook.name, "time": datetime.now(UTC).isoformat()})
        request.store.add_event("request_halted", webhook=webhook.name,
                                timeout_seconds=int(webhook.halt_timeout.total_seconds()))
        self.log.info("Webhook %s halted the request: waiting up to %s to be resumed (%s)", webhook.name,
                      webhook.halt_timeout, human.resume_path(context))
        human.ask(
            context, options=[RESUME], timeout=webhook.halt_timeout,
            subject=f"Privacy request {request.request_id} is halted by a webhook",
            body=f"The pre-execution webhook **{webhook.name}** asked to halt the request before any data is "
                 f"touched. Choose *{RESUME}* when its system is ready; it may add derived identities "
                 '(for example `{"phone_number": "+1..."}`) that then seed the traversal.',
            params={"derived_identity": Param({}, type="object", title="Derived identity",
                                              description="Optional identity values found by the remote, "
                                                          "by identity type.")})

    def answered(self, request: PrivacyRequest, context: Context, event: dict[str, Any]) -> dict[str, int]:
        store = request.store
        halted = store.get(HALTED)
        if halted is None:
            raise RequestError("pre_webhooks was resumed but no halt is recorded: clear pre_webhooks")
        webhook = next((w for w in request.policy.webhooks.pre if w.name == halted["webhook"]), None)
        if webhook is None:
            raise RequestError(f"webhook '{halted['webhook']}' halted the request but is no longer a pre-execution "
                               f"webhook of policy '{request.conf.policy}': clear pre_webhooks")
        answer = human.Answer.of(
            event, f"webhook '{webhook.name}' halted the request and nobody resumed it within "
                   f"{human.duration(webhook.halt_timeout)}; clear pre_webhooks to call it again")
        derived = answer.values.get("derived_identity") or {}
        if not isinstance(derived, dict) or not all(isinstance(v, str) and v for v in derived.values()):
            raise RequestError("the resume's derived_identity must map identity types to non-empty strings; "
                               "clear pre_webhooks to call the webhook again")
        self._add_derived(store, derived)
        store.put(self._ledger(webhook), {"halted": True, "resumed_by": answer.by,
                                          "try_number": context["ti"].try_number})
        store.delete(HALTED)
        store.add_event("request_resumed", webhook=webhook.name, by=answer.by,
                        derived_identity_types=sorted(derived))
        self.log.info("Resumed by %s after webhook %s halted the request", answer.by, webhook.name)
        return self._call_remaining(request, context)


def _airflow_url(path: str) -> str:
    """An absolute URL on this Airflow's API server when ``[api] base_url`` is set, else the path."""
    from airflow.sdk import conf

    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    return f"{base}{path}"


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


class ManualAccessOperator(CollectionOperator):
    """A manual collection: a person looks the subject up and enters the records found (human-in-the-loop)."""

    def run(self, request: PrivacyRequest, context: Context) -> dict[str, int]:
        outcome, locators = access_inputs(request, self.address)
        if outcome:
            self._record_result(request, context, **outcome.as_dict())
            return {"rows": outcome.rows}
        collection = self.privacy_config.graph.collections[self.address]
        human.ask(context, options=[CONFIRM], timeout=self.privacy_config.settings.wait_timeout,
                  subject=f"Look up privacy request {request.request_id} in {self.address}",
                  body=manual.access_question(collection, locators), params=manual.entry_form(collection))

    def answered(self, request: PrivacyRequest, context: Context, event: dict[str, Any]) -> dict[str, int]:
        timeout = human.duration(self.privacy_config.settings.wait_timeout)
        answer = human.Answer.of(event, f"nobody entered the records of {self.address} within {timeout}; "
                                        "clear this task to ask again")
        if manual.ROWS not in answer.values:
            raise RequestError(f"the answer for {self.address} has no 'rows' (a list of records, [] for none); "
                               "clear this task to ask again")
        rows = manual.check_rows(self.privacy_config.graph.collections[self.address], answer.values[manual.ROWS])
        outcome = record_manual_entry(request, self.address, rows, answer.by)
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


class ManualErasureOperator(CollectionOperator):
    """A manual collection: a person erases the listed fields by hand and confirms how many records."""

    def run(self, request: PrivacyRequest, context: Context) -> dict[str, int]:
        if not request.policy.erasure_rules:
            raise AirflowSkipException(f"policy '{request.policy.key}' has no erasure rules")
        outcome, rows, fields = manual_erasure_work(request, self.address)
        if outcome:
            self._record_result(request, context, **outcome.as_dict())
            return {"masked": outcome.masked}
        human.ask(context, options=[CONFIRM], timeout=self.privacy_config.settings.wait_timeout,
                  subject=f"Erase privacy request {request.request_id} in {self.address}",
                  body=manual.erasure_question(self.privacy_config.graph.collections[self.address], rows, fields),
                  params=manual.erasure_form(len(rows)))

    def answered(self, request: PrivacyRequest, context: Context, event: dict[str, Any]) -> dict[str, int]:
        timeout = human.duration(self.privacy_config.settings.wait_timeout)
        answer = human.Answer.of(event, f"nobody confirmed the erasure in {self.address} within {timeout}; "
                                        "clear this task to ask again")
        erased = answer.values.get(manual.RECORDS_ERASED)
        if not isinstance(erased, int) or isinstance(erased, bool) or erased < 0:
            raise RequestError(f"records_erased for {self.address} must be a whole number of at least 0, not "
                               f"{erased!r}; clear this task to ask again")
        fields = sorted(manual_erasure_fields(request, self.privacy_config.graph.collections[self.address]))
        outcome = record_manual_erasure(request, self.address, erased, fields, answer.by,
                                        context["ti"].try_number)
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
        release_subject(request)
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
