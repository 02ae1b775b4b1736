"""Builds the ``privacy_request`` DAG from the configuration, in two passes like Cosmos: one task per
checkpoint and per collection, then the edges from the dataset graph."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import DAG, BaseOperator, MultipleCronTriggerTimetable, Param, TaskGroup
from airflow.sdk.definitions.param import ParamsDict

from ..deliverables.package.labels import words
from ..model.graph import CollectionAddress
from ..model.settings import PrivacyConfig
from ..request.request import IDENTITY_VALUE_PATTERN, MAX_IDENTITY_LENGTH, REQUEST_ID_PATTERN
from .constants import (
    ACCESS_GROUP,
    APPROVE,
    BATCH_DAG_ID,
    CONFIRM_GROUP,
    DAG_ID,
    DEADLINES_DAG_ID,
    EMAIL_GROUP,
    ERASURE_GROUP,
    FINALIZE,
    TEST_EMAIL_DAG_ID,
    UPLOAD,
    VALIDATE,
    VENDOR_DIGEST_DAG_ID,
    confirming_vendors,
    webhooks_task,
)
from .operators import (
    AccessCollectionOperator,
    ApproveRequestOperator,
    BatchAccessCollectionOperator,
    BatchEmailSendOperator,
    BatchErasureCollectionOperator,
    BatchFinalizeOperator,
    BatchSkippedOperator,
    BatchUploadAccessPackageOperator,
    BatchValidateOperator,
    DeadlineCheckOperator,
    EmailSendOperator,
    ErasureCollectionOperator,
    FinalizeOperator,
    UploadAccessPackageOperator,
    ValidateRequestOperator,
    VendorConfirmationOperator,
    VendorDigestOperator,
    VendorTestEmailOperator,
    WebhooksOperator,
)


def request_params(config: PrivacyConfig) -> ParamsDict:
    """The trigger form: the policy as a choice, one text field per identity type the datasets use, an optional
    request id; and the ``identity`` object for REST and CLI callers, in a section of its own.

    Each field is checked by its own schema before a run exists; that at least one identity value is given,
    and not both as fields and as the object, spans fields, so validate_request checks it.
    """
    policies = sorted(config.policies)
    identity_keys = sorted(config.graph.identity_keys)
    value_schema = {"maxLength": MAX_IDENTITY_LENGTH, "pattern": IDENTITY_VALUE_PATTERN}
    params: dict[str, Param] = {
        # No default: a request names its policy, nothing defaults into an erasure. A trigger without one is
        # refused by Airflow before a run exists (the UI form shows the field as required, none selected).
        "policy": Param(
            type="string",
            enum=policies,
            values_display={k: config.policies[k].display_name for k in policies},
            title="Policy",
            description="What the request does: access rules return data, erasure rules mask it.",
        ),
    }
    for key in identity_keys:
        params[key] = Param(
            None,
            type=["null", "string"],
            title=words(key),
            description=f"The data subject's {words(key).lower()}, if known. Give at least one identity value.",
            **value_schema,
        )
    params["request_id"] = Param(
        None,
        type=["null", "string"],
        pattern=REQUEST_ID_PATTERN,
        title="Request id",
        description="Optional; defaults to the run id. Names the request's folder in storage.",
    )
    params["dry_run"] = Param(
        False,
        type="boolean",
        title="Dry run",
        description="Read as usual, then record what erasure would do and render the vendor emails: "
                    "nothing in any database changes and no email is sent.",
    )
    params["after_dry_run"] = Param(
        None,
        type=["null", "string"],
        pattern=REQUEST_ID_PATTERN,
        title="After dry run",
        description="Optional: the request id of the dry run this request follows (same policy and "
                    "identity); its page then compares the plan with what was done.",
    )
    params["identity"] = Param(
        None,
        type=["null", "object"],
        title="Identity (REST and CLI)",
        description="The identity as one object, for REST and CLI callers, e.g. {\"email\": \"subject@example.org\"}."
                    " Leave empty when the fields above are used: both at once is refused.",
        properties={k: {"type": "string", "minLength": 1, **value_schema} for k in identity_keys},
        additionalProperties=False,
        minProperties=1,
        section="For REST and CLI callers",
    )
    return ParamsDict(params)


@dataclass(frozen=True)
class Checkpoints:
    """The operator of each checkpoint: a single request's, or a batch's (same task ids, same graph)."""

    validate: type[BaseOperator]
    approve: type[BaseOperator]
    webhooks: type[BaseOperator]
    access: type[BaseOperator]
    upload: type[BaseOperator]
    erasure: type[BaseOperator]
    email: type[BaseOperator]
    finalize: type[BaseOperator]
    confirm: type[BaseOperator] | None = None  # a vendor's confirmation (confirm: true); batches do not wait


SINGLE = Checkpoints(ValidateRequestOperator, ApproveRequestOperator, WebhooksOperator, AccessCollectionOperator,
                     UploadAccessPackageOperator, ErasureCollectionOperator, EmailSendOperator, FinalizeOperator,
                     VendorConfirmationOperator)
BATCH = Checkpoints(BatchValidateOperator, BatchSkippedOperator, BatchSkippedOperator, BatchAccessCollectionOperator,
                    BatchUploadAccessPackageOperator, BatchErasureCollectionOperator, BatchEmailSendOperator,
                    BatchFinalizeOperator)


def build_privacy_request_dag(config: PrivacyConfig) -> DAG:
    return build_checkpoints_dag(config, DAG_ID, SINGLE, request_params(config), _doc(config))


def build_batch_dag(config: PrivacyConfig) -> DAG:
    """``privacy_request_batch``: the same checkpoints and graph, each task set-based for every subject."""
    doc = _doc(config).replace("# Privacy request\nOne run is one privacy request",
                               "# Privacy request batch\nOne run is a batch of privacy requests (one per subject)")
    return build_checkpoints_dag(config, BATCH_DAG_ID, BATCH, batch_params(config), doc)


def batch_params(config: PrivacyConfig) -> ParamsDict:
    """The batch trigger form: the policy, and the subjects inline or as a JSON Lines file's URL."""
    policies = sorted(config.policies)
    return ParamsDict({
        "policy": Param(
            type="string", enum=policies, values_display={k: config.policies[k].display_name for k in policies},
            title="Policy", description="What every subject's request does: access rules return data, erasure "
                                        "rules mask it."),
        "subjects": Param(
            # Each subject is checked by validate_request, not here: a bad one is rejected alone (with a report
            # saying why) instead of refusing the whole batch.
            None, type=["null", "array"], title="Subjects",
            description='[{"request_id": "r-1", "identity": {"email": "a@example.org"}}, ...]; or give '
                        "subjects_url instead."),
        "subjects_url": Param(
            None, type=["null", "string"], title="Subjects file",
            description="Instead of subjects: a JSON Lines file, one {request_id, identity} a line, inside a "
                        "subjects inbox of privacy.yml (batch.subjects_from: a local folder or an s3:// ... prefix)."),
        "batch_id": Param(
            None, type=["null", "string"], pattern=REQUEST_ID_PATTERN, title="Batch id",
            description="Optional; defaults to the run id. Names the batch's folder under batches/ in storage."),
    })


def build_checkpoints_dag(config: PrivacyConfig, dag_id: str, ops: Checkpoints, params: ParamsDict,
                          doc: str, schedule: Any = None, tags: tuple[str, ...] = ("privacy",)) -> DAG:
    retries = config.settings.retries
    default_args = {
        "owner": "privacy",
        "retries": retries.count,
        "retry_delay": timedelta(seconds=retries.delay_seconds),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(seconds=retries.max_delay_seconds),
        # Steps a policy does not need end skipped; the steps after them must still run.
        "trigger_rule": "none_failed",
    }
    with DAG(
        dag_id=dag_id,
        schedule=schedule,
        catchup=False,
        tags=list(tags),
        default_args=default_args,
        doc_md=doc,
        max_active_tasks=16,
    ) as dag:
        common = {"privacy_config": config}
        validate = ops.validate(task_id=VALIDATE, trigger_rule="all_success", **common)
        # Only when some policy asks for approval: every task costs each request time.
        approve = ops.approve(task_id=APPROVE, **common) if config.needs_approval else None
        pre = ops.webhooks(task_id=webhooks_task("pre"), step="pre", **common)
        access: dict[CollectionAddress, BaseOperator] = {}
        erasure: dict[CollectionAddress, BaseOperator] = {}
        with TaskGroup(ACCESS_GROUP, prefix_group_id=True):
            for address in config.plan.order:
                access[address] = ops.access(task_id=address.task_suffix, address=address,
                                             **_pooled(config, address), **common)
        upload = ops.upload(task_id=UPLOAD, **common)
        with TaskGroup(ERASURE_GROUP, prefix_group_id=True):
            for address in config.plan.order:
                erasure[address] = ops.erasure(task_id=address.task_suffix, address=address,
                                               **_pooled(config, address), **common)
        with TaskGroup(EMAIL_GROUP, prefix_group_id=True):
            sends = {ds: ops.email(task_id=ds, dataset=ds, **common) for ds in config.email_datasets}
        confirms: dict[str, BaseOperator] = {}
        if ops.confirm:
            with TaskGroup(CONFIRM_GROUP, prefix_group_id=True):
                confirms = {ds: ops.confirm(task_id=ds, dataset=ds, **common) for ds in confirming_vendors(config)}
        post = ops.webhooks(task_id=webhooks_task("post"), step="post", **common)
        finalize = ops.finalize(task_id=FINALIZE, **common)

        # Second pass: the edges.
        if approve:
            validate >> approve >> pre
        else:
            validate >> pre
        for address, task in access.items():
            upstream = config.plan.upstream(address)
            if upstream:
                for source in sorted(upstream):
                    access[source] >> task
            else:
                pre >> task
            task >> upload
        for address, task in erasure.items():
            before = config.erasure_waits[address]
            if before:
                for source in sorted(before):
                    erasure[source] >> task
            else:
                upload >> task
        erasure_tasks = list(erasure.values())
        for send in sends.values():
            erasure_tasks >> send
        for dataset, confirm in confirms.items():
            sends[dataset] >> confirm
        last = [confirms.get(ds, send) for ds, send in sends.items()]
        (last or erasure_tasks) >> post
        post >> finalize
    # Set after the tasks exist: every operator deep-copies the DAG's params when it is made (half a second
    # at 500 collections), and tasks get them at run time from the DAG anyway.
    dag.params = params
    return dag


def _pooled(config: PrivacyConfig, address: CollectionAddress) -> dict[str, str]:
    """The pool of the collection's database (``pool:`` of its dataset in privacy.yml), if it names one."""
    pool = config.mapping(address.dataset).pool
    return {"pool": pool} if pool else {}


def _doc(config: PrivacyConfig) -> str:
    lines = [
        "# Privacy request",
        f"One run is one privacy request for **{config.settings.organization}**. Trigger it with a policy "
        "and the subject's identity; resume a failed step by clearing its task (with downstream).",
        "",
        "| collection | reached from | kind |",
        "|---|---|---|",
    ]
    for address in config.plan.order:
        sources = [
            f"identity `{i.source_field}`" if i.source is None else f"`{i.source}:{i.source_field}`"
            for i in config.plan.inputs[address]
        ]
        kind = {"email": "vendor email", "manual": "manual (a person answers)", "saas": "SaaS API",
                "mongo": "MongoDB"}.get(
            config.mapping(address.dataset).kind, "SQL")
        lines.append(f"| `{address}` | {', '.join(sources) or 'nothing'} | {kind} |")
    lines += ["", "Policies: " + ", ".join(f"`{k}` ({p.display_name})" for k, p in sorted(config.policies.items()))]
    return "\n".join(lines)


def build_vendor_test_email_dag(config: PrivacyConfig) -> DAG:
    """A one-task DAG an operator triggers to send a vendor's test recipient a sample email."""
    vendors = config.email_datasets
    with DAG(
        dag_id=TEST_EMAIL_DAG_ID,
        schedule=None,
        catchup=False,
        tags=["privacy"],
        default_args={"owner": "privacy", "retries": 0},
        params={"dataset": Param(vendors[0] if vendors else None, type="string", enum=vendors or [""],
                                 title="Vendor dataset",
                                 description="The email dataset whose test recipient (email.test_to) gets "
                                             "a sample erasure email with dummy data.")},
        doc_md="Send a vendor's test recipient a sample erasure email, to check the SMTP connection and the "
               "template without a privacy request.",
    ) as dag:
        VendorTestEmailOperator(task_id="send_test_email", privacy_config=config, dataset="{{ params.dataset }}")
    return dag


def build_deadlines_dag(config: PrivacyConfig) -> DAG | None:
    """A scheduled check that notifies about requests close to their due date (when privacy.yml asks)."""
    alert = config.settings.deadline_alert
    if alert is None:
        return None
    with DAG(
        dag_id=DEADLINES_DAG_ID,
        schedule=alert.schedule,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        tags=["privacy"],
        default_args={"owner": "privacy", "retries": 1, "retry_delay": timedelta(minutes=5)},
        doc_md=f"Notifies about privacy requests still open {alert.days_before_due} day(s) before their due date "
               f"({alert.notifier}), and about DROP downloads not yet answered before their 45-day due date; "
               "each once.",
    ) as dag:
        DeadlineCheckOperator(task_id="check_deadlines", privacy_config=config)
    return dag


def build_vendor_digest_dag(config: PrivacyConfig) -> DAG | None:
    """One task per digest vendor (``email.digest`` in privacy.yml), run at every vendor's schedule; each task
    sends only at its own vendor's times, or at once when the DAG is triggered by hand."""
    vendors = config.digest_datasets
    if not vendors:
        return None
    crons = sorted({config.mapping(ds).email.digest_cron for ds in vendors})  # type: ignore[union-attr]
    with DAG(
        dag_id=VENDOR_DIGEST_DAG_ID,
        schedule=MultipleCronTriggerTimetable(*crons, timezone="UTC"),
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        tags=["privacy"],
        default_args={"owner": "privacy", "retries": config.settings.retries.count,
                      "retry_delay": timedelta(seconds=config.settings.retries.delay_seconds),
                      "retry_exponential_backoff": True},
        doc_md="Sends each digest vendor one email listing every privacy request waiting for it since its last "
               "digest, exactly once, then marks those requests' email step done in their reports. Vendors: "
               + ", ".join(f"`{ds}` ({config.mapping(ds).email.digest})" for ds in vendors),  # type: ignore[union-attr]
    ) as dag:
        for dataset in vendors:
            VendorDigestOperator(task_id=dataset, privacy_config=config, dataset=dataset)
    return dag
