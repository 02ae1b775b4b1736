"""What differs between the SQL databases the connector writes text for, in one place: placeholders, how a
list of rows is spelled, how a multi-table UPDATE names its columns, the exact "differs" test of the proof,
whether foreign keys are enforced and whether names are case-sensitive.

Everything else goes through SQLAlchemy Core, whose dialects already tell the databases apart. Snowflake comes
through ``snowflake-sqlalchemy`` (dialect name ``snowflake``, parameter style ``pyformat``: the connector binds
values on the client, quoting them as literals).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Dialect

PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}  # positional, as every driver used here takes

MYSQL = ("mysql", "mariadb")


def placeholder(dialect: Dialect) -> str | None:
    """The driver's positional placeholder, None for a parameter style the hand-written statements do not use."""
    return PLACEHOLDERS.get(dialect.paramstyle)


def quoter(dialect: Dialect, mark: str) -> Callable[[str], str]:
    """Quotes a name as the dialect does; a '%' in a name would read as a placeholder in the format styles."""

    def quote(name: str) -> str:
        quoted = dialect.identifier_preparer.quote(name)
        return quoted if mark == "?" else quoted.replace("%", "%%")

    return quote


def values_rows(dialect: Dialect, mark: str, columns: int, rows: int) -> str:
    """A list of ``rows`` rows of ``columns`` placeholders, to follow ``UNION ALL``: MySQL (8.0.19+) spells a
    row ``ROW(...)``; Snowflake takes VALUES only in a FROM clause (``SELECT * FROM VALUES ...``); MariaDB,
    PostgreSQL and SQLite take ``VALUES (...), ...`` as it is."""
    mysql = dialect.name in MYSQL and not getattr(dialect, "is_mariadb", False)
    row = ("ROW(" if mysql else "(") + ", ".join([mark] * columns) + ")"
    listed = f"VALUES {', '.join([row] * rows)}"
    return f"SELECT * FROM {listed}" if dialect.name == "snowflake" else listed


def joined_update_names_table(dialect: Dialect) -> bool:
    """MySQL and MariaDB write ``UPDATE t JOIN v ON ... SET t.c = ...``; the others ``UPDATE t SET c = ... FROM v
    WHERE ...`` (PostgreSQL, SQLite 3.33+, Snowflake)."""
    return dialect.name in MYSQL


def _mysql_differs(a: str, b: str) -> str:
    # NULL-safe, and byte for byte: a PAD SPACE or case-insensitive collation would call 'X' and 'x ' equal.
    return f"NOT (CAST(CONVERT({a} USING utf8mb4) AS BINARY) <=> CAST(CONVERT({b} USING utf8mb4) AS BINARY))"


# "a differs from b", NULL-safe and exact. PostgreSQL's deterministic collations compare bytes in the end
# (a nondeterministic ICU collation would not: see docs/dry-run-and-proof.md); SQLite's COLLATE on the
# right-hand operand overrides a column's NOCASE. Snowflake compares strings byte for byte unless the column
# has a collation specification (a case-insensitive one would call 'X' and 'x' equal: see
# docs/warehouses-and-documents.md).
DIFFERS: dict[str, Callable[[str, str], str]] = {
    "postgresql": lambda a, b: f"{a} IS DISTINCT FROM {b}",
    "mysql": _mysql_differs,
    "mariadb": _mysql_differs,
    "sqlite": lambda a, b: f"{a} IS NOT {b} COLLATE BINARY",
    "snowflake": lambda a, b: f"{a} IS DISTINCT FROM {b}",
}


def enforces_foreign_keys(dialect_name: str, sqlite_pragma: Callable[[], bool]) -> bool:
    """Whether the database refuses a delete a foreign key still points at. SQLite only with ``PRAGMA
    foreign_keys`` on; Snowflake never on its standard tables (its constraints are informational, only a hybrid
    table enforces them)."""
    if dialect_name == "snowflake":
        return False
    return sqlite_pragma() if dialect_name == "sqlite" else True


def case_sensitive_names(dialect_name: str) -> bool:
    """Whether a column or table name must match exactly: PostgreSQL's reflected names are the stored names;
    MySQL and SQLite match regardless of case, and Snowflake's reflection reports unquoted (upper-case) names
    in lower case, as SQLAlchemy spells case-insensitive names."""
    return dialect_name == "postgresql"


# The Snowflake connector's error numbers that mean "could not talk to Snowflake (now)": failed to connect, the
# connection closed, a request failed or timed out; and HTTP 429 and 5xx answers, which it numbers 290000 + status.
# Its errors carry the SQLSTATE "n/a" when the server gave none, so the SQLSTATE alone does not tell.
_SNOWFLAKE_TRANSIENT = {250001, 250002, 250003, 250005, 251011, 290429}


def snowflake_transient(orig: BaseException) -> bool | None:
    """Whether a Snowflake connector error is transient; None for an error of another driver."""
    if type(orig).__module__.split(".")[:2] != ["snowflake", "connector"]:
        return None
    errno = getattr(orig, "errno", -1)
    return (type(orig).__name__ in _SNOWFLAKE_HTTP_RETRYABLE or errno in _SNOWFLAKE_TRANSIENT
            or 290500 <= errno < 290600 or str(getattr(orig, "sqlstate", "")).startswith("08"))


_SNOWFLAKE_HTTP_RETRYABLE = {"InternalServerError", "ServiceUnavailableError", "GatewayTimeoutError",
                             "BadGatewayError", "OtherHTTPRetryableError"}
