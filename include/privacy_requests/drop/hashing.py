"""Standardization and hashing of identifiers exactly as DROP's technical specification says (v1.2.0,
"Working with the data"): standardize, encode as UTF-8, SHA-256, Base64 (always 44 characters).

Email: "Trim leading/trailing whitespace; lowercase the entire address; do not remove dots, plus signs, or
other characters" (the specification's email rule, privacy.ca.gov/drop-for-data-brokers/technical-specifications/
working-with-data/#hashing, as DataGrail's DROP "Hashing Algorithm" reference reproduces it; the official page's
hashing section could not be read from here, and its one email vector, "Anna.Smith@Domain.com", has no
whitespace, so it does not decide the question). Whitespace inside an address is therefore kept (``"a b@x.com"``
stays ``"a b@x.com"``); before 2026-12-04 we removed all whitespace, which hashed such a value differently from
DROP. The SQL the databases run for the Email list (matching.py) trims the same way.

Each ``standardize_*`` returns None for a value that cannot be an identifier of its kind (empty, a MAID that
is not 32 hex digits, ...): such a value never matches, it is not an error. Composite lists (NDZ, NameVIN)
hash each field, concatenate the Base64 hashes in the specification's order and hash the result again.
"""

from __future__ import annotations

import base64
import hashlib
import re
import unicodedata
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from .transliteration import transliterate

HASH_LENGTH = 44
HASH_PATTERN = re.compile(r"^[A-Za-z0-9+/]{43}=$")

_EDGE_WHITESPACE = re.compile(r"^\s+|\s+$")  # trim: the same class as the SQL's \s
_NOT_DIGIT = re.compile(r"[^0-9]")
_NOT_HEX = re.compile(r"[^0-9a-f]")
_ZIP_PLUS_4 = re.compile(r"^\s*([0-9]{5})\s*[-\s]\s*[0-9]{4}\s*$")
_MONTHS = {name: number for number, names in enumerate(
    [("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",), ("june", "jun"),
     ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"), ("october", "oct"),
     ("november", "nov"), ("december", "dec")], start=1) for name in names}


def sha256_base64(text: str) -> str:
    """UTF-8, SHA-256, Base64: the one hash of DROP."""
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def standardize_email(value: Any) -> str | None:
    """Leading and trailing whitespace trimmed (whitespace inside kept), lowercased; dots, plus signs and every
    other character kept (the specification's email rule, quoted in the module docstring)."""
    text = _text(value)
    if text is None:
        return None
    text = _EDGE_WHITESPACE.sub("", text).lower()
    return text or None


def standardize_phone(value: Any) -> str | None:
    """Digits only, then the last ten (all of them when fewer remain)."""
    text = _text(value)
    digits = _NOT_DIGIT.sub("", text) if text is not None else ""
    return digits[-10:] or None


def standardize_name(value: Any) -> str | None:
    """Unicode normalized (NFC), lowercased, Greek and Cyrillic transliterated, accented Latin folded to
    ASCII, then only letters and digits kept (so "Juan Pablo" is "juanpablo"); other scripts kept."""
    text = _text(value)
    if text is None:
        return None
    folded = transliterate(unicodedata.normalize("NFC", text).lower())
    kept = "".join(c for c in folded if c.isalnum())
    return kept or None


def standardize_zip(value: Any) -> str | None:
    """A ZIP+4 loses its +4; then letters and digits only, lowercased, leading zeros removed, the first five
    characters ("91790-3771" is "91790", "M1B 1A1" is "m1b1a", " 00300-9999" is "300")."""
    text = _text(value)
    if text is None:
        return None
    plus4 = _ZIP_PLUS_4.match(text)
    if plus4:
        text = plus4.group(1)
    elif "-" in text:
        text = text.split("-", 1)[0]
    kept = "".join(c for c in text if c.isascii() and c.isalnum()).lower().lstrip("0")
    return kept[:5] or None


def standardize_dob(value: Any) -> str | None:
    """YYYYMMDD, from a date, an ISO date (2000-07-04), YYYYMMDD, MM/DD/YYYY, "July 4, 1776" or "4 July 1776";
    anything else (or an impossible date) is None."""
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return f"{value.year:04d}{value.month:02d}{value.day:02d}"
    text = (_text(value) or "").strip().lower().replace(",", " ")
    parts = [p for p in re.split(r"[\s./-]+", text) if p]
    year = month = day = None
    try:
        if len(parts) == 1 and len(parts[0]) == 8 and parts[0].isdigit():
            year, month, day = int(parts[0][:4]), int(parts[0][4:6]), int(parts[0][6:])
        elif len(parts) == 3 and all(p.isdigit() for p in parts):
            if len(parts[0]) == 4:
                year, month, day = int(parts[0]), int(parts[1]), int(parts[2])
            elif len(parts[2]) == 4:  # US order, month first
                month, day, year = int(parts[0]), int(parts[1]), int(parts[2])
        elif len(parts) == 3 and parts[0] in _MONTHS:
            month, day, year = _MONTHS[parts[0]], int(parts[1]), int(parts[2])
        elif len(parts) == 3 and parts[1] in _MONTHS:
            day, month, year = int(parts[0]), _MONTHS[parts[1]], int(parts[2])
        if year is None or month is None or day is None or not 1 <= year <= 9999:
            return None
        found = date(year, month, day)
    except ValueError:
        return None
    return f"{found.year:04d}{found.month:02d}{found.day:02d}"


def standardize_maid(value: Any) -> str | None:
    """A mobile advertising id: hex digits only, lowercase, exactly 32 of them (an IDFA/AAID without its
    hyphens); else None."""
    text = _text(value)
    if text is None:
        return None
    hex_only = _NOT_HEX.sub("", text.lower())
    return hex_only if len(hex_only) == 32 else None


def standardize_vin(value: Any) -> str | None:
    """A vehicle identification number: letters and digits only, lowercase, exactly 17; else None."""
    text = _text(value)
    kept = "".join(c for c in (text or "") if c.isascii() and c.isalnum()).lower()
    return kept if len(kept) == 17 else None


def standardize_ctvid(value: Any) -> str | None:
    """A connected-TV id: letters and digits only, lowercase, 8 to 32 of them; else None."""
    text = _text(value)
    kept = "".join(c for c in (text or "") if c.isascii() and c.isalnum()).lower()
    return kept if 8 <= len(kept) <= 32 else None


STANDARDIZE: dict[str, Callable[[Any], str | None]] = {
    "email": standardize_email, "phone": standardize_phone, "first_name": standardize_name,
    "last_name": standardize_name, "dob": standardize_dob, "zip": standardize_zip, "maid": standardize_maid,
    "vin": standardize_vin, "ctvid": standardize_ctvid,
}


def hash_field(kind: str, value: Any) -> str | None:
    """One field standardized and hashed; None when the value is no identifier of its kind."""
    standard = STANDARDIZE[kind](value)
    return sha256_base64(standard) if standard is not None else None


def composite_hash(*field_hashes: str | None) -> str | None:
    """NDZ and NameVIN: the fields' hashes concatenated in order, hashed again; None if any field is missing
    (a composite matches only when every part does)."""
    if any(h is None for h in field_hashes):
        return None
    return sha256_base64("".join(field_hashes))  # type: ignore[arg-type]


def ndz_hash(first_name: Any, last_name: Any, dob: Any, zip_code: Any) -> str | None:
    """Name + date of birth + ZIP: first name, last name, DOB, ZIP, in that order."""
    return composite_hash(hash_field("first_name", first_name), hash_field("last_name", last_name),
                          hash_field("dob", dob), hash_field("zip", zip_code))


def namevin_hash(first_name: Any, last_name: Any, vin: Any) -> str | None:
    """Name + VIN: first name, last name, VIN, in that order."""
    return composite_hash(hash_field("first_name", first_name), hash_field("last_name", last_name),
                          hash_field("vin", vin))


def is_drop_hash(value: Any) -> bool:
    """44 Base64 characters, as every hash of a DROP list is (SHA-256 is 32 bytes: 43 characters and '=')."""
    return isinstance(value, str) and bool(HASH_PATTERN.match(value))


# The six consumer deletion lists and the fields each is made of, in the specification's order.
LIST_FIELDS: dict[str, tuple[str, ...]] = {
    "Email": ("email",), "Phone": ("phone",), "MAID": ("maid",), "CTVID": ("ctvid",),
    "NDZ": ("first_name", "last_name", "dob", "zip"), "NameVIN": ("first_name", "last_name", "vin"),
}
LIST_TYPES = tuple(LIST_FIELDS)


def list_hash(list_type: str, values: dict[str, Any]) -> str | None:
    """The hash a record's values take in one list (values by field kind: email, first_name, dob, ...)."""
    fields = LIST_FIELDS[list_type]
    if len(fields) == 1:
        return hash_field(fields[0], values.get(fields[0]))
    return composite_hash(*(hash_field(kind, values.get(kind)) for kind in fields))
