"""The DAG files import cleanly, follow the house rules, and wire the graph as the data map says."""

from __future__ import annotations

import pytest

from tests.support.dag_runs import dagbag

CHECKPOINTS = ["validate_request", "approve_request", "pre_webhooks", "upload_access_package", "post_webhooks",
               "finalize"]


def test_dags_import_without_errors_and_follow_the_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    bag = dagbag(monkeypatch)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"privacy_request", "privacy_request_batch", "privacy_vendor_test_email",
                                "privacy_request_deadlines", "privacy_request_retention"}
    for dag in bag.dags.values():
        assert dag.tags, dag.dag_id
        for task in dag.tasks:
            assert task.owner == "privacy", task.task_id
            assert task.retries is not None, task.task_id


def test_task_ids_are_the_checkpoints_and_one_per_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    dag = dagbag(monkeypatch).dags["privacy_request"]
    ids = set(dag.task_ids)
    assert set(CHECKPOINTS) <= ids
    collections = ["demo_shop.customer", "demo_shop.address", "demo_shop.orders", "demo_shop.order_item",
                   "demo_shop.login", "demo_shop.payment_card", "demo_shop.sms_subscription",
                   "daycare_vendor.daycare_customer", "daycare_vendor.children", "daycare_vendor.payment"]
    assert {f"access.{c}" for c in collections} | {f"erasure.{c}" for c in collections} <= ids
    assert "erasure_email_send.daycare_vendor" in ids
    assert len(ids) == len(CHECKPOINTS) + 2 * len(collections) + 1


def test_batch_dag_has_the_checkpoints_and_graph_of_a_single_request(monkeypatch: pytest.MonkeyPatch) -> None:
    dags = dagbag(monkeypatch).dags
    single, batch = dags["privacy_request"], dags["privacy_request_batch"]
    assert batch.task_ids == single.task_ids
    assert {t.task_id: t.upstream_task_ids for t in batch.tasks} == {t.task_id: t.upstream_task_ids
                                                                      for t in single.tasks}
    assert set(batch.params) == {"policy", "subjects", "subjects_url", "batch_id"}
    assert all(t.template_fields == () for t in batch.tasks)  # everything comes from the run's conf


def test_access_tasks_are_wired_from_the_dataset_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    dag = dagbag(monkeypatch).dags["privacy_request"]
    upstream = {t.task_id: t.upstream_task_ids for t in dag.tasks}
    assert upstream["access.demo_shop.customer"] == {"pre_webhooks"}
    assert upstream["access.demo_shop.address"] == {
        "access.demo_shop.customer", "access.demo_shop.orders", "access.demo_shop.payment_card"}
    assert upstream["access.demo_shop.order_item"] == {"access.demo_shop.orders"}
    assert upstream["access.daycare_vendor.children"] == {"access.daycare_vendor.daycare_customer"}
    assert upstream["erasure.demo_shop.customer"] == {"upload_access_package"}
    assert len(upstream["erasure_email_send.daycare_vendor"]) == 10
    assert upstream["post_webhooks"] == {"erasure_email_send.daycare_vendor"}
    assert upstream["finalize"] == {"post_webhooks"}


def test_erase_after_orders_erasure_tasks(monkeypatch: pytest.MonkeyPatch, config_folder) -> None:
    def erase_orders_after_items(data: dict) -> None:
        orders = next(c for c in data["dataset"][0]["collections"] if c["name"] == "orders")
        orders["fides_meta"] = {"erase_after": ["demo_shop.order_item"]}

    config_folder.edit("datasets/demo_shop.yml", erase_orders_after_items)
    dag = dagbag(monkeypatch, config_folder.path).dags["privacy_request"]
    assert dag.get_task("erasure.demo_shop.orders").upstream_task_ids == {"erasure.demo_shop.order_item"}


def test_approval_is_a_checkpoint_only_when_a_policy_asks_for_it(monkeypatch: pytest.MonkeyPatch,
                                                                 config_folder) -> None:
    dag = dagbag(monkeypatch).dags["privacy_request"]
    assert dag.get_task("pre_webhooks").upstream_task_ids == {"approve_request"}
    assert dag.get_task("approve_request").upstream_task_ids == {"validate_request"}

    config_folder.edit("policies/demo_policies.yml",
                       lambda d: d.update(policy=[p for p in d["policy"] if not p.get("manual_approval")]))
    dag = dagbag(monkeypatch, config_folder.path).dags["privacy_request"]
    assert "approve_request" not in dag.task_ids
    assert dag.get_task("pre_webhooks").upstream_task_ids == {"validate_request"}


def test_bad_configuration_is_the_dags_import_error_naming_file_and_field(monkeypatch: pytest.MonkeyPatch,
                                                                         config_folder) -> None:
    config_folder.edit("policies/demo_policies.yml",
                       lambda d: d["policy"][1]["rules"][0]["masking_strategy"].update(strategy="shred"))
    bag = dagbag(monkeypatch, config_folder.path)
    errors = "\n".join(bag.import_errors.values())
    assert "privacy_request" not in bag.dag_ids
    assert "policies/demo_policies.yml" in errors
    assert "policy[1].rules[0].masking_strategy.strategy" in errors
    assert "unknown masking strategy 'shred'" in errors


def test_task_templates_render_the_vendor_param(monkeypatch: pytest.MonkeyPatch) -> None:
    dag = dagbag(monkeypatch).dags["privacy_vendor_test_email"]
    task = dag.get_task("send_test_email")
    assert task.template_fields == ("dataset",)
    assert task.dataset == "{{ params.dataset }}"


def test_trigger_form_offers_the_configured_policies_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    dag = dagbag(monkeypatch).dags["privacy_request"]
    policy = dag.params.get_param("policy")
    assert policy.schema["enum"] == ["access_and_erasure_policy", "default_access_policy", "default_erasure_policy",
                                     "reviewed_erasure_policy"]
    assert policy.schema["values_display"]["default_erasure_policy"] == "Erasure request (GDPR Art. 17)"
    identity = dag.params.get_param("identity")
    assert set(identity.schema["properties"]) == {"email", "phone_number"}
    assert "| `demo_shop:address` | `demo_shop:customer:address_id`" in dag.doc_md  # the data map
