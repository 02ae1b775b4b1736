"""Builds the ``privacy_request`` DAG from the configuration, in two passes like Cosmos: one task per
checkpoint and per collection, then the edges from the dataset graph."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, BaseOperator, Param, TaskGroup
from airflow.sdk.definitions.param import ParamsDict

from ..config import PrivacyConfig
from ..graph import CollectionAddress
from ..request import IDENTITY_VALUE_PATTERN, MAX_IDENTITY_LENGTH, REQUEST_ID_PATTERN
from .constants import (
    ACCESS_GROUP,
    APPROVE,
    DAG_ID,
    DEADLINES_DAG_ID,
    EMAIL_GROUP,
    ERASURE_GROUP,
    FINALIZE,
    TEST_EMAIL_DAG_ID,
    UPLOAD,
    VALIDATE,
    webhooks_task,
)
from .operators import (
    AccessCollectionOperator,
    ApproveRequestOperator,
    DeadlineCheckOperator,
    EmailSendOperator,
    ErasureCollectionOperator,
    FinalizeOperator,
    UploadAccessPackageOperator,
    ValidateRequestOperator,
    VendorTestEmailOperator,
    WebhooksOperator,
)


def request_params(config: PrivacyConfig) -> ParamsDict:
    """The trigger form: policy as a choice of the configured policies, identity values, optional id."""
    policies = sorted(config.policies)
    identity_keys = sorted(config.graph.identity_keys)
    return ParamsDict({
        # No default: a request names its policy, nothing defaults into an erasure. A trigger without one is
        # refused by Airflow before a run exists (the UI form shows the field as required).
        "policy": Param(
            type="string",
            enum=policies,
            values_display={k: config.policies[k].display_name for k in policies},
            title="Policy",
            description="What the request does: access rules return data, erasure rules mask it.",
        ),
        "identity": Param(
            {},
            type="object",
            title="Identity",
            description=f"The data subject's identity values, by type: {', '.join(identity_keys)}. "
                        'Example: {"email": "subject@example.org"}.',
            properties={k: {"type": "string", "minLength": 1, "maxLength": MAX_IDENTITY_LENGTH,
                            "pattern": IDENTITY_VALUE_PATTERN} for k in identity_keys},
            additionalProperties=False,
            minProperties=1,
        ),
        "request_id": Param(
            None,
            type=["null", "string"],
            pattern=REQUEST_ID_PATTERN,
            title="Request id",
            description="Optional; defaults to the run id. Names the request's folder in storage.",
        ),
    })


def build_privacy_request_dag(config: PrivacyConfig) -> DAG:
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
        dag_id=DAG_ID,
        schedule=None,
        catchup=False,
        tags=["privacy"],
        default_args=default_args,
        doc_md=_doc(config),
        max_active_tasks=16,
    ) as dag:
        common = {"privacy_config": config}
        validate = ValidateRequestOperator(task_id=VALIDATE, trigger_rule="all_success", **common)
        # Only when some policy asks for approval: every task costs each request time.
        approve = ApproveRequestOperator(task_id=APPROVE, **common) if config.needs_approval else None
        pre = WebhooksOperator(task_id=webhooks_task("pre"), step="pre", **common)
        access: dict[CollectionAddress, BaseOperator] = {}
        erasure: dict[CollectionAddress, BaseOperator] = {}
        with TaskGroup(ACCESS_GROUP, prefix_group_id=True):
            for address in config.plan.order:
                access[address] = AccessCollectionOperator(task_id=address.task_suffix, address=address,
                                                           **_pooled(config, address), **common)
        upload = UploadAccessPackageOperator(task_id=UPLOAD, **common)
        with TaskGroup(ERASURE_GROUP, prefix_group_id=True):
            for address in config.plan.order:
                erasure[address] = ErasureCollectionOperator(task_id=address.task_suffix, address=address,
                                                             **_pooled(config, address), **common)
        with TaskGroup(EMAIL_GROUP, prefix_group_id=True):
            sends = [EmailSendOperator(task_id=ds, dataset=ds, **common) for ds in config.email_datasets]
        post = WebhooksOperator(task_id=webhooks_task("post"), step="post", **common)
        finalize = FinalizeOperator(task_id=FINALIZE, **common)

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
            before = config.graph.collections[address].erase_after
            if before:
                for source in sorted(before):
                    erasure[source] >> task
            else:
                upload >> task
        erasure_tasks = list(erasure.values())
        for send in sends:
            erasure_tasks >> send
        (sends or erasure_tasks) >> post
        post >> finalize
    # Set after the tasks exist: every operator deep-copies the DAG's params when it is made (half a second
    # at 500 collections), and tasks get them at run time from the DAG anyway.
    dag.params = request_params(config)
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
        kind = {"email": "vendor email", "manual": "manual (a person answers)"}.get(
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
               f"({alert.notifier}); each request once.",
    ) as dag:
        DeadlineCheckOperator(task_id="check_deadlines", privacy_config=config)
    return dag
