"""The statements the SQL connector writes by hand, per dialect: Snowflake takes a VALUES list only in a FROM
clause and binds on the client (pyformat), and enforces no foreign key; the other databases keep their shapes."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite

from include.privacy_requests.connectors.dialects import enforces_foreign_keys, snowflake_transient
from include.privacy_requests.connectors.pair_update import can_check, pair_check, pair_update


def _snowflake():
    from snowflake.sqlalchemy.snowdialect import SnowflakeDialect

    return SnowflakeDialect()


def test_a_per_row_mask_on_snowflake_is_an_update_from_a_typed_values_list() -> None:
    shape = pair_update(_snowflake(), "customer", ("id",), ("phone",), ("name",), 2)
    assert shape.sql == (
        "UPDATE customer SET phone = COALESCE(v.m0, customer.phone), name = %s FROM (SELECT id AS k0, phone AS m0 "
        "FROM customer WHERE 1 = 0 UNION ALL SELECT * FROM VALUES (%s, %s), (%s, %s)) AS v WHERE customer.id = v.k0")
    assert shape.parameters([((1,), ("h1",)), ((3,), ("h3",))], [None]) == (None, 1, "h1", 3, "h3")


def test_the_proof_on_snowflake_is_one_counting_select_per_chunk() -> None:
    dialect = _snowflake()
    assert can_check(dialect)
    check = pair_check(dialect, "customer", ("id",), ("phone",), ("name",), (), 1)
    assert check.sql == (
        "SELECT COUNT(*), SUM(CASE WHEN customer.name IS NOT NULL OR customer.phone IS DISTINCT FROM v.m0 THEN 1 "
        "ELSE 0 END) FROM customer JOIN (SELECT id AS k0, phone AS m0 FROM customer WHERE 1 = 0 UNION ALL "
        "SELECT * FROM VALUES (%s, %s)) AS v ON customer.id = v.k0")


def test_the_other_databases_keep_a_bare_values_list() -> None:
    assert "UNION ALL VALUES (?, ?)) AS v" in pair_update(sqlite.dialect(), "t", ("id",), ("a",), (), 1).sql
    assert "UNION ALL VALUES (%s, %s)) AS v" in pair_update(postgresql.psycopg2.dialect(), "t", ("id",), ("a",),
                                                            (), 1).sql


def test_snowflake_enforces_no_foreign_key_and_sqlite_only_with_its_pragma() -> None:
    assert not enforces_foreign_keys("snowflake", lambda: True)
    assert enforces_foreign_keys("postgresql", lambda: False)
    assert enforces_foreign_keys("sqlite", lambda: True) and not enforces_foreign_keys("sqlite", lambda: False)


def test_snowflake_errors_are_transient_when_snowflake_could_not_be_reached() -> None:
    from snowflake.connector.errors import InternalServerError, OperationalError, ProgrammingError

    assert snowflake_transient(InternalServerError(errno=500)) is True  # HTTP 500, numbered 290500
    assert snowflake_transient(OperationalError(msg="no route", errno=250001)) is True
    assert snowflake_transient(ProgrammingError(msg="SQL compilation error", errno=2003, sqlstate="42S02")) is False
    assert snowflake_transient(ValueError("another driver")) is None
