"""DROP hashes computed by each database (PostgreSQL sha256/encode, MariaDB SHA2/TO_BASE64; SQLite streams
and hashes in Python) equal the specification's, value by value."""

from __future__ import annotations

from sqlalchemy import Engine, text

from include.privacy_requests.drop.hashing import list_hash
from include.privacy_requests.drop.matching import plan_targets, stream_hashes
from include.privacy_requests.model.loading import load_config
from tests.support.paths import ROOT

EMAILS = [" Anna.Smith@Domain.com ", "danielle.johnson12@example.com", "A.Lice+Tag@Co.COM", "tab\tinside@x.com",
          "", None, "Zoë@exämple.com", "\t Space Inside@x.com \n", "   "]
PHONES = ["+1(415)555-9317", "+84(90)123 4567", "+354(123)4567", "5551273811", "", None, "555-0100", "1", "2"]


def test_hashes_in_the_database_equal_the_specification(engine: Engine) -> None:
    config = load_config(ROOT / "tests" / "drop_config")
    consumer = next(t for t in plan_targets(config) if str(t.address) == "broker:consumer")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE consumer (id INTEGER PRIMARY KEY, email VARCHAR(200), phone VARCHAR(40), "
                          "first_name VARCHAR(100), last_name VARCHAR(100), dob VARCHAR(20), zip VARCHAR(20), "
                          "maid VARCHAR(64), ctv VARCHAR(64), vin VARCHAR(40), do_not_sell INTEGER)"))
        for i, (mail, phone) in enumerate(zip(EMAILS, PHONES, strict=True)):
            conn.execute(text("INSERT INTO consumer (id, email, phone, first_name, last_name, dob, zip) VALUES "
                              "(:i, :e, :p, 'Danielle', 'Johnson', '1985-07-04', '91790-3771')"),
                         {"i": i, "e": mail, "p": phone})
    for list_type, column in (("Email", EMAILS), ("Phone", PHONES)):
        kind = "email" if list_type == "Email" else "phone"
        expected = {i: list_hash(list_type, {kind: v}) for i, v in enumerate(column)}
        got = {key[0]: hashed for hashed, key, _anchor in stream_hashes(engine, consumer, list_type)}
        assert got == {i: h for i, h in expected.items() if h}, (engine.dialect.name, list_type)
    ndz = {key[0]: hashed for hashed, key, _anchor in stream_hashes(engine, consumer, "NDZ")}
    assert set(ndz.values()) == {"PQOfn1RffEKmqMmNAzDKKaoZCwxWbQZkQzPWmQo9REA="}
