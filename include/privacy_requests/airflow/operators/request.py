"""The request's own checkpoints: validate, approve (when the policy asks), the access package, finalize."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Context, SkipMixin

from ...deliverables.access_package import write_access_package
from ...deliverables.package.delivery import deliver_package
from ...request.lifecycle import approval_question, finish_request, record_review, start_request
from ...request.request import PrivacyRequest, stop_reading
from ...store import layout
from ..hitl import ASKED_OF, asker
from ..hooks import erasure_problems, smtp_send, smtp_sender
from .base import PrivacyRequestOperator


class ValidateRequestOperator(PrivacyRequestOperator):
    """Claims the request id and the subject and checks everything before anything is touched."""

    claims_request = True

    def run(self, request: PrivacyRequest, context: Context) -> dict[str, Any]:
        record = start_request(request, context["run_id"], context["dag_run"].run_after.isoformat(),
                               lambda: erasure_problems(self.privacy_config, request.policy,
                                                                dry_run=request.conf.dry_run),
                               run_ended=self.run_ended(context))
        self.log.info("Request %s valid: policy %s, identity types %s", request.request_id, request.conf.policy,
                      record["identity_types"])
        return {"request_id": request.request_id, "policy": request.conf.policy}


class ApproveRequestOperator(PrivacyRequestOperator, SkipMixin):
    """Waits for a person to approve or reject the request when its policy asks for manual approval.

    Reject ends the request before anything is touched: the rest of the run is skipped, and the report says
    who rejected it and why. A dry run asks nobody: the question is an ``approval_planned`` event of its plan.
    """

    inherits_from_skipmixin = True

    def run(self, request: PrivacyRequest, context: Context) -> dict[str, bool]:
        question = approval_question(request, ASKED_OF)
        if question is None:  # approved already, or a dry run (which plans the question and asks nobody)
            return {"planned": True} if request.conf.dry_run else {"approved": True}
        asker(context)(question)

    def answered(self, request: PrivacyRequest, context: Context, event: dict[str, Any]) -> dict[str, bool]:
        if record_review(request, event):
            return {"approved": True}
        # Raises DownstreamTasksSkipped: this task succeeds and every task after it is skipped.
        self.skip(ti=context["ti"], tasks=context["task"].get_flat_relatives(upstream=False))
        raise AssertionError("approve_request has downstream tasks to skip")


class UploadAccessPackageOperator(PrivacyRequestOperator):
    """Writes the access package in the policy's formats (rows filtered to the access rules' categories, empty
    collections left out) and, when the policy says so, emails the HTML to the data subject, once."""

    step = "upload_access_package"

    def run(self, request: PrivacyRequest, context: Context) -> dict[str, Any]:
        written = write_access_package(request)
        if written is None:
            self.log.info("Erasure has already masked data for this request: the access package written before "
                          "it is kept as it is")
            result: dict[str, Any] = {"kept": True}
        else:
            location, counts = written
            self.log.info("Access package (%s) written to %s: %d collection(s), %d row(s)",
                          ", ".join(request.policy.access_package.formats), location, len(counts),
                          sum(counts.values()))
            self._record_result(request, context, collections=counts, location=location)
            result = {"collections": len(counts), "rows": sum(counts.values())}
        stop_reading(request)  # the package holds what was read: a later erasure of this person may go on
        config = self.privacy_config
        emailed = deliver_package(request, sender=lambda: smtp_sender(config),
                                  send=smtp_send(config.settings.smtp_conn_id), try_number=context["ti"].try_number)
        if emailed and emailed.get("message_id"):  # a dry run renders the email and sends nothing
            result["emailed_message_id"] = emailed["message_id"]
        return result


class FinalizeOperator(PrivacyRequestOperator):
    """Writes ``report.json`` and deletes the intermediate rows; the ledger and deliverables stay."""

    def run(self, request: PrivacyRequest, context: Context) -> dict[str, Any]:
        report, removed = finish_request(request)
        self.log.info("Report written to %s; %d intermediate object(s) deleted", request.store.base / layout.REPORT,
                      removed)
        return report.summary
