"""Masking strategies: each one's output, checked against the primitive it is built on."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from include.privacy_requests.model.masking import FieldMask, Masker, new_request_secrets, writes_text

EMAIL = "jane@example.com"


@pytest.fixture
def secrets() -> dict[str, str]:
    return new_request_secrets()


def masker(strategy: str, secrets: dict[str, str], **configuration: Any) -> Masker:
    return Masker(strategy, configuration, secrets)


def test_null_rewrite(secrets: dict[str, str]) -> None:
    m = masker("null_rewrite", secrets)
    assert m.mask(EMAIL) is None
    assert m.mask(EMAIL, length=5) is None
    assert not writes_text("null_rewrite") and writes_text("hash")


def test_string_rewrite(secrets: dict[str, str]) -> None:
    assert masker("string_rewrite", secrets, rewrite_value="MASKED").mask(EMAIL) == "MASKED"


def test_string_rewrite_with_format_preservation(secrets: dict[str, str]) -> None:
    m = masker("string_rewrite", secrets, rewrite_value="masked",
               format_preservation={"suffix": "@masked.example"})
    assert m.mask(EMAIL) == "masked@masked.example"


def test_hash_with_configured_salt(secrets: dict[str, str]) -> None:
    m = masker("hash", secrets, salt="pepper")
    assert m.mask(EMAIL) == hashlib.sha256((EMAIL + "pepper").encode()).hexdigest()


def test_hash_uses_the_request_salt_when_none_is_configured(secrets: dict[str, str]) -> None:
    m = masker("hash", secrets)
    assert m.mask(EMAIL) == hashlib.sha256((EMAIL + secrets["salt"]).encode()).hexdigest()
    other_request = masker("hash", new_request_secrets())
    assert other_request.mask(EMAIL) != m.mask(EMAIL)


def test_hash_sha512(secrets: dict[str, str]) -> None:
    m = masker("hash", secrets, algorithm="SHA-512", salt="pepper")
    assert m.mask(EMAIL) == hashlib.sha512((EMAIL + "pepper").encode()).hexdigest()


def test_hash_of_a_non_string_value(secrets: dict[str, str]) -> None:
    assert masker("hash", secrets, salt="s").mask(42) == hashlib.sha256(b"42s").hexdigest()


def test_random_string_rewrite(secrets: dict[str, str]) -> None:
    m = masker("random_string_rewrite", secrets, length=12)
    first, second = m.mask(EMAIL), m.mask(EMAIL)
    assert re.fullmatch(r"[a-z0-9]{12}", first or "")
    assert re.fullmatch(r"[a-z0-9]{12}", second or "")
    assert first != second
    assert re.fullmatch(r"[a-z0-9]{30}", masker("random_string_rewrite", secrets).mask(EMAIL) or "")


def test_hmac(secrets: dict[str, str]) -> None:
    expected = hmac.new(secrets["hmac_key"].encode(), (EMAIL + secrets["salt"]).encode(), hashlib.sha256)
    assert masker("hmac", secrets).mask(EMAIL) == expected.hexdigest()


def test_hmac_sha512(secrets: dict[str, str]) -> None:
    expected = hmac.new(secrets["hmac_key"].encode(), (EMAIL + secrets["salt"]).encode(), hashlib.sha512)
    assert masker("hmac", secrets, algorithm="SHA-512").mask(EMAIL) == expected.hexdigest()


def test_aes_encrypt_decrypts_with_the_request_key(secrets: dict[str, str]) -> None:
    masked = masker("aes_encrypt", secrets).mask(EMAIL)
    assert masked is not None and EMAIL not in masked
    raw = base64.b64decode(masked)
    nonce, ciphertext = raw[:12], raw[12:]
    key = base64.b64decode(secrets["aes_key"])
    assert AESGCM(key).decrypt(nonce, ciphertext, nonce).decode() == EMAIL


def test_aes_encrypt_is_convergent(secrets: dict[str, str]) -> None:
    m = masker("aes_encrypt", secrets)
    assert m.mask(EMAIL) == m.mask(EMAIL)
    assert masker("aes_encrypt", secrets).mask(EMAIL) == m.mask(EMAIL)
    assert m.mask("john@example.com") != m.mask(EMAIL)
    assert masker("aes_encrypt", new_request_secrets()).mask(EMAIL) != m.mask(EMAIL)


@pytest.mark.parametrize(
    ("strategy", "configuration"),
    [
        ("string_rewrite", {"rewrite_value": "REDACTED-VALUE"}),
        ("hash", {}),
        ("hmac", {}),
        ("random_string_rewrite", {}),
        ("aes_encrypt", {}),
    ],
)
def test_length_truncates_to_fit_the_column(strategy: str, configuration: dict[str, Any],
                                            secrets: dict[str, str]) -> None:
    m = Masker(strategy, configuration, secrets)
    full = m.mask(EMAIL)
    assert full is not None and len(full) > 5
    short = m.mask(EMAIL, length=5)
    assert short is not None and len(short) == 5
    if not strategy.startswith("random"):
        assert short == full[:5]


def test_length_applies_after_the_format_preservation_suffix(secrets: dict[str, str]) -> None:
    m = masker("string_rewrite", secrets, rewrite_value="ab", format_preservation={"suffix": "@x.example"})
    assert m.mask(EMAIL, length=5) == "ab@x."


@pytest.mark.parametrize(
    ("strategy", "configuration", "expected"),
    [
        ("null_rewrite", {}, False),
        ("string_rewrite", {"rewrite_value": "x"}, False),
        ("hash", {}, True),
        ("hmac", {}, True),
        ("aes_encrypt", {}, True),
        ("random_string_rewrite", {}, True),
    ],
)
def test_field_mask_per_row(strategy: str, configuration: dict[str, Any], expected: bool,
                                    secrets: dict[str, str]) -> None:
    assert FieldMask(Masker(strategy, configuration, secrets), length=10).per_row is expected


def test_field_mask_applies_its_length(secrets: dict[str, str]) -> None:
    field_mask = FieldMask(masker("hash", secrets, salt="pepper"), length=8)
    assert field_mask.apply(EMAIL) == hashlib.sha256((EMAIL + "pepper").encode()).hexdigest()[:8]
    assert FieldMask(masker("hash", secrets, salt="pepper")).apply(EMAIL) == masker(
        "hash", secrets, salt="pepper").mask(EMAIL)


def test_request_secrets_are_fresh_and_complete() -> None:
    first, second = new_request_secrets(), new_request_secrets()
    assert set(first) == {"salt", "hmac_key", "aes_key", "aes_key_hmac", "aes_salt_hmac"}
    assert len(base64.b64decode(first["aes_key"])) == 32
    assert all(first[k] != second[k] for k in first)


def test_invalid_configuration_is_rejected(secrets: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        Masker("hash", {"algorithm": "MD5"}, secrets)
    with pytest.raises(ValueError):
        Masker("string_rewrite", {}, secrets)
