"""DROP's standardization and hashing against the specification's vectors (tests/unit/drop_vectors.json)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from include.privacy_requests.drop.hashing import (
    LIST_FIELDS,
    STANDARDIZE,
    hash_field,
    is_drop_hash,
    list_hash,
    namevin_hash,
    ndz_hash,
    sha256_base64,
)

VECTORS = json.loads((Path(__file__).parent / "drop_vectors.json").read_text())


@pytest.mark.parametrize("vector", VECTORS["single"], ids=lambda v: f"{v['kind']}:{v['input']}")
def test_published_vectors(vector: dict) -> None:
    assert STANDARDIZE[vector["kind"]](vector["input"]) == vector["standard"]
    assert sha256_base64(vector["standard"]) == vector["hash"]
    assert hash_field(vector["kind"], vector["input"]) == vector["hash"]
    assert len(vector["hash"]) == 44 and is_drop_hash(vector["hash"])


@pytest.mark.parametrize("vector", VECTORS["standard_only"], ids=lambda v: f"{v['kind']}:{v['input']}")
def test_standardization_edge_cases(vector: dict) -> None:
    assert STANDARDIZE[vector["kind"]](vector["input"]) == vector["standard"]


@pytest.mark.parametrize("vector", VECTORS["ndz"])
def test_ndz_composite(vector: dict) -> None:
    parts = [hash_field(k, vector[k]) for k in ("first_name", "last_name", "dob", "zip")]
    assert "".join(parts) == vector["concatenated"]
    assert ndz_hash(vector["first_name"], vector["last_name"], vector["dob"], vector["zip"]) == vector["hash"]
    assert list_hash("NDZ", vector) == vector["hash"]
    # A ZIP+4 and a date object give the same hash; a missing part gives none.
    assert ndz_hash("DANIELLE ", "johnson", date(1985, 7, 4), "91790-1234") == vector["hash"]
    assert ndz_hash("Danielle", "Johnson", None, "91790") is None


def test_namevin_composite() -> None:
    expected = sha256_base64(sha256_base64("juanpablo") + sha256_base64("martinez")
                             + sha256_base64("1m8gdm9axkp042788"))
    assert namevin_hash("Juan Pablo", "Martínez", "1M8GDM9AXKP042788") == expected
    assert list_hash("NameVIN", {"first_name": "juan pablo", "last_name": "MARTINEZ",
                                 "vin": "1m8gdm9axkp042788"}) == expected
    assert namevin_hash("Juan", "Martinez", "short") is None


def test_every_list_type_hashes() -> None:
    values = {"email": "a@b.co", "phone": "4155559317", "maid": "6d92078a82464ba4ae5b76104861e7dc",
              "ctvid": "rokuabcd1234", "first_name": "Ann", "last_name": "Lee", "dob": "2000-01-02",
              "zip": "94110", "vin": "1M8GDM9AXKP042788"}
    assert set(LIST_FIELDS) == {"Email", "Phone", "MAID", "CTVID", "NDZ", "NameVIN"}
    for list_type in LIST_FIELDS:
        assert is_drop_hash(list_hash(list_type, values)), list_type
    assert list_hash("Email", {"email": " A@B.CO"}) == list_hash("Email", values)


def test_none_and_non_strings() -> None:
    assert hash_field("email", None) is None
    assert STANDARDIZE["phone"](4155559317) == "4155559317"
    assert not is_drop_hash("x" * 44) and not is_drop_hash(None)
