"""The per-request store: encrypted documents and row chunks, audit events, clean-up of intermediate data."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from include.privacy_requests.errors import RequestError
from include.privacy_requests.store.store import CHUNK_ROWS, RequestStore

EMAIL = "jane.doe@example.com"
REQUEST = "req-1"


@pytest.fixture
def key() -> bytes:
    return Fernet.generate_key()


@pytest.fixture
def store(tmp_path: Path, key: bytes) -> RequestStore:
    return RequestStore(tmp_path, REQUEST, key)


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file())


def test_put_get_roundtrip(store: RequestStore) -> None:
    value = {"identity": {"email": EMAIL}, "count": 3, "tags": ["a", "b"]}
    store.put("secrets.json", value)
    assert store.get("secrets.json") == value
    assert store.exists("secrets.json")


def test_get_of_a_missing_document_returns_the_default(store: RequestStore) -> None:
    assert store.get("nothing.json") is None
    assert store.get("nothing.json", default={}) == {}
    assert not store.exists("nothing.json")


def test_files_on_disk_do_not_hold_the_plaintext(store: RequestStore, tmp_path: Path) -> None:
    store.put("identity.json", {"email": EMAIL})
    store.write_rows("rows/shop.customer.jsonl", [{"email": EMAIL, "name": "Jane Doe"}])
    store.add_event("email_sent", to=EMAIL)
    written = files_under(tmp_path / REQUEST)
    assert len(written) == 3
    for path in written:
        data = path.read_bytes()
        assert EMAIL.encode() not in data and b"Jane Doe" not in data, path


def test_rows_roundtrip_in_chunks(store: RequestStore, tmp_path: Path) -> None:
    rows = [{"id": i, "email": f"user{i}@example.com"} for i in range(2500)]
    assert CHUNK_ROWS < 2500  # several chunks
    assert store.write_rows("rows/shop.customer.jsonl", iter(rows)) == 2500
    assert list(store.read_rows("rows/shop.customer.jsonl")) == rows
    lines = (tmp_path / REQUEST / "rows" / "shop.customer.jsonl").read_bytes().splitlines()
    assert len(lines) == math.ceil(2500 / CHUNK_ROWS) == 3


def test_write_no_rows(store: RequestStore) -> None:
    assert store.write_rows("rows/empty.jsonl", []) == 0
    assert list(store.read_rows("rows/empty.jsonl")) == []


def test_read_rows_of_a_missing_name_yields_nothing(store: RequestStore) -> None:
    assert list(store.read_rows("rows/never-written.jsonl")) == []


def test_events_are_kept_in_order(store: RequestStore) -> None:
    first = store.add_event("validated", request="r")
    second = store.add_event("email_sent", to="vendor@example.com", message_id="<1@x>")
    assert store.events() == [first, second]
    assert second["event"] == "email_sent" and second["to"] == "vendor@example.com"
    assert "time" in second


def test_list_documents_of_a_folder(store: RequestStore) -> None:
    store.put("ledger/b.json", {})
    store.put("ledger/a.json", {})
    assert store.list("ledger") == ["ledger/a.json", "ledger/b.json"]
    assert store.list("nothing") == []


def test_delete_intermediate_keeps_ledger_events_and_deliverables(store: RequestStore, tmp_path: Path) -> None:
    base = tmp_path / REQUEST
    store.write_rows("rows/shop.customer.jsonl", [{"email": EMAIL}])
    store.put("values/shop.orders.json", {"customer_id": [1]})
    store.put("instructions/vendor/children.json", {"erase": {"name": "null_rewrite"}})
    store.put("ledger/erasure.shop.customer.json", {"masked": 1})
    store.put("results/access.shop.customer.json", {"rows": 1})
    store.put("secrets.json", {"salt": "s"})
    event = store.add_event("collection_masked", rows=1)
    store.write_public("access_package.json", ['{"shop:customer": ', "[]}"])

    assert store.delete_intermediate() == 4
    assert not store.exists("secrets.json")

    for folder in ("rows", "values", "instructions"):
        assert files_under(base / folder) == [], folder
    assert list(store.read_rows("rows/shop.customer.jsonl")) == []
    assert store.get("instructions/vendor/children.json") is None
    assert store.get("ledger/erasure.shop.customer.json") == {"masked": 1}
    assert store.get("results/access.shop.customer.json") == {"rows": 1}
    assert store.events() == [event]
    assert (base / "access_package.json").read_text() == '{"shop:customer": []}'


def test_delete_intermediate_without_intermediate_data(store: RequestStore) -> None:
    assert store.delete_intermediate() == 0


def test_public_documents_are_written_in_clear(store: RequestStore, tmp_path: Path) -> None:
    path = store.write_public("report.json", ['{"status": ', '"complete"}'])
    assert Path(str(path)) == tmp_path / REQUEST / "report.json"
    assert Path(str(path)).read_text() == '{"status": "complete"}'


def test_another_key_cannot_read(store: RequestStore, tmp_path: Path) -> None:
    store.put("identity.json", {"email": EMAIL})
    store.write_rows("rows/shop.customer.jsonl", [{"email": EMAIL}])
    intruder = RequestStore(tmp_path, REQUEST, Fernet.generate_key())
    with pytest.raises(RequestError, match="cannot decrypt identity.json: the store key"):
        intruder.get("identity.json")
    with pytest.raises(RequestError, match="cannot decrypt rows/shop.customer.jsonl"):
        list(intruder.read_rows("rows/shop.customer.jsonl"))


def test_a_malformed_key_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RequestError, match="not a valid Fernet key"):
        RequestStore(tmp_path, REQUEST, "not-a-key")


def test_requests_are_kept_apart(tmp_path: Path, key: bytes) -> None:
    RequestStore(tmp_path, "one", key).put("identity.json", {"email": EMAIL})
    assert RequestStore(tmp_path, "two", key).get("identity.json") is None
    assert RequestStore(tmp_path, "one", key).get("identity.json") == {"email": EMAIL}
