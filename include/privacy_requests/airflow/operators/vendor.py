"""Vendor emails: the erasure email of a request (exactly once, the engine's rule), a digest vendor's digest, and
a test email."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from ...connectors.vendor import sample_instructions
from ...errors import RequestError, StepSkipped, TransientError
from ...model.settings import PrivacyConfig
from ...outbound.email.message import build_message
from ...outbound.email.render import render_erasure_email
from ...outbound.vendor_digest import digest_due, send_digest
from ...outbound.vendor_email import send_vendor_email
from ...request.request import PrivacyRequest, check_vendors, request_id_for
from ..hooks import confirmation_links, smtp_problems, smtp_send, smtp_sender, store_key
from ..storage import storage_root
from .base import PrivacyRequestOperator


class EmailSendOperator(PrivacyRequestOperator):
    """Sends one vendor one email with the instructions of all its collections, exactly once."""

    def __init__(self, *, dataset: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset

    def run(self, request: PrivacyRequest, context: Context) -> dict[str, Any]:
        config = self.privacy_config
        target = config.mapping(self.dataset).email
        entry = send_vendor_email(request, self.dataset, sender=lambda: smtp_sender(config),
                                  send=smtp_send(config.settings.smtp_conn_id), try_number=context["ti"].try_number,
                                  links=confirmation_links() if target and target.confirm else None)
        if "schedule" in entry:  # handed to the vendor's digest
            return {"awaiting_digest": entry["schedule"]}
        return {"message_id": entry.get("message_id")}  # none in a dry run: nothing was sent


class _VendorOperator(BaseOperator):
    """A task about one vendor dataset outside any request (its digest, its test email)."""

    template_fields: Sequence[str] = ("dataset",)

    def __init__(self, *, privacy_config: PrivacyConfig, dataset: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.privacy_config = privacy_config
        self.dataset = dataset


class VendorDigestOperator(_VendorOperator):
    """Sends one digest vendor its digest: every request waiting since the last one, in one email, exactly
    once per digest run (a retry or a clear sends the same list, or nothing when it went out)."""

    def execute(self, context: Context) -> dict[str, Any]:
        config = self.privacy_config
        target = config.mapping(self.dataset).email
        assert target is not None and target.digest_cron
        dag_run = context["dag_run"]
        # A scheduled run serves every digest vendor's schedule; a manual run sends every digest now.
        if dag_run.run_type == "scheduled" and not digest_due(target.digest_cron, dag_run.run_after):
            raise AirflowSkipException(f"the digest of '{self.dataset}' ({target.digest}) is not due at "
                                       f"{dag_run.run_after.isoformat()}")
        try:
            entry = send_digest(config, storage_root(config), store_key(), self.dataset,
                                request_id_for(None, context["run_id"]), sender=lambda: smtp_sender(config),
                                send=smtp_send(config.settings.smtp_conn_id), try_number=context["ti"].try_number)
        except StepSkipped as exc:
            raise AirflowSkipException(str(exc)) from None
        except RequestError as exc:
            raise AirflowFailException(str(exc)) from None
        except TransientError as exc:
            raise AirflowException(f"{exc} (will retry)") from None
        return {"message_id": entry["message_id"], "requests": entry["requests"]}


class VendorTestEmailOperator(_VendorOperator):
    """Sends a vendor's test recipient a sample erasure email (dummy data), to check SMTP and template."""

    def execute(self, context: Context) -> dict[str, Any]:
        config = self.privacy_config
        if self.dataset not in config.email_datasets:
            raise AirflowFailException(f"'{self.dataset}' is not a vendor (email) dataset; vendors: "
                                       f"{', '.join(config.email_datasets) or 'none'}")
        target = config.mapping(self.dataset).email
        assert target is not None
        if not target.test_to:
            raise AirflowFailException(f"dataset '{self.dataset}' has no test recipient: add email.test_to to its "
                                       "mapping in privacy.yml")
        try:
            problems = check_vendors(config) + smtp_problems(config)
            if problems:
                raise RequestError("; ".join(problems))
            rendered = render_erasure_email(organization=config.settings.organization, request_id="test",
                                            vendor_name=target.vendor_name, instructions=sample_instructions(),
                                            test=True)
            message = build_message(rendered, sender=smtp_sender(config), to=[target.test_to])
            smtp_send(config.settings.smtp_conn_id)(message)
        except RequestError as exc:
            raise AirflowFailException(str(exc)) from None
        except TransientError as exc:
            raise AirflowException(str(exc)) from None
        self.log.info("Test email for '%s' sent to %s (Message-ID %s)", self.dataset, target.test_to,
                      message["Message-ID"])
        return {"message_id": message["Message-ID"]}
