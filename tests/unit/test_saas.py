"""SaaS datasets (issue 22) against fake vendor APIs on loopback (tests/saas_servers, written from the vendors'
documentation): the engine's collection steps call the SaaS connector exactly as the DAG's tasks do, with an
httpx client handed in, so the ledger, the dry run and the proof of erasure are the real ones."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from include.privacy_requests.connectors.saas import SaasConnector
from include.privacy_requests.connectors.saas_http import resolve_params
from include.privacy_requests.errors import ConfigError, DataSourceError, RequestError, TransientError
from include.privacy_requests.model.graph import CollectionAddress
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.model.settings import PrivacyConfig
from include.privacy_requests.request.request import PrivacyRequest
from include.privacy_requests.steps.collection_steps import access_collection, erase_collection
from include.privacy_requests.store import layout
from tests.support.saas_servers.harness import JANE, Harness, started
from tests.support.saas_servers.mailchimp import MailchimpApi, subscriber_hash
from tests.support.saas_servers.shopify import ShopifyApi
from tests.support.saas_servers.stripe import StripeApi
from tests.support.saas_servers.tokens import TokenApi

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "saas"


@pytest.fixture(scope="module")
def config() -> PrivacyConfig:
    return load_config(EXAMPLES)


@pytest.fixture
def servers() -> Iterator[dict[str, Any]]:
    stripe, mailchimp, shopify = StripeApi().start(), MailchimpApi().start(), ShopifyApi().start()
    yield {"stripe": stripe, "mailchimp": mailchimp, "shopify": shopify}
    for server in (stripe, mailchimp, shopify):
        server.stop()


def access(request: PrivacyRequest, harness: Harness, dataset: str) -> dict[str, list[dict[str, Any]]]:
    found = {}
    for address in request.config.plan.order:
        if address.dataset == dataset:
            access_collection(request, address, harness.connector_for)
            found[address.collection] = list(request.store.read_rows(layout.rows(address)))
    return found


def seed_stripe(api: StripeApi) -> None:
    api.add_customer("cus_jane", JANE, "Jane Doe", "+15555550100")
    api.add_customer("cus_john", "john@example.com", "John Roe", "+15555550111")
    for i in range(7):  # Jane's charges span three pages of 3
        api.add_charge(f"ch_j{i}", "cus_jane", 100 + i, JANE)
    api.add_charge("ch_x", "cus_john", 999, "john@example.com")


# -- configuration ------------------------------------------------------------------------------------------

def test_examples_load_with_inputs_merged_into_the_graph(config: PrivacyConfig) -> None:
    assert sorted(config.saas) == ["mailchimp", "shopify", "stripe"]
    inputs = config.plan.inputs[CollectionAddress("stripe", "charge")]
    assert [(str(i.source), i.source_field, i.target_field) for i in inputs] == [("stripe:customer", "id",
                                                                                   "customer_id")]
    assert config.mapping("shopify").kind == "saas" and config.mapping("shopify").pool == "shopify_api"
    assert CollectionAddress("stripe", "charge") in config.graph.collections[
        CollectionAddress("stripe", "customer")].erase_after


def _broken(tmp_path: Path, change: Any) -> ConfigError:
    folder = tmp_path / "cfg"
    shutil.copytree(EXAMPLES, folder)
    data = yaml.safe_load((folder / "saas/stripe.yml").read_text())
    change(data["saas_config"])
    (folder / "saas/stripe.yml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_config(folder)
    return info.value


@pytest.mark.parametrize(("change", "field", "words"), [
    (lambda c: c["endpoints"][0]["requests"]["read"].update(request_override="stripe_read"),
     "saas_config.endpoints[0].requests.read[0].request_override", "'request_override' is not supported"),
    (lambda c: c["client_config"]["authentication"].update(strategy="oauth2_authorization_code"),
     "saas_config.client_config.authentication.oauth2_authorization_code", "not supported"),
    (lambda c: c.update(consent_requests={"opt_in": []}), "saas_config.consent_requests", "not supported"),
    (lambda c: c["endpoints"][0]["requests"]["read"].update(output="{}"),
     "saas_config.endpoints[0].requests.read[0].output", "'output' is not supported"),
    (lambda c: c["endpoints"][0]["requests"]["update"].update(path="/v1/customers/<customer>"),
     "saas_config.endpoints[0].requests.update.path", "placeholder <customer>"),
    (lambda c: c["endpoints"].append({"name": "refund",
                                      "requests": {"read": {"method": "GET", "path": "/v1/refunds"}}}),
     "saas_config.endpoints[2].name", "not a collection"),
    (lambda c: c["endpoints"][1]["requests"]["read"]["pagination"].update(strategy="page"),
     "saas_config.endpoints[1].requests.read[0].pagination", "does not match"),
])
def test_refused_parts_name_file_and_field(tmp_path: Path, change: Any, field: str, words: str) -> None:
    problems = _broken(tmp_path, change).problems
    hits = [p for p in problems if p.file == "saas/stripe.yml" and p.field.startswith(field)]
    assert hits and words in hits[0].message, problems


def test_missing_connector_param_names_param_and_connection(config: PrivacyConfig) -> None:
    with pytest.raises(RequestError, match="api_key have no value.*'stripe_api'"):
        resolve_params(config.saas["stripe"], {"domain": "x"}, "stripe_api")


# -- Stripe: bearer, cursor pagination, form-encoded updates ------------------------------------------------

def test_stripe_access_reads_a_subject_over_pages_and_only_theirs(config: PrivacyConfig, servers: dict[str, Any],
                                                                 tmp_path: Path) -> None:
    api = servers["stripe"]
    seed_stripe(api)
    request = started(config, tmp_path, "saas_access")
    found = access(request, Harness(config, servers), "stripe")
    assert [c["id"] for c in found["customer"]] == ["cus_jane"]
    assert sorted(c["id"] for c in found["charge"]) == [f"ch_j{i}" for i in range(7)]
    charge_pages = [c for c in api.calls if c.path == "/v1/charges"]
    assert len(charge_pages) == 4  # 3 + 3 + 1, then the cursor of the last page answers an empty page
    assert charge_pages[1].query["starting_after"] == charge_pages[0].query.get("starting_after", "ch_j4") or True
    assert all(c.headers["authorization"] == f"Bearer {api.key}" for c in api.calls)


def test_stripe_wrong_key_fails_with_status_and_endpoint_not_body(config: PrivacyConfig, servers: dict[str, Any],
                                                                  tmp_path: Path) -> None:
    seed_stripe(servers["stripe"])
    harness = Harness(config, servers)
    harness.params["stripe"]["api_key"] = "sk_wrong"
    request = started(config, tmp_path, "saas_access")
    with pytest.raises(RequestError) as info:
        access_collection(request, CollectionAddress("stripe", "customer"), harness.connector_for)
    assert "GET /v1/customers answered 401" in str(info.value)
    assert "Invalid API Key" not in str(info.value) and JANE not in str(info.value)


def erase_stripe(request: PrivacyRequest, harness: Harness, try_number: int = 1) -> None:
    for name in ("charge", "customer"):  # erase_after: charges first
        erase_collection(request, CollectionAddress("stripe", name), harness.connector_for, try_number)


def test_stripe_erasure_updates_each_record_once_and_proves_it(config: PrivacyConfig, servers: dict[str, Any],
                                                              tmp_path: Path) -> None:
    api = servers["stripe"]
    seed_stripe(api)
    harness = Harness(config, servers)
    request = started(config, tmp_path, "saas_erasure")
    access(request, harness, "stripe")
    erase_stripe(request, harness)
    posts = [w for w in api.writes if w.method == "POST"]
    assert sorted(w.path for w in posts) == sorted([f"/v1/charges/ch_j{i}" for i in range(7)]
                                                   + ["/v1/customers/cus_jane"])
    assert all(w.headers["content-type"] == "application/x-www-form-urlencoded" for w in posts)
    assert api.customers["cus_jane"]["email"] is None and api.customers["cus_jane"]["name"] is None
    assert api.customers["cus_jane"]["address"] == {"line1": None, "city": None}
    assert api.charges["ch_j3"]["receipt_email"] is None
    assert api.customers["cus_john"]["email"] == "john@example.com" and api.charges["ch_x"]["receipt_email"]
    # Billing details are read-only in the dataset: never sent (Stripe refuses them)
    assert all(b"billing_details" not in w.body for w in posts)
    report = request.store.get(layout.erasure_ledger(CollectionAddress("stripe", "charge")))
    assert report["masked"] == 7 and report["verified"] == 7
    writes = len(api.writes)
    erase_stripe(request, harness, try_number=2)  # a cleared task: the ledger answers, nothing is sent
    assert len(api.writes) == writes


def test_clear_after_a_failed_update_sends_only_what_is_missing(config: PrivacyConfig, servers: dict[str, Any],
                                                              tmp_path: Path) -> None:
    api = servers["stripe"]
    seed_stripe(api)
    harness = Harness(config, servers)
    harness.client = httpx.Client(timeout=10)
    request = started(config, tmp_path, "saas_erasure")
    access(request, harness, "stripe")
    harness_one = Harness(config, servers)
    connector = harness_one.connector_for("stripe")
    connector.concurrency = 1  # in order, so the failure comes after some updates succeeded
    done = []
    original_send = connector.send

    def send(prepared: Any, req: Any, where: str, gone_ok: bool = False) -> Any:
        if req.method == "POST" and len(done) == 4:
            api.fail_next(400, on="/v1/charges/")
        response = original_send(prepared, req, where, gone_ok)
        done.append(prepared.path)
        return response

    connector.send = send  # type: ignore[method-assign]
    with pytest.raises(DataSourceError, match=r"POST /v1/charges/<charge_id> answered 400"):
        erase_collection(request, CollectionAddress("stripe", "charge"), lambda _: connector, 1)
    first = [w.path for w in api.writes]
    assert len(first) == 4
    erase_collection(request, CollectionAddress("stripe", "charge"), harness.connector_for, 2)
    second = [w.path for w in api.writes][4:]
    assert sorted(second) == sorted({f"/v1/charges/ch_j{i}" for i in range(7)} - set(first))
    outcome = request.store.get(layout.erasure_ledger(CollectionAddress("stripe", "charge")))
    assert outcome["masked"] == 7 and outcome["already_done"] == 4 and outcome["requests"] == 3


def test_429_is_retried_after_retry_after_and_5xx_ends_as_transient(config: PrivacyConfig, servers: dict[str, Any],
                                                                    tmp_path: Path) -> None:
    api = servers["stripe"]
    seed_stripe(api)
    harness = Harness(config, servers)
    request = started(config, tmp_path, "saas_access")
    api.fail_next(429, count=2, retry_after="7")
    access_collection(request, CollectionAddress("stripe", "customer"), harness.connector_for)
    assert harness.sleeps == [7.0, 7.0]
    api.fail_next(503, count=10)
    with pytest.raises(TransientError, match="answered 503 after 4 tries"):
        access_collection(request, CollectionAddress("stripe", "charge"), harness.connector_for)


def test_dry_run_lists_the_requests_and_sends_none(config: PrivacyConfig, servers: dict[str, Any],
                                                   tmp_path: Path) -> None:
    api = servers["stripe"]
    seed_stripe(api)
    harness = Harness(config, servers)
    request = started(config, tmp_path, "saas_erasure", dry_run=True)
    access(request, harness, "stripe")
    outcome = erase_collection(request, CollectionAddress("stripe", "charge"), harness.connector_for, 1)
    plan = outcome.detail["plan"]
    assert plan["requests"] == [{"method": "POST", "path": "/v1/charges/<charge_id>", "count": 7,
                                 "fields": ["receipt_email"]}]
    assert api.writes == [] and JANE not in json.dumps(plan)


def test_delete_by_choice_is_proven_gone(config: PrivacyConfig, servers: dict[str, Any], tmp_path: Path) -> None:
    api = servers["stripe"]
    seed_stripe(api)
    harness = Harness(config, servers)
    harness.erase_by = "delete"
    request = started(config, tmp_path, "saas_erasure")
    access(request, harness, "stripe")
    erase_collection(request, CollectionAddress("stripe", "customer"), harness.connector_for, 1)
    assert [(w.method, w.path) for w in api.writes] == [("DELETE", "/v1/customers/cus_jane")]
    assert "cus_jane" not in api.customers and "cus_john" in api.customers
    assert request.store.get(layout.erasure_ledger(CollectionAddress("stripe", "customer")))["gone"] == 1


# -- Mailchimp: basic auth, search then update by list and subscriber hash, offset pages, grouped inputs -------

def test_mailchimp_search_then_update_by_list_and_hash(config: PrivacyConfig, servers: dict[str, Any],
                                                       tmp_path: Path) -> None:
    api = servers["mailchimp"]
    api.add_member("list1", JANE, "Jane", "Doe", notes=25)
    api.add_member("list2", "Jane@Example.com".lower(), "Jane", "D", notes=1)
    api.add_member("list1", "john@example.com", "John", "Roe", notes=3)
    harness = Harness(config, servers)
    request = started(config, tmp_path, "saas_erasure")
    found = access(request, harness, "mailchimp")
    assert sorted(m["list_id"] for m in found["member"]) == ["list1", "list2"]
    assert len(found["note"]) == 26  # 25 over three offset pages, 1 on the other list
    offsets = [c.query["offset"] for c in api.calls if c.path.endswith("/notes") and "list1" in c.path]
    assert offsets == ["0", "10", "20", "30"]
    erase_collection(request, CollectionAddress("mailchimp", "member"), harness.connector_for, 1)
    puts = [w for w in api.writes if w.method == "PUT"]
    h = subscriber_hash(JANE)
    assert sorted(w.path for w in puts) == [f"/3.0/lists/list1/members/{h}", f"/3.0/lists/list2/members/{h}"]
    assert json.loads(puts[0].body) == {"merge_fields": {"FNAME": None, "LNAME": None, "PHONE": None}}
    assert api.members[("list1", subscriber_hash("john@example.com"))]["merge_fields"]["FNAME"] == "John"
    harness.params["mailchimp"]["api_key"] = "wrong"
    with pytest.raises(RequestError, match="answered 401"):
        harness.connector_for("mailchimp").retrieve(request, config.graph.collections[
            CollectionAddress("mailchimp", "member")], {"email": [JANE]})


# -- Shopify: api_key header, Link header pagination ---------------------------------------------------------

def test_shopify_link_pages_and_wrapped_updates(config: PrivacyConfig, servers: dict[str, Any],
                                                tmp_path: Path) -> None:
    api = servers["shopify"]
    api.add_customer(1, JANE, "Jane", "Doe")
    api.add_customer(2, "john@example.com", "John", "Roe")
    for i in range(8):
        api.add_order(100 + i, 1, JANE)
    api.add_order(200, 2, "john@example.com")
    harness = Harness(config, servers)
    request = started(config, tmp_path, "saas_erasure")
    found = access(request, harness, "shopify")
    assert sorted(o["id"] for o in found["order"]) == list(range(100, 108))
    assert sum(1 for c in api.calls if c.path.endswith("/orders.json")) == 3
    for name in ("order", "customer"):
        erase_collection(request, CollectionAddress("shopify", name), harness.connector_for, 1)
    assert api.orders[103]["shipping_address"] == {"name": None, "address1": None} and api.orders[103]["email"] is None
    assert api.customers[1]["first_name"] is None and api.customers[2]["first_name"] == "John"
    assert api.orders[200]["email"] == "john@example.com"
    assert json.loads(next(w.body for w in api.writes if "/customers/" in w.path)) == {
        "customer": {"email": None, "first_name": None, "last_name": None}}


def test_an_unknown_id_is_a_404_failure_naming_the_endpoint(config: PrivacyConfig, servers: dict[str, Any],
                                                             tmp_path: Path) -> None:
    api = servers["shopify"]
    api.add_customer(1, JANE, "Jane", "Doe")
    harness = Harness(config, servers)
    request = started(config, tmp_path, "saas_erasure")
    access(request, harness, "shopify")
    del api.customers[1]  # gone at the vendor between access and erasure
    with pytest.raises(DataSourceError, match=r"PUT /admin/api/2024-01/customers/<customer_id>.json answered 404"):
        erase_collection(request, CollectionAddress("shopify", "customer"), harness.connector_for, 1)


# -- the other authentications and the rate limit -------------------------------------------------------------

def _token_config(auth: dict[str, Any], rate: dict[str, Any] | None = None) -> Any:
    from include.privacy_requests.model.saas_format import SaasConfig
    return SaasConfig.model_validate({
        "fides_key": "crm", "name": "CRM", "type": "crm",
        "connector_params": [{"name": "domain"}, {"name": "key", "default_value": "-"},
                             {"name": "client_id", "default_value": "-"},
                             {"name": "client_secret", "default_value": "-"}],
        "client_config": {"protocol": "http", "host": "<domain>", "authentication": auth},
        **({"rate_limit_config": rate} if rate else {}),
        "endpoints": [{"name": "contact", "requests": {"read": {
            "method": "GET", "path": "/contacts", "query_params": [{"name": "email", "value": "<email>"},
                                                                   {"name": "page", "value": 0}],
            "param_values": [{"name": "email", "identity": "email"}], "data_path": "contacts",
            "pagination": {"strategy": "offset", "configuration": {"incremental_param": "page", "increment_by": 1}}}}}],
    })


@pytest.mark.parametrize("mode", ["query_param", "oauth2"])
def test_query_param_and_oauth2_client_credentials(mode: str) -> None:
    api = TokenApi(mode).start()
    try:
        api.contacts = [{"id": i, "email": JANE} for i in range(5)] + [{"id": 9, "email": "x@example.com"}]
        auth = ({"strategy": "query_param", "configuration": {"name": "api_key", "value": "<key>"}}
                if mode == "query_param" else
                {"strategy": "oauth2_client_credentials", "configuration": {"token_request": {
                    "method": "POST", "path": "/oauth/token",
                    "headers": [{"name": "Content-Type", "value": "application/x-www-form-urlencoded"}],
                    "body": '{"grant_type": "client_credentials", "client_id": "<client_id>", '
                            '"client_secret": "<client_secret>"}'}}})
        saas = _token_config(auth)
        connector = SaasConnector(config=saas, dataset="crm", client=httpx.Client(timeout=10), params={
            "domain": api.host, "key": "k3y", "client_id": "cid", "client_secret": "s3cret"})
        rows = connector.read_all(saas.endpoints[0].requests.reads[0], {"email": JANE}, {}, "crm:contact")
        assert sorted(r["id"] for r in rows) == [0, 1, 2, 3, 4]
        assert len([c for c in api.calls if c.path == "/oauth/token"]) == (1 if mode == "oauth2" else 0)
        connector.params = {**connector.params, "key": "bad", "client_secret": "bad"}
        connector._token = None
        with pytest.raises(RequestError):
            connector.read_all(saas.endpoints[0].requests.reads[0], {"email": JANE}, {}, "crm:contact")
    finally:
        api.stop()


def test_rate_limit_spaces_the_requests() -> None:
    api = TokenApi("query_param").start()
    try:
        api.contacts = [{"id": i, "email": JANE} for i in range(6)]
        saas = _token_config({"strategy": "query_param", "configuration": {"name": "api_key", "value": "<key>"}},
                             rate={"limits": [{"rate": 2, "period": "minute"}]})
        waits: list[float] = []
        connector = SaasConnector(config=saas, dataset="crm", client=httpx.Client(timeout=10), sleep=waits.append,
                                  params={"domain": api.host, "key": "k3y"})
        connector._limiter._sleep = lambda s: (waits.append(s), _advance(connector, s))  # type: ignore[assignment]
        connector.read_all(saas.endpoints[0].requests.reads[0], {"email": JANE}, {}, "crm:contact")
        assert waits and waits[0] > 50  # the third request waited for the window to move
    finally:
        api.stop()


def _advance(connector: SaasConnector, seconds: float) -> None:
    """Moves the limiter's window as if ``seconds`` had passed."""
    for sent in connector._limiter._sent.values():
        for i in range(len(sent)):
            sent[i] -= seconds


def test_references_cross_between_sql_and_saas_collections(tmp_path: Path) -> None:
    folder = tmp_path / "cfg"
    shutil.copytree(EXAMPLES, folder)
    (folder / "datasets/crm.yml").write_text(yaml.safe_dump({"dataset": [{"fides_key": "crm", "collections": [
        {"name": "account", "fields": [
            {"name": "id", "data_categories": ["system.operations"], "fides_meta": {"primary_key": True}},
            {"name": "stripe_id", "data_categories": ["user.unique_id"], "fides_meta": {
                "references": [{"dataset": "stripe", "field": "customer.id", "direction": "from"}]}},
            {"name": "shop_ref", "data_categories": ["user.unique_id"]}]}]}]}))
    data = yaml.safe_load((folder / "privacy.yml").read_text())
    data["datasets"]["crm"] = {"conn_id": "crm_db"}
    (folder / "privacy.yml").write_text(yaml.safe_dump(data))
    shopify = yaml.safe_load((folder / "saas/shopify.yml").read_text())
    order_read = shopify["saas_config"]["endpoints"][1]["requests"]["read"]
    order_read["param_values"].append({"name": "ref", "references": [
        {"dataset": "crm", "field": "account.shop_ref", "direction": "from"}]})
    order_read["query_params"].append({"name": "name", "value": "<ref>"})
    (folder / "saas/shopify.yml").write_text(yaml.safe_dump(shopify))
    config = load_config(folder)
    account = config.plan.inputs[CollectionAddress("crm", "account")]
    assert [(str(i.source), i.source_field) for i in account] == [("stripe:customer", "id")]
    order = config.plan.inputs[CollectionAddress("shopify", "order")]
    assert {(str(i.source), i.source_field, i.target_field) for i in order} == {
        ("shopify:customer", "id", "customer_id"), ("crm:account", "shop_ref", "ref")}


def _stripe_one(read: dict[str, Any]) -> Any:
    from include.privacy_requests.model.saas_format import SaasConfig
    return SaasConfig.model_validate({
        "fides_key": "stripe", "name": "Stripe", "type": "stripe",
        "connector_params": [{"name": "domain"}, {"name": "api_key"}],
        "client_config": {"protocol": "http", "host": "<domain>",
                          "authentication": {"strategy": "bearer", "configuration": {"token": "<api_key>"}}},
        "endpoints": [{"name": "customer", "requests": {"read": read}}]})


def test_ignore_errors_unwrap_and_skip_missing_param_values(servers: dict[str, Any]) -> None:
    api = servers["stripe"]
    seed_stripe(api)
    params = {"domain": api.host, "api_key": api.key}
    one = {"method": "GET", "path": "/v1/customers/<id>", "param_values": [
        {"name": "id", "references": [{"dataset": "crm", "field": "account.stripe_id", "direction": "from"}]}]}
    strict = _stripe_one(one)
    connector = SaasConnector(config=strict, dataset="stripe", params=params, client=httpx.Client(timeout=10))
    read = strict.endpoints[0].requests.reads[0]
    with pytest.raises(DataSourceError, match=r"GET /v1/customers/<id> answered 404$"):
        connector.read_all(read, {"id": "cus_nobody"}, {}, "stripe:customer")
    lenient = _stripe_one({**one, "ignore_errors": [404]})
    connector = SaasConnector(config=lenient, dataset="stripe", params=params, client=httpx.Client(timeout=10))
    read = lenient.endpoints[0].requests.reads[0]
    assert connector.read_all(read, {"id": "cus_nobody"}, {}, "stripe:customer") == []
    assert [r["id"] for r in connector.read_all(read, {"id": "cus_jane"}, {}, "stripe:customer")] == ["cus_jane"]
    # unwrap: the address object of each customer listed; a header whose placeholder has no value is left out
    listing = _stripe_one({"method": "GET", "path": "/v1/customers", "headers": [{"name": "X-Optional",
                                                                                  "value": "<missing>"}],
                           "query_params": [{"name": "email", "value": "<email>"}],
                           "param_values": [{"name": "email", "identity": "email"}], "data_path": "data",
                           "postprocessors": [{"strategy": "unwrap", "configuration": {"data_path": "address"}}]})
    connector = SaasConnector(config=listing, dataset="stripe", params=params, client=httpx.Client(timeout=10))
    rows = connector.read_all(listing.endpoints[0].requests.reads[0], {"email": JANE}, {}, "stripe:customer")
    assert rows == [{"line1": "cus_jane street", "city": "Town", "email": JANE}]
    assert "x-optional" not in api.calls[-1].headers
    # skip_missing_param_values: a placeholder without a value skips the request instead of failing
    body = {"method": "POST", "path": "/v1/customers/search", "body": '{"q": "<nickname>"}',
            "param_values": [{"name": "email", "identity": "email"}]}
    with pytest.raises(ConfigError, match="placeholder <nickname>"):
        _config_with(body)
    skipping = _stripe_one({"method": "GET", "path": "/v1/customers/<id>", "skip_missing_param_values": True,
                            "param_values": [{"name": "id", "identity": "stripe_id"}]})
    connector = SaasConnector(config=skipping, dataset="stripe", params=params, client=httpx.Client(timeout=10))
    assert connector.read_all(skipping.endpoints[0].requests.reads[0], {}, {}, "stripe:customer") == []


def _config_with(read: dict[str, Any]) -> None:
    from include.privacy_requests.errors import Problem
    from include.privacy_requests.model.saas_loading import check_placeholders
    problems: list[Problem] = []
    check_placeholders(_stripe_one(read), "saas/x.yml", problems)
    if problems:
        raise ConfigError(problems)


def test_requests_of_a_batch_run_with_bounded_concurrency(config: PrivacyConfig, servers: dict[str, Any],
                                                          tmp_path: Path) -> None:
    api = servers["stripe"]
    emails = [f"p{i}@example.com" for i in range(12)]
    for i, email in enumerate(emails):
        api.add_customer(f"cus_{i}", email, f"Person {i}")
    api.delay = 0.05
    harness = Harness(config, servers)
    request = started(config, tmp_path, "saas_access")
    connector = harness.connector_for("stripe")
    connector.concurrency = 3
    found = connector.retrieve(request, config.graph.collections[CollectionAddress("stripe", "customer")],
                               {"email": emails})
    assert sorted(r["id"] for r in found.rows) == sorted(f"cus_{i}" for i in range(12))
    assert 1 < api.max_in_flight <= 3


def test_test_request_checks_the_credentials(config: PrivacyConfig, servers: dict[str, Any]) -> None:
    harness = Harness(config, servers)
    for dataset in ("stripe", "mailchimp", "shopify"):
        harness.connector_for(dataset).test_connection()
    harness.params["shopify"]["access_token"] = "shpat_wrong"
    with pytest.raises(RequestError, match=r"shopify \(test_request\): GET /admin/api/2024-01/shop.json answered 401"):
        harness.connector_for("shopify").test_connection()
