"""Masking strategies for erasure, with the configurations fidesops defined for them.

Value-dependent strategies (hash, hmac, aes_encrypt) are computed from the values found during access, so
applying them again after a crash gives the same result as applying them once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FormatPreservation(_Config):
    suffix: str


class NullRewriteConfig(_Config):
    pass


class StringRewriteConfig(_Config):
    rewrite_value: str
    format_preservation: FormatPreservation | None = None


class HashConfig(_Config):
    algorithm: Literal["SHA-256", "SHA-512"] = "SHA-256"
    salt: str | None = None
    format_preservation: FormatPreservation | None = None


class RandomStringConfig(_Config):
    length: int = 30
    format_preservation: FormatPreservation | None = None


class HmacConfig(_Config):
    algorithm: Literal["SHA-256", "SHA-512"] = "SHA-256"
    format_preservation: FormatPreservation | None = None


class AesEncryptConfig(_Config):
    mode: Literal["GCM"] = "GCM"
    format_preservation: FormatPreservation | None = None


CONFIG_MODELS: dict[str, type[_Config]] = {
    "null_rewrite": NullRewriteConfig,
    "string_rewrite": StringRewriteConfig,
    "hash": HashConfig,
    "random_string_rewrite": RandomStringConfig,
    "hmac": HmacConfig,
    "aes_encrypt": AesEncryptConfig,
}


def new_request_secrets() -> dict[str, str]:
    """Per-request secrets, made once in validate_request and kept (encrypted) in the request store."""
    return {
        "salt": secrets.token_urlsafe(32),
        "hmac_key": secrets.token_urlsafe(32),
        "aes_key": base64.b64encode(secrets.token_bytes(32)).decode(),
        "aes_key_hmac": secrets.token_urlsafe(32),
        "aes_salt_hmac": secrets.token_urlsafe(32),
    }


def writes_text(strategy: str) -> bool:
    """Every strategy but null_rewrite writes a string, so it only fits text columns."""
    return strategy != "null_rewrite"


class Masker:
    """Masks one field's values with a configured strategy, truncated to the column's ``length``."""

    def __init__(self, strategy: str, configuration: dict[str, Any], request_secrets: dict[str, str]):
        self.strategy = strategy
        self.config = CONFIG_MODELS[strategy].model_validate(configuration or {})
        self._secrets = request_secrets
        self._mask: Callable[[str], str | None] = getattr(self, f"_{strategy}")

    @property
    def per_row(self) -> bool:
        """True when rows get different masked values (derived from the original, or random)."""
        return self.strategy not in ("null_rewrite", "string_rewrite")

    def mask(self, value: Any, length: int | None = None) -> str | None:
        if self.strategy == "null_rewrite":
            return None
        masked = self._mask("" if value is None else str(value))
        preservation = getattr(self.config, "format_preservation", None)
        if masked is not None and preservation is not None:
            masked += preservation.suffix
        if masked is not None and length is not None:
            masked = masked[:length]
        return masked

    def _null_rewrite(self, value: str) -> None:
        return None

    def _string_rewrite(self, value: str) -> str:
        return self.config.rewrite_value  # type: ignore[attr-defined]

    def _hash(self, value: str) -> str:
        salt = self.config.salt if self.config.salt is not None else self._secrets["salt"]  # type: ignore[attr-defined]
        return _digest(self.config.algorithm)((value + salt).encode()).hexdigest()  # type: ignore[attr-defined]

    def _random_string_rewrite(self, value: str) -> str:
        # One read of the system's random source per value (secrets.choice costs one per character); bytes
        # from 252 up are dropped so that every character stays equally likely (252 = 7 * 36).
        length = self.config.length  # type: ignore[attr-defined]
        chars: list[str] = []
        while len(chars) < length:
            chars.extend(_ALPHABET[b % len(_ALPHABET)] for b in secrets.token_bytes(length) if b < 252)
        return "".join(chars[:length])

    def _hmac(self, value: str) -> str:
        key = self._secrets["hmac_key"].encode()
        data = (value + self._secrets["salt"]).encode()
        return hmac.new(key, data, _digest(self.config.algorithm)).hexdigest()  # type: ignore[attr-defined]

    def _aes_encrypt(self, value: str) -> str:
        # Convergent nonce, as fidesops: the same value gives the same ciphertext within a request.
        # Unlike fidesops the nonce is prepended, so the key holder can decrypt.
        nonce_source = (value + self._secrets["aes_salt_hmac"]).encode()
        nonce = hmac.new(self._secrets["aes_key_hmac"].encode(), nonce_source, hashlib.sha256).digest()[:12]
        return base64.b64encode(nonce + self._aesgcm.encrypt(nonce, value.encode(), nonce)).decode()

    @cached_property
    def _aesgcm(self) -> AESGCM:
        """Made once per masker: building the cipher cost more than encrypting a value."""
        return AESGCM(base64.b64decode(self._secrets["aes_key"]))


_ALPHABET = string.ascii_lowercase + string.digits


def _digest(algorithm: str):
    return hashlib.sha512 if algorithm == "SHA-512" else hashlib.sha256


@dataclass(frozen=True)
class FieldMask:
    """A masker bound to one column's ``length``."""

    masker: Masker
    length: int | None = None

    @property
    def per_row(self) -> bool:
        return self.masker.per_row

    def apply(self, value: Any) -> str | None:
        return self.masker.mask(value, self.length)
