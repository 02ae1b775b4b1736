"""``privacy_drop``: California's DROP lists, end to end. ``drop_receive`` >> ``drop_match`` >> the batch
checkpoints (the same task ids and graph as ``privacy_request_batch``, erasing the matched consumers with
``drop.policy``) >> ``drop_respond``. Scheduled every ``drop.schedule_days`` (at most 45), triggerable by hand
(conf ``{"source": "folder" | "api"}`` or ``{"zip_url": "..."}``)."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Param
from airflow.sdk.definitions.param import ParamsDict

from ..errors import ConfigError
from ..model.settings import PrivacyConfig
from .constants import DROP_DAG_ID, DROP_MATCH, DROP_RECEIVE, DROP_RESPOND, FINALIZE, VALIDATE
from .dag_factory import Checkpoints, build_checkpoints_dag
from .operators.drop import (
    DropAccessOperator,
    DropEmailSendOperator,
    DropErasureOperator,
    DropFinalizeOperator,
    DropMatchOperator,
    DropReceiveOperator,
    DropRespondOperator,
    DropSkippedOperator,
    DropUploadOperator,
    DropValidateOperator,
)

DROP = Checkpoints(DropValidateOperator, DropSkippedOperator, DropSkippedOperator, DropAccessOperator,
                   DropUploadOperator, DropErasureOperator, DropEmailSendOperator, DropFinalizeOperator)


def drop_params() -> ParamsDict:
    return ParamsDict({
        "source": Param(None, type=["null", "string"], enum=[None, "folder", "api"], title="Source",
                        description="Where the download comes from; default: a new ZIP in drop.folder, else the "
                                    "DROP API."),
        "zip_url": Param(None, type=["null", "string"], title="Download ZIP",
                         description="Optional: the object storage URL of one download ZIP to process."),
    })


def build_drop_dag(config: PrivacyConfig) -> DAG | None:
    drop = config.settings.drop
    if drop is None:
        return None
    policy = config.policies.get(drop.policy)
    if policy is None or not policy.erasure_rules:
        raise ConfigError(f"privacy.yml: drop.policy '{drop.policy}' is not an erasure policy of policies/*.yml "
                          f"(known: {', '.join(sorted(config.policies))})")
    doc = (f"# DROP (California Delete Act)\nEvery {drop.schedule_days} days (the law asks for at least every "
           "45): receive the download, match its hashes against our records, erase the matched consumers "
           f"(policy `{drop.policy}`), answer per work item (2 exempted, 3 deleted, 4 opted out, 5 not found); "
           "keep the hashes as a suppression list re-matched on every run. See docs/drop.md.")
    dag = build_checkpoints_dag(config, DROP_DAG_ID, DROP, drop_params(), doc,
                                schedule=timedelta(days=drop.schedule_days), tags=("privacy", "drop"))
    with dag:
        common = {"privacy_config": config}
        receive = DropReceiveOperator(task_id=DROP_RECEIVE, trigger_rule="all_success", **common)
        match = DropMatchOperator(task_id=DROP_MATCH, trigger_rule="all_success", **common)
        respond = DropRespondOperator(task_id=DROP_RESPOND, **common)
        receive >> match >> dag.get_task(VALIDATE)
        dag.get_task(FINALIZE) >> respond
    return dag
